"""The Staingard connector under plain CPython, the host faked at the WIT
boundary: when an order is submitted, the submission's shape, and a run's
calls against queued answers. Run:
python3 -m unittest discover -s plugins/staingard/tests"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(PLUGINS, "sdk-python", "tests"), os.path.join(PLUGINS, "sdk-python"), os.path.dirname(HERE)]

import fake_host  # noqa: E402

fake_host.install()
import app  # noqa: E402
import mapping  # noqa: E402


def order(oid="SG1", status="despatched", **line_extra):
    line = {"id": "1", "sku": "SOFA", "description": "Sofa", "quantity": 1, "unit_price": "899.00",
            "warranty": {"plan_code": "FAB5", "cover_type": "fabric", "price": "49.00"}}
    line.update(line_extra)
    return {"id": oid, "number": oid, "status": status, "placed_at": "2026-11-01T10:00:00Z", "currency": "GBP",
            "customer": {"email": "o@example.com", "name": "Ada Lovelace"},
            "shipping_address": {"line1": "1 Park Row", "town": "Leeds", "postcode": "LS1", "country": "GB"},
            "lines": [line, {"id": "2", "sku": "STOOL", "description": "Stool", "quantity": 2, "unit_price": "10",
                             "delivered": True, "delivered_at": "2026-11-09T10:00:00Z"}],
            "totals": {"total": "919.00"}}


def answer(status, body):
    return fake_host.Response(status, [("content-type", "application/json")], json.dumps(body).encode())


class MappingTest(unittest.TestCase):
    def test_when_an_order_is_submitted(self):
        self.assertEqual(mapping.decide(order())[0], mapping.SUBMIT)
        self.assertEqual(mapping.decide(order(status="cancelled"))[0], mapping.NEVER)
        no_cover = order()
        for line in no_cover["lines"]:
            line.pop("warranty", None)
        self.assertEqual(mapping.decide(no_cover)[0], mapping.NEVER)
        undelivered = order()
        undelivered["lines"][1]["delivered"] = False
        self.assertEqual(mapping.decide(undelivered)[0], mapping.LATER)

    def test_the_whole_order_is_submitted_with_its_cover(self):
        body = mapping.submission(order(delivered=True, delivered_at="2026-11-05T10:00:00Z"), "R-1")
        self.assertEqual(body["orderReference"], "SG1")
        self.assertEqual(body["deliveryDate"], "2026-11-05T10:00:00Z", "the first delivery")
        self.assertEqual(len(body["items"]), 2)
        self.assertEqual(body["items"][0]["coverType"], "fabric")
        self.assertEqual(body["items"][0]["planPrice"], 49.0)
        self.assertNotIn("coverType", body["items"][1])
        self.assertEqual(body["customer"]["firstName"], "Ada")
        self.assertEqual(body["customer"]["address"]["postcode"], "LS1")


class FeedTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()
        self.host.config.update({"endpoint": "https://api.staingard.example/v1", "retailer_id": "R-1"})
        self.host.secrets["api_key"] = "sg-key"
        self.host.add("orders", order())

    def test_a_warranty_number_becomes_a_note_and_is_checkpointed_first(self):
        self.host.answers.append(answer(201, {"warrantyNumber": "W-1"}))
        outcome = app.WitWorld().run(self.host.context("warranties"))
        self.assertEqual(outcome.status, fake_host.Status.OK, outcome.message)
        self.assertIn("submitted/SG1", self.host.checkpointed)
        self.assertEqual(self.host.notes[("orders", "SG1")].notes, ["W-1"])
        self.assertIn(("orders", "SG1"), self.host.acked)
        request = self.host.requests[0]
        self.assertEqual((request.method, request.url), ("POST", "https://api.staingard.example/v1/orders"))
        self.assertIn(("authorization", "Bearer sg-key"), request.headers)

    def test_a_duplicate_reuses_the_first_warranty_number(self):
        self.host.answers.append(answer(409, {"error": "duplicate orderReference", "warrantyNumber": "W-0"}))
        outcome = app.WitWorld().run(self.host.context("warranties"))
        self.assertEqual(outcome.status, fake_host.Status.OK, outcome.message)
        self.assertEqual(self.host.notes[("orders", "SG1")].notes, ["W-0"])

    def test_a_refused_upload_is_an_error_remembered_for_the_flag(self):
        self.host.answers.append(answer(422, {"errors": [{"field": "customer.address.postcode",
                                                          "message": "is required"}]}))
        outcome = app.WitWorld().run(self.host.context("warranties"))
        self.assertEqual(outcome.status, fake_host.Status.ERROR)
        self.assertIn("customer.address.postcode", outcome.message)
        self.assertIn("failed/SG1", self.host.checkpointed)

    def test_test_mode_sends_nothing(self):
        outcome = app.WitWorld().run(self.host.context("warranties", fake_host.Mode.TEST))
        self.assertEqual(outcome.status, fake_host.Status.INFO)
        self.assertIn("would submit 1 orders: SG1", outcome.message)
        self.assertEqual(self.host.requests, [])


if __name__ == "__main__":
    unittest.main()
