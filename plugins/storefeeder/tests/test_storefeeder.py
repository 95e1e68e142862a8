"""The StoreFeeder connector under plain CPython, the host faked at the WIT
boundary: the mapping, and each feed's calls in order against queued
answers. Run: python3 -m unittest discover -s plugins/storefeeder/tests"""

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

ORDER = {
    "OrderNumber": 101,
    "OrderGuid": "a1b2",
    "OrderStatus": "CompleteReadyToPick",
    "Channel": {"ChannelID": 3, "ChannelName": "Amazon UK", "ChannelType": "Amazon"},
    "ChannelOrderRef": "202-1234567-1234567",
    "OrderDate": "2026-11-20T09:15:00",
    "Currency": "GBP",
    "Customer": {"Email": "buyer@marketplace.example", "FirstName": "Zoë", "LastName": "Brontë"},
    "Shippingaddress": {"AddressLine1": "1 High St", "Town": "Leeds", "Postcode": "LS1 1AA", "CountryCode": "gb"},
    "OrderLines": [{"OrderLineID": 9, "SKU": "SOFA-3S-GREY", "ProductName": "Sofa", "Quantity": 1,
                    "UnitPrice": 899.5, "LineTotal": 899.5}],
    "OrderTotals": {"Subtotal": 899.5, "ShippingTotal": 0, "Total": 899.5},
}


def answer(status, body=None):
    data = b"" if body is None else json.dumps(body).encode()
    return fake_host.Response(status, [("content-type", "application/json")], data)


def token():
    return answer(200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 1209599})


def configure(host):
    host.config.update({"username": "api@shop.example", "conflict_wait_seconds": "0"})
    host.secrets.update({"password": "pw-secret", "api_key": "key-secret"})


class MappingTest(unittest.TestCase):
    def test_an_order_becomes_an_orders_record(self):
        body = mapping.order_record(ORDER)
        self.assertEqual(body["id"], "storefeeder-101")
        self.assertEqual(body["channel"], "amazon")
        self.assertEqual(body["number"], "202-1234567-1234567")
        self.assertEqual(body["placed_at"], "2026-11-20T09:15:00Z")
        self.assertEqual(body["lines"][0]["unit_price"], "899.50")
        self.assertEqual(body["totals"], {"total": "899.50", "subtotal": "899.50", "shipping": "0.00"})
        self.assertEqual(body["customer"]["name"], "Zoë Brontë")
        self.assertEqual(body["shipping_address"]["country"], "GB")
        self.assertEqual(mapping.storefeeder_number(body), 101)
        self.assertIsNone(mapping.storefeeder_number({"id": "SO1001"}))

    def test_money_keeps_every_digit(self):
        for value, expected in [(0, "0.00"), (12.5, "12.50"), ("7.125", "7.125"), (0.1 + 0.2, "0.30")]:
            self.assertEqual(mapping.money(value, "x"), expected)
        with self.assertRaises(mapping.MappingError):
            mapping.money(-1, "x")

    def test_a_broken_order_names_its_field(self):
        broken = dict(ORDER, Customer={})
        with self.assertRaisesRegex(mapping.MappingError, "Customer.Email"):
            mapping.order_record(broken)

    def test_stock_is_an_absolute_adjustment(self):
        item = mapping.stock_item("SKU-1", 4, None)
        self.assertEqual(item["AdjustmentType"], "AbsoluteAdjustment")
        self.assertIsNone(item["StockLocationID"])
        located = mapping.stock_item("SKU-1", 4, "MAIN")
        self.assertEqual(located["StockLocationID"], {"IDType": "StockLocationReference", "Value": "MAIN"})


class OrdersFeedTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()
        configure(self.host)

    def test_the_copy_is_checkpointed_before_storefeeder_marks_it(self):
        self.host.answers += [
            token(),
            answer(200, {"TotalItems": 1, "TotalPages": 1, "PagingInfo": {"PageSize": 100, "Page": 1},
                         "Data": [ORDER]}),
            answer(200, [{"OrderNumber": 101, "Success": True}]),
        ]
        checkpoints = []
        original = self.host._checkpoint
        self.host._checkpoint = lambda: (checkpoints.append(dict(self.host.storage)), original())
        outcome = app.WitWorld().run(self.host.context("orders"))
        self.assertEqual(outcome.status, fake_host.Status.OK, outcome.message)
        self.assertIn("StoreFeeder linked as api@shop.example", outcome.message)
        self.assertIn("downloaded/101", checkpoints[0])
        methods = [(r.method, r.url.split("?")[0]) for r in self.host.requests]
        self.assertEqual(methods, [
            ("POST", "https://rest.storefeeder.com/Token"),
            ("GET", "https://rest.storefeeder.com/orders"),
            ("PUT", "https://rest.storefeeder.com/orders/mark-orders-as-downloaded"),
        ])
        self.assertIn(b"grant_type=password", self.host.requests[0].body)
        self.assertEqual([p[1] for p in self.host.puts], ["storefeeder-101"])
        self.assertNotIn("downloaded/101", self.host.storage, "dropped in the run's own commit")
        self.assertFalse(any("tok-1" in m or "pw-secret" in m for _, m in self.host.logs))

    def test_wrong_credentials_say_the_link_is_broken(self):
        self.host.answers.append(answer(400, {"error": "invalid_grant",
                                              "error_description": "The user name or password is incorrect."}))
        outcome = app.WitWorld().run(self.host.context("orders"))
        self.assertEqual(outcome.status, fake_host.Status.ERROR)
        self.assertIn("StoreFeeder link broken", outcome.message)
        self.assertIn("airlock reauthorise acme/feeds", outcome.message)

    def test_test_mode_contacts_nobody(self):
        outcome = app.WitWorld().run(self.host.context("orders", fake_host.Mode.TEST))
        self.assertEqual(outcome.status, fake_host.Status.INFO)
        self.assertEqual(self.host.requests, [])

    def test_bad_config_is_a_clear_error(self):
        self.host.config["username"] = "not an email"
        outcome = app.WitWorld().run(self.host.context("orders"))
        self.assertEqual(outcome.status, fake_host.Status.ERROR)
        self.assertIn("`username`", outcome.message)


class DespatchFeedTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()
        configure(self.host)
        self.host.add("orders", mapping.order_record(ORDER))
        self.host.add("orders", {"id": "SO1", "status": "processing"})
        self.host.add("shipments", {"id": "sh1", "order_id": "storefeeder-101", "carrier": "Royal Mail",
                                    "tracking_number": "RM1", "despatched_at": "2026-11-21T10:00:00Z"})
        self.host.add("shipments", {"id": "sh2", "order_id": "SO1", "carrier": "DPD",
                                    "despatched_at": "2026-11-21T10:00:00Z"})

    def test_a_refused_item_inside_200_is_an_error_and_not_acknowledged(self):
        self.host.answers += [token(), answer(200, [{"OrderNumber": 101, "Success": False,
                                                     "Error": "Order is on hold"}])]
        outcome = app.WitWorld().run(self.host.context("despatches"))
        self.assertEqual(outcome.status, fake_host.Status.ERROR)
        self.assertIn("Order is on hold", outcome.message)
        self.assertNotIn(("shipments", "sh1"), self.host.acked)
        self.assertIn(("shipments", "sh2"), self.host.acked, "another channel's shipment is left alone")
        sent = json.loads(self.host.requests[1].body)
        self.assertEqual(sent, [{"OrderNumber": 101, "DespatchDate": "2026-11-21T10:00:00Z",
                                 "ShippedVia": "Royal Mail", "TrackingNumber": "RM1"}])

    def test_a_conflict_is_tried_again_then_retried_later(self):
        self.host.answers += [token(), answer(409, {"Message": "locked"}), answer(409, {"Message": "locked"})]
        outcome = app.WitWorld().run(self.host.context("despatches"))
        self.assertEqual(outcome.status, fake_host.Status.RETRY, outcome.message)
        self.assertEqual(outcome.retry_after_seconds, 60)


if __name__ == "__main__":
    unittest.main()
