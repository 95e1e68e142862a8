"""The Google Shopping connector under plain CPython, the host faked at the
WIT boundary: the feed is parsed with xml.etree and checked for its
namespace, required elements, exclusions and escaping.
Run: python3 -m unittest discover -s plugins/google-shopping/tests"""

import os
import sys
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(PLUGINS, "sdk-python", "tests"), os.path.join(PLUGINS, "sdk-python"), os.path.dirname(HERE)]

import fake_host  # noqa: E402

fake_host.install()
import app  # noqa: E402
import shopping_feed  # noqa: E402

G = "{http://base.google.com/ns/1.0}"
TRICKY = 'Salt & Pepper <Deluxe> "Grinder" l\'été \u00e9\u4e2d\x01'


def product(pid, **extra):
    body = {
        "id": pid,
        "sku": f"SKU-{pid}",
        "title": f"Product {pid}",
        "description": "A fine product",
        "url": f"https://shop.example/p/{pid}",
        "image_urls": [f"https://shop.example/img/{pid}.jpg"],
        "price": "15",
        "currency": "GBP",
        "brand": "Acme",
        "gtin": "5060123456789",
        "condition": "new",
        "category_ids": ["cat-sofas"],
    }
    body.update(extra)
    return body


def catalog(host):
    host.config.update({"store_url": "https://shop.example/", "currency": "GBP"})
    host.add("categories", {"id": "cat-living", "name": "Living room"})
    host.add("categories", {"id": "cat-sofas", "name": "Sofas", "parent_id": "cat-living"})
    host.add("categories", {"id": "cat-misc", "name": "Misc", "path": ["Odds", "Misc"]})
    host.add("category-mappings", {"id": "m1", "category_id": "cat-sofas", "channel": "google", "channel_category_id": "460"})
    host.add("category-mappings", {"id": "m2", "category_id": "cat-misc", "channel": "ebay", "channel_category_id": "99"})


def items(xml_text):
    root = ET.fromstring(xml_text.encode("utf-8"))
    return root, {i.find(f"{G}id").text: i for i in root.iter("item")}


