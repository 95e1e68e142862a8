"""Unit tests of airlock_sdk under plain CPython, the host faked at the WIT
boundary (fake_host). Run: python3 -m unittest discover -s plugins/sdk-python/tests"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import fake_host  # noqa: E402

HOST = fake_host.install()
import airlock_sdk as sdk  # noqa: E402


def response(status, headers=(), body=b""):
    return fake_host.Response(status, list(headers), body)


class RecordsTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()

    def test_walks_every_page_with_the_cursor_and_parses_bodies(self):
        for i in range(7):
            self.host.add("products", {"id": f"p{i}", "n": i})
        seen = list(sdk.iter_records("products", page_size=3))
        self.assertEqual([r.id for r in seen], [f"p{i}" for i in range(7)])
        self.assertEqual(seen[4].body, {"id": "p4", "n": 4})
        self.assertEqual(self.host.page_calls, 3)

    def test_skips_deleted_records_unless_asked(self):
        self.host.add("products", {"id": "a"})
        self.host.add("products", {"id": "b"}, deleted=True)
        self.assertEqual([r.id for r in sdk.iter_records("products")], ["a"])
        every = list(sdk.iter_records("products", include_deleted=True))
        self.assertEqual([(r.id, r.deleted) for r in every], [("a", False), ("b", True)])

    def test_stock_by_sku_prefers_a_total_record_else_sums_locations(self):
        self.host.add("stock", {"id": "s1", "sku": "A", "quantity": 2, "location": "leeds"})
        self.host.add("stock", {"id": "s2", "sku": "A", "quantity": 3, "location": "york"})
        self.host.add("stock", {"id": "s3", "sku": "B", "quantity": 4, "location": "leeds"})
        self.host.add("stock", {"id": "s4", "sku": "B", "quantity": 9})
        self.assertEqual(sdk.stock_by_sku(page_size=2), {"A": 5, "B": 9})

    def test_an_empty_collection_is_one_empty_page(self):
        self.assertEqual(list(sdk.iter_pages("stock")), [[]])

    def test_host_errors_carry_their_case(self):
        self.host.granted = {"products"}
        with self.assertRaises(sdk.HostError) as caught:
            list(sdk.iter_records("orders"))
        self.assertEqual(caught.exception.kind, "not-granted")
        self.assertFalse(caught.exception.retryable)
        self.host.fail_with = "Unavailable"
        with self.assertRaises(sdk.HostError) as caught:
            list(sdk.iter_records("products"))
        self.assertTrue(caught.exception.retryable)
        outcome = sdk.outcome_for(caught.exception)
        self.assertEqual(outcome.status, fake_host.Status.RETRY)


class ArtifactWriterTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()

    def test_buffers_into_chunks_and_flushes_the_rest_on_exit(self):
        with sdk.ArtifactWriter("feed.xml", "application/xml", chunk_bytes=100) as out:
            for _ in range(25):
                out.write("0123456789")  # 250 bytes
            out.write("é")
        self.assertEqual(self.host.artifact("feed.xml"), "0123456789" * 25 + "é")
        sizes = [n for _, n in self.host.appends]
        self.assertEqual(sizes, [100, 100, 52])
        self.assertEqual(out.bytes_written, 252)

    def test_a_block_that_raises_discards_the_artifact(self):
        with self.assertRaises(ValueError):
            with sdk.ArtifactWriter("feed.xml", "application/xml", chunk_bytes=4) as out:
                out.write("partial feed")
                raise ValueError("boom")
        self.assertNotIn("feed.xml", self.host.begun)

    def test_an_invalid_name_is_a_host_error(self):
        with self.assertRaises(sdk.HostError) as caught:
            with sdk.ArtifactWriter("a/b", "text/plain"):
                pass
        self.assertEqual(caught.exception.kind, "invalid-name")


class HttpTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()

    def test_json_round_trip(self):
        self.host.answers.append(response(200, [("content-type", "application/json")], b'{"a": 1}'))
        got = sdk.request_json("POST", "https://api.example/x", {"b": "é"})
        self.assertEqual(got.json(), {"a": 1})
        sent = self.host.requests[0]
        self.assertEqual(sent.body, '{"b":"\\u00e9"}'.encode())
        self.assertIn(("content-type", "application/json"), sent.headers)
        self.assertIn(("accept", "application/json"), sent.headers)

    def check(self, status, headers, expected, retry_after=None):
        self.host.answers.append(response(status, headers, b"{}"))
        if expected is None:
            self.assertEqual(sdk.request_json("GET", "https://api.example/").status, status)
            return
        with self.assertRaises(expected) as caught:
            sdk.request_json("GET", "https://api.example/")
        if expected is sdk.RetryLater:
            self.assertEqual(caught.exception.retry_after, retry_after)
        else:
            self.assertEqual(caught.exception.status, status)

    def test_statuses_are_classified(self):
        self.check(200, [], None)
        self.check(304, [], None)
        self.check(429, [("retry-after", "30")], sdk.RetryLater, 30)
        self.check(503, [("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")], sdk.RetryLater, None)
        self.check(500, [], sdk.RetryLater, None)
        self.check(400, [("retry-after", "5")], sdk.HttpFailure)
        self.check(401, [], sdk.HttpFailure)
        self.check(404, [], sdk.HttpFailure)

    def test_network_failures_retry_and_refusals_do_not(self):
        errs = fake_host.HTTP_ERRORS
        self.host.answers.append(fake_host.Err(errs["HttpError_Timeout"](None)))
        with self.assertRaises(sdk.RetryLater):
            sdk.request_json("GET", "https://api.example/")
        self.host.answers.append(fake_host.Err(errs["HttpError_ConnectionFailed"]("reset")))
        with self.assertRaises(sdk.RetryLater):
            sdk.request_json("GET", "https://api.example/")
        denial = fake_host.Denial("no-matching-entry", "api.example is not granted")
        self.host.answers.append(fake_host.Err(errs["HttpError_Denied"](denial)))
        with self.assertRaises(sdk.HttpFailure) as caught:
            sdk.request_json("GET", "https://api.example/")
        self.assertIn("api.example is not granted", str(caught.exception))
        self.assertIn("denied", str(caught.exception))

    def test_retry_after_parsing(self):
        for value, expected in [(None, None), ("0", 0), (" 120 ", 120), ("-1", None),
                                ("1.5", None), ("soon", None), ("9999999", 86400)]:
            self.assertEqual(sdk.retry_after_seconds(value), expected, value)


class StorageAndAnnotationsTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()

    def test_json_values_round_trip_and_checkpoint(self):
        sdk.save_json("sent/a", {"n": 1})
        sdk.save_json("sent/b", [1, "é"])
        sdk.save_json("other", 3)
        self.assertEqual(sdk.load_json("sent/a"), {"n": 1})
        self.assertEqual(sdk.load_json("missing", "default"), "default")
        self.assertEqual(list(sdk.stored_keys("sent/", page_size=1)), ["sent/a", "sent/b"])
        sdk.checkpoint()
        sdk.forget("sent/a")
        self.assertIsNone(sdk.load_json("sent/a"))
        self.assertIn("sent/a", self.host.checkpointed)

    def test_put_and_annotate(self):
        sdk.put_record("orders", "o1", {"id": "o1", "note": "café"})
        self.assertEqual(self.host.puts, [("orders", "o1", '{"id":"o1","note":"café"}')])
        sdk.annotate_note("orders", "o1", "W-1")
        sdk.annotate_flag("orders", "o1", "awaiting-action")
        sdk.annotate_external_ref("orders", "o1", "ext")
        notes = sdk.annotations("orders", "o1")
        self.assertEqual((notes.notes, notes.flag, notes.external_ref), (["W-1"], "awaiting-action", "ext"))
        sdk.annotate_flag("orders", "o1", None)
        self.assertIsNone(sdk.annotations("orders", "o1").flag)


class OutcomeTest(unittest.TestCase):
    def test_outcomes(self):
        self.assertEqual(sdk.ok("done", 3).items, 3)
        self.assertEqual(sdk.info_outcome("nothing").status, fake_host.Status.INFO)
        retry = sdk.outcome_for(sdk.RetryLater("slow down", 30))
        self.assertEqual((retry.status, retry.retry_after_seconds), (fake_host.Status.RETRY, 30))
        self.assertEqual(sdk.outcome_for(ValueError("bad")).status, fake_host.Status.ERROR)

    def test_logging_and_config(self):
        host = fake_host.install()
        host.config["store_url"] = "https://shop.example"
        self.assertEqual(sdk.config("store_url"), "https://shop.example")
        self.assertEqual(sdk.config("missing", "x"), "x")
        sdk.warn("careful")
        self.assertEqual(host.logs, [(fake_host.Level.WARN, "careful")])


if __name__ == "__main__":
    unittest.main()
