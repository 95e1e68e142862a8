"""The affiliates connector under plain CPython, the host faked at the WIT
boundary: the CSV is read back with the csv module.
Run: python3 -m unittest discover -s plugins/affiliates/tests"""

import csv
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(PLUGINS, "sdk-python", "tests"), os.path.join(PLUGINS, "sdk-python"), os.path.dirname(HERE)]

import fake_host  # noqa: E402

fake_host.install()
import affiliate_feed  # noqa: E402
import app  # noqa: E402

TRICKY = 'Chair, "Oak"\r\nwith é & 中 <b>'


def product(pid, **extra):
    body = {
        "id": pid, "sku": f"SKU-{pid}", "title": f"Product {pid}", "description": "Nice",
        "url": f"https://shop.example/p/{pid}", "image_urls": [f"https://shop.example/i/{pid}.jpg"],
        "price": "19.99", "currency": "GBP", "brand": "Acme", "gtin": "5060123456789",
        "category_ids": ["cat-sofas"],
    }
    body.update(extra)
    return body


class AffiliatesTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()
        self.host.config["store_url"] = "https://shop.example/"
        self.host.add("categories", {"id": "cat-sofas", "name": "Sofas", "path": ["Living room", "Sofas"]})

    def rows(self):
        text = self.host.artifact(app.FEED_NAME)
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def test_header_columns_and_values(self):
        self.host.add("products", product("p1", sale_price="14.99", rrp="24.99", mpn="M-1", delivery_cost="3.95"))
        self.host.add("stock", {"id": "s", "sku": "SKU-p1", "quantity": 7})
        outcome = app.WitWorld().run(self.host.context("products"))
        self.assertEqual((outcome.status, outcome.items), (fake_host.Status.OK, 1), outcome.message)
        self.assertEqual(self.host.begun[app.FEED_NAME][0], "text/csv; charset=utf-8")
        text = self.host.artifact(app.FEED_NAME)
        self.assertTrue(text.startswith(",".join(affiliate_feed.COLUMNS) + "\r\n"))
        (row,) = self.rows()
        self.assertEqual(row["product_id"], "p1")
        self.assertEqual(row["price"], "14.99")
        self.assertEqual(row["rrp_price"], "24.99")
        self.assertEqual(row["deep_link"], "https://shop.example/p/p1")
        self.assertEqual(row["image_url"], "https://shop.example/i/p1.jpg")
        self.assertEqual(row["merchant_category"], "Living room > Sofas")
        self.assertEqual(row["ean"], "5060123456789")
        self.assertEqual(row["mpn"], "M-1")
        self.assertEqual((row["in_stock"], row["stock_quantity"]), ("1", "7"))
        self.assertEqual(row["delivery_cost"], "3.95")
        self.assertEqual(row["brand_name"], "Acme")

    def test_rfc4180_quoting_round_trips(self):
        self.host.add("products", product("p,\"2\"", title=TRICKY, description=TRICKY, brand='Tom "TJ" & Co', url=None))
        app.WitWorld().run(self.host.context("products"))
        (row,) = self.rows()
        self.assertEqual(row["product_id"], 'p,"2"')
        self.assertEqual(row["product_name"], TRICKY)
        self.assertEqual(row["brand_name"], 'Tom "TJ" & Co')
        self.assertEqual(row["deep_link"], "https://shop.example/products/p%2C%222%22")

    def test_stock_status_and_inactive_products(self):
        self.host.add("products", product("none-left"))
        self.host.add("products", product("untracked"))
        self.host.add("products", product("untracked-out", availability="out_of_stock"))
        self.host.add("products", product("off", status="inactive"))
        self.host.add("stock", {"id": "a", "sku": "SKU-none-left", "quantity": 0, "location": "leeds"})
        outcome = app.WitWorld().run(self.host.context("products"))
        self.assertIn("1 inactive left out", outcome.message)
        got = {r["product_id"]: (r["in_stock"], r["stock_quantity"]) for r in self.rows()}
        self.assertEqual(got, {"none-left": ("0", "0"), "untracked": ("1", ""), "untracked-out": ("0", "")})

    def test_streams_in_chunks(self):
        for i in range(1000):
            self.host.add("products", product(f"p{i}", description="d" * 200))
        outcome = app.WitWorld().run(self.host.context("products"))
        self.assertEqual(outcome.items, 1000)
        self.assertGreater(len(self.host.appends), 3)
        self.assertEqual(len(self.rows()), 1000)

    def test_nothing_to_publish_and_bad_config(self):
        outcome = app.WitWorld().run(self.host.context("products"))
        self.assertEqual(outcome.status, fake_host.Status.INFO)
        self.assertNotIn(app.FEED_NAME, self.host.begun)
        self.host.config["store_url"] = "not a url"
        self.assertEqual(app.WitWorld().run(self.host.context("products")).status, fake_host.Status.ERROR)
        with self.assertRaises(fake_host.Err):
            app.WitWorld().check()


if __name__ == "__main__":
    unittest.main()