class GoogleShoppingTest(unittest.TestCase):
    def setUp(self):
        self.host = fake_host.install()
        catalog(self.host)

    def run_feed(self):
        return app.WitWorld().run(self.host.context("products"))

    def test_feed_shape_namespace_and_required_elements(self):
        self.host.add("products", product("p1", price="899.5", sale_price="749.00"))
        self.host.add("stock", {"id": "s1", "sku": "SKU-p1", "quantity": 4})
        outcome = self.run_feed()
        self.assertEqual(outcome.status, fake_host.Status.OK, outcome.message)
        self.assertEqual(outcome.items, 1)
        self.assertEqual(self.host.begun[app.FEED_NAME][0], "application/rss+xml")
        text = self.host.artifact(app.FEED_NAME)
        self.assertIn('xmlns:g="http://base.google.com/ns/1.0"', text)
        root, by_id = items(text)
        self.assertEqual((root.tag, root.get("version")), ("rss", "2.0"))
        self.assertEqual(root.find("channel/link").text, "https://shop.example")
        item = by_id["p1"]
        self.assertEqual(item.find("title").text, "Product p1")
        self.assertEqual(item.find("link").text, "https://shop.example/p/p1")
        self.assertEqual(item.find(f"{G}image_link").text, "https://shop.example/img/p1.jpg")
        self.assertEqual(item.find(f"{G}price").text, "899.50 GBP")
        self.assertEqual(item.find(f"{G}sale_price").text, "749.00 GBP")
        self.assertEqual(item.find(f"{G}availability").text, "in_stock")
        self.assertEqual(item.find(f"{G}brand").text, "Acme")
        self.assertEqual(item.find(f"{G}gtin").text, "5060123456789")
        self.assertEqual(item.find(f"{G}condition").text, "new")
        self.assertEqual(item.find(f"{G}google_product_category").text, "460")
        self.assertEqual(item.find(f"{G}product_type").text, "Living room > Sofas")
        self.assertIsNone(item.find(f"{G}identifier_exists"))

    def test_unmapped_inactive_and_foreign_currency_products_are_left_out(self):
        self.host.add("products", product("in"))
        self.host.add("products", product("unmapped", category_ids=["cat-misc"]))
        self.host.add("products", product("nocat", category_ids=[]))
        self.host.add("products", product("off", status="archived"))
        self.host.add("products", product("eur", currency="EUR"))
        self.host.add("products", product("noimg", image_urls=[]))
        self.host.add("products", product("gone"), deleted=True)
        outcome = self.run_feed()
        self.assertEqual(outcome.items, 1)
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        self.assertEqual(sorted(by_id), ["in"])
        self.assertIn("2 in no category mapped to Google", outcome.message)
        self.assertIn("1 not active", outcome.message)
        self.assertIn("1 priced in another currency than GBP", outcome.message)

    def test_the_second_category_may_be_the_mapped_one(self):
        self.host.add("products", product("p", category_ids=["cat-misc", "cat-sofas"]))
        self.run_feed()
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        self.assertEqual(by_id["p"].find(f"{G}google_product_category").text, "460")
        self.assertEqual(by_id["p"].find(f"{G}product_type").text, "Odds > Misc")

    def test_tricky_characters_are_escaped_and_parse_back(self):
        self.host.add("products", product("p&<1>\"'", title=TRICKY, description=TRICKY, brand="Tom & Jerry's"))
        self.run_feed()
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        item = by_id["p&<1>\"'"]
        self.assertEqual(item.find("title").text, TRICKY.replace("\x01", ""))
        self.assertEqual(item.find(f"{G}brand").text, "Tom & Jerry's")

    def test_availability_from_stock(self):
        self.host.add("products", product("a"))  # 3 + 0 at locations
        self.host.add("products", product("b", availability="preorder", availability_date="2027-01-01T00:00:00Z"))
        self.host.add("products", product("c", availability="in_stock"))  # no stock: its own
        self.host.add("products", product("d"))  # neither: out_of_stock
        self.host.add("products", product("e"))  # total says 0 though a location has 5
        self.host.add("stock", {"id": "a1", "sku": "SKU-a", "quantity": 3, "location": "leeds"})
        self.host.add("stock", {"id": "a2", "sku": "SKU-a", "quantity": 0, "location": "york"})
        self.host.add("stock", {"id": "b", "sku": "SKU-b", "quantity": 0})
        self.host.add("stock", {"id": "e1", "sku": "SKU-e", "quantity": 5, "location": "york"})
        self.host.add("stock", {"id": "e", "sku": "SKU-e", "quantity": 0})
        self.run_feed()
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        got = {k: v.find(f"{G}availability").text for k, v in by_id.items()}
        self.assertEqual(got, {"a": "in_stock", "b": "preorder", "c": "in_stock", "d": "out_of_stock", "e": "out_of_stock"})
        self.assertEqual(by_id["b"].find(f"{G}availability_date").text, "2027-01-01T00:00:00Z")

    def test_identifiers_and_links(self):
        self.host.add("products", product("m", gtin=None, mpn="HAD-3S", url=None))
        self.host.add("products", product("n", gtin=None, mpn=None, title="x" * 200))
        self.run_feed()
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        self.assertEqual(by_id["m"].find(f"{G}mpn").text, "HAD-3S")
        self.assertEqual(by_id["m"].find("link").text, "https://shop.example/products/m")
        self.assertEqual(by_id["n"].find(f"{G}identifier_exists").text, "no")
        self.assertLessEqual(len(by_id["n"].find("title").text), 150)

    def test_streams_in_chunks_and_pages(self):
        for i in range(1200):
            self.host.add("products", product(f"p{i}", description="d" * 300))
        outcome = self.run_feed()
        self.assertEqual(outcome.items, 1200)
        self.assertGreater(len(self.host.appends), 5)
        self.assertTrue(all(n <= 64 * 1024 + 2048 for _, n in self.host.appends))
        _, by_id = items(self.host.artifact(app.FEED_NAME))
        self.assertEqual(len(by_id), 1200)

    def test_nothing_to_publish_is_info_and_keeps_the_previous_feed(self):
        self.host.add("products", product("u", category_ids=["cat-misc"]))
        outcome = self.run_feed()
        self.assertEqual(outcome.status, fake_host.Status.INFO)
        self.assertNotIn(app.FEED_NAME, self.host.begun)
        self.assertIn("1 in no category mapped to Google", outcome.message)

    def test_local_inventory(self):
        self.host.config["local_inventory"] = "true"
        self.host.add("products", product("p1"))
        self.host.add("products", product("u", category_ids=["cat-misc"]))
        self.host.add("stock", {"id": "p1@leeds", "sku": "SKU-p1", "quantity": 12, "location": "leeds"})
        self.host.add("stock", {"id": "p1@york", "sku": "SKU-p1", "quantity": 0, "location": "york"})
        self.host.add("stock", {"id": "p1", "sku": "SKU-p1", "quantity": 12})
        self.host.add("stock", {"id": "u@leeds", "sku": "SKU-u", "quantity": 1, "location": "leeds"})
        outcome = self.run_feed()
        self.assertIn("local-inventory.xml: 2 store entries", outcome.message)
        root = ET.fromstring(self.host.artifact(app.LOCAL_NAME).encode())
        got = sorted(
            (i.find(f"{G}id").text, i.find(f"{G}store_code").text, i.find(f"{G}availability").text, i.find(f"{G}quantity").text)
            for i in root.iter("item")
        )
        self.assertEqual(got, [("p1", "leeds", "in_stock", "12"), ("p1", "york", "out_of_stock", "0")])

    def test_bad_config_fails_run_and_check(self):
        self.host.config.update({"store_url": "shop.example", "currency": "pounds"})
        outcome = self.run_feed()
        self.assertEqual(outcome.status, fake_host.Status.ERROR)
        self.assertIn("store_url", outcome.message)
        self.assertIn("currency", outcome.message)
        with self.assertRaises(fake_host.Err):
            app.WitWorld().check()

    def test_a_store_failure_is_retry(self):
        self.host.fail_with = "Unavailable"
        self.assertEqual(self.run_feed().status, fake_host.Status.RETRY)


class FormatTest(unittest.TestCase):
    def test_price(self):
        for amount, expected in [("15", "15.00 GBP"), ("0", "0.00 GBP"), ("12.5", "12.50 GBP"),
                                 ("1999.99", "1999.99 GBP"), ("1.2345", "1.2345 GBP")]:
            self.assertEqual(shopping_feed.price(amount, "GBP"), expected)

    def test_escape(self):
        self.assertEqual(shopping_feed.escape("a&b<c>\"d'\x00\ufffe"), "a&amp;b&lt;c&gt;&quot;d&apos;")


if __name__ == "__main__":
    unittest.main()
