"""The web console in a real headless Chromium (Debian's), driven over CDP
by Playwright, against a real `airlock serve --listen` on a real SQLite
database with real components built from source.

Run with scripts/test.sh (which installs Chromium and Playwright first), or:
    python=$(scripts/setup-browser.sh)
    AIRLOCK_BIN=$CARGO_TARGET_DIR/debug/airlock $python -m unittest discover -s tests/browser
Set AIRLOCK_SCREENSHOTS=docs/screenshots to write the main pages' screenshots.
"""

import os
import pathlib
import json
import re
import subprocess
import tempfile
import threading
import time
import unittest

from playwright.sync_api import expect, sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = os.environ.get("CARGO_TARGET_DIR") or str(ROOT / "target")
BIN = os.environ.get("AIRLOCK_BIN") or os.path.join(TARGET, "debug", "airlock")
SHOTS = os.environ.get("AIRLOCK_SCREENSHOTS")
CHROMIUM = os.environ.get("AIRLOCK_CHROMIUM", "/usr/bin/chromium")
DEADLINE = 90  # seconds: generous, for a loaded machine; never a timed assertion


class Site:
    """A database, a master key, and `airlock` run on them."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="airlock-console-")
        d = pathlib.Path(self.dir.name)
        self.env = dict(
            os.environ,
            AIRLOCK_DB=str(d / "airlock.db"),
            AIRLOCK_MASTER_KEY_FILE=str(d / "master.key"),
            # Components compiled once, shared with the cargo tests' runs.
            AIRLOCK_CACHE_DIR=str(ROOT / "target" / "test-component-cache"),
        )
        self.run("keygen", str(d / "master.key"))

    def run(self, *args, ok=True):
        out = subprocess.run(
            [BIN, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=600,
        )
        if ok and out.returncode != 0:
            raise AssertionError(f"airlock {args}: {out.stdout}{out.stderr}")
        return out

    def token(self, name, *scope, permissions):
        out = self.run("tokens", "create", name, "--permission", permissions, *scope)
        token = out.stdout.strip().splitlines()[-1]
        assert token.startswith("alk_"), out
        number = int(re.search(r"#(\d+)", out.stderr).group(1))
        return token, number


class Server:
    """`airlock serve --listen 127.0.0.1:0`, its output collected."""

    def __init__(self, site):
        self.lines = []
        self.proc = subprocess.Popen(
            [BIN, "serve", "--jitter", "0s", "--tick", "100ms", "--retry-base", "1s",
             "--listen", "127.0.0.1:0"],
            cwd=ROOT, env=site.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            found = [l for l in self.lines if l.startswith("listening on http://")]
            if found:
                self.base = found[0].split()[-1]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("serve did not listen:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        site = cls.site = Site()
        site.run("tenant", "add", "acme", "--name", "Acme Shop")
        site.run("tenant", "add", "globex", "--name", "Globex")
        # Plugins reach the plugin store when first installed: globex's
        # installations put hello and custom-store there for acme to add.
        site.run("install", "plugins/hello", "--tenant", "globex", "--yes")
        site.run("install", "plugins/custom-store", "--tenant", "globex", "--skip-check", "--yes",
                 "--config", "endpoint=https://shop.globex.example/api/v1",
                 "--config", "username=globex", "--config", "password=globex-secret-pw")
        # acme's misbehaving connector: its `trap` feed fails on purpose.
        site.run("install", "plugins/misbehaving", "--tenant", "acme", "--name", "m",
                 "--mode", "live", "--skip-check", "--yes")
        # Its feeds run only when asked, so an hour's turn cannot ring the bell.
        for feed in ["spin", "hog", "trap", "flood", "sneak", "probe", "count", "write-then-trap",
                     "write-then-error", "checkpoint-then-trap", "write-then-spin", "write-then-wait",
                     "ask-retry", "deny-loop", "fill", "fill-keys", "stream-body", "fan-out", "hoard",
                     "checkpoint-outbound"]:
            site.run("schedule", "acme/m", feed, "manual")
        site.run("records", "import", "acme", "orders", "tests/fixtures/marketing/orders.jsonl")
        cls.acme, _ = site.token("acme-admin", "--tenant", "acme", permissions="operate")
        cls.operator, _ = site.token("security", "--operator", permissions="operate,approve")
        cls.server = Server(site)
        try:
            cls.start_browser()
        except BaseException:
            cls.server.stop()
            raise

    @classmethod
    def start_browser(cls):
        cls.pw = sync_playwright().start()
        cls.browser = cls.pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # Playwright gives the browser a fresh user data directory of its own.

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.pw.stop()
        cls.server.stop()
        output = "\n".join(cls.server.lines)
        for secret in [cls.acme, cls.operator, "globex-secret-pw", "pw-never-echoed-123"]:
            assert secret not in output, f"a secret in serve's output:\n{output}"
        cls.site.dir.cleanup()

    def login(self, token):
        context = self.browser.new_context(base_url=self.server.base, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto("/console")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.get_by_label("Admin token").fill(token)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return context, page

    def reload_until(self, page, check, what):
        deadline = time.monotonic() + DEADLINE
        while not check():
            self.assertLess(time.monotonic(), deadline, f"waited for {what}")
            time.sleep(0.3)
            page.reload()

    def test_an_operators_day_add_switch_run_now_execution_bell_acknowledge_logout(self):
        context, page = self.login(self.acme)
        expect(page).to_have_url(re.compile(r"/console/t/acme/integrations$"))
        cookie = [c for c in context.cookies() if c["name"] == "airlock_console"][0]
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertEqual(cookie["path"], "/console")
        self.assertNotIn(self.acme, page.content())

        # Add an integration: hello, from the plugin store.
        page.get_by_role("link", name="Add an integration").click()
        expect(page.get_by_role("heading", name="custom-store 0.1.0")).to_be_visible()
        shot(page, "add-integration")
        page.get_by_role("link", name="Add hello 0.1.0").click()
        page.get_by_label("greeting").fill("hi from the console")
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_text("Test connection passed")).to_be_visible()
        page.get_by_role("button", name="Install").click()
        expect(page.get_by_role("status")).to_contain_text("Installed and enabled")
        row = page.get_by_role("row", name=re.compile(r"\bhello\b"))
        expect(row).to_contain_text("test")

        # The enabled switch: off, then on.
        page.get_by_role("switch", name="hello is enabled: switch it off").click()
        expect(page.get_by_role("status")).to_contain_text("Switched off")
        expect(page.get_by_role("switch", name="hello is disabled: switch it on")).to_have_attribute("aria-checked", "false")
        page.get_by_role("switch", name="hello is disabled: switch it on").click()
        expect(page.get_by_role("status")).to_contain_text("Switched on")
        shot(page, "integrations")

        # Its feeds, with schedule and next run; Run now.
        page.get_by_role("link", name="hello", exact=True).click()
        expect(page.get_by_role("heading", name="Feeds")).to_be_visible()
        expect(page.get_by_role("row", name=re.compile(r"^greet"))).to_contain_text("0 * * * * *")
        shot(page, "integration-feeds")
        page.get_by_role("button", name="Run greet now").click()
        expect(page.get_by_role("status")).to_contain_text("Queued")
        # The execution appears in Feed executions (serve runs it).
        self.reload_until(page, lambda: page.get_by_role("row", name=re.compile(r"greet.*manual")).count() > 0,
                          "the greet run")
        manual = page.get_by_role("row", name=re.compile(r"greet.*manual")).first
        expect(manual).to_contain_text("ok")
        shot(page, "feed-executions")
        manual.get_by_role("link").first.click()
        expect(page.get_by_role("heading", name="Log")).to_be_visible()
        expect(page.get_by_role("main")).to_contain_text("hi from the console")
        shot(page, "run-detail")

        # A failing run rings the bell.
        page.goto("/console/t/acme/integrations/m")
        page.get_by_role("button", name="Run trap now").click()
        self.reload_until(page, lambda: page.get_by_test_id("bell-count").inner_text() == "1", "the bell")
        page.get_by_role("link", name="Feed executions").click()
        page.get_by_role("link", name="error", exact=True).click()
        expect(page.get_by_role("row", name=re.compile(r"trap")).first).to_contain_text("error")
        page.get_by_role("link", name="Notifications: 1 open").click()
        expect(page.get_by_role("row", name=re.compile(r"trap"))).to_contain_text("wasm trap")
        shot(page, "notifications")
        page.get_by_role("button", name="Acknowledge: m trap").click()
        expect(page.get_by_role("status")).to_contain_text("Acknowledged")
        expect(page.get_by_test_id("bell-count")).to_have_text("0")
        expect(page.get_by_role("row", name=re.compile(r"trap"))).to_contain_text("acme-admin")

        # The audit of admin actions has the console's changes, by token.
        actions = self.site.run("tokens", "actions", "--tenant", "acme").stdout
        for action in ["installation.install", "installation.disable", "installation.enable",
                       "feed.run_now", "notification.acknowledge"]:
            self.assertIn(f"(acme-admin) {action}", actions)

        # Logout: the session is over.
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/console/login$"))
        page.goto("/console/t/acme/integrations")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        context.close()

    def test_a_connectors_state_is_seen_and_rewound_to_before_a_run(self):
        context, page = self.login(self.acme)
        for n in (1, 2):
            page.goto("/console/t/acme/integrations/m")
            page.get_by_role("button", name="Run count now").click()
            self.reload_until(
                page,
                lambda: len(json.loads(self.site.run("runs", "list", "--json", "--feed", "count").stdout)) == n
                and page.get_by_role("row", name=re.compile(r"count.*manual")).count() >= n,
                f"count run {n}")
        runs = json.loads(self.site.run("runs", "list", "--json", "--feed", "count").stdout)
        second = runs[0]["id"]
        page.goto("/console/t/acme/integrations/m")
        page.get_by_role("link", name="Connector state").click()
        row = page.get_by_role("row", name=re.compile(r"^count"))
        expect(row).to_contain_text("2")
        expect(row).to_contain_text(f"run #{second}")
        shot(page, "state")
        row.get_by_role("link", name="count").click()
        expect(page.get_by_role("heading", name="History of count")).to_be_visible()
        self.assertEqual(page.get_by_role("row").count(), 3)  # the header, 2 and 1
        page.go_back()
        page.get_by_label("Before run number").fill(str(second))
        page.get_by_role("button", name="Show what changes").click()
        expect(page.get_by_role("row", name=re.compile(r"^count"))).to_contain_text("1")
        page.get_by_role("button", name="OK, rewind it").click()
        expect(page.get_by_role("status")).to_contain_text("Rewound")
        expect(page.get_by_role("row", name=re.compile(r"^count"))).to_contain_text("rewind to before run")
        actions = self.site.run("tokens", "actions", "--tenant", "acme").stdout
        self.assertIn("(acme-admin) state.rewind acme/m", actions)
        context.close()

    def test_a_tenant_token_never_sees_another_tenant(self):
        context, page = self.login(self.acme)
        for path in ["integrations", "integrations/hello", "runs", "notifications", "records",
                     "artifacts", "egress", "add", "integrations/hello/state",
                     "integrations/hello/state/history?key=count"]:
            response = page.goto(f"/console/t/globex/{path}")
            self.assertEqual(response.status, 404, path)
            self.assertNotIn("globex-secret", page.content())
        response = page.goto("/console/t/acme/runs/999999")
        self.assertEqual(response.status, 404)
        context.close()

    def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(self):
        context, page = self.login(self.acme)
        page.goto("/console/t/acme/integrations/m")
        csrf = page.locator("input[name=csrf]").first.input_value()
        revision = page.locator("input[name=revision]").first.input_value()
        url = "/console/t/acme/integrations/m/enabled"
        form = {"enabled": "false", "revision": revision}
        no_token = context.request.post(url, form=form, max_redirects=0)
        self.assertEqual(no_token.status, 403)
        wrong = context.request.post(url, form={**form, "csrf": "x" * len(csrf)}, max_redirects=0)
        self.assertEqual(wrong.status, 403)
        elsewhere = context.request.post(url, form={**form, "csrf": csrf}, max_redirects=0,
                                         headers={"Origin": "http://evil.example"})
        self.assertEqual(elsewhere.status, 403)
        page.reload()
        expect(page.get_by_role("switch", name="m is enabled: switch it off")).to_be_visible()
        # The same form with its token from this origin is accepted.
        ok = context.request.post(url, form={**form, "csrf": csrf}, max_redirects=0,
                                  headers={"Origin": self.server.base})
        self.assertEqual(ok.status, 303)
        page.reload()
        page.get_by_role("switch", name="m is disabled: switch it on").click()
        expect(page.get_by_role("status")).to_contain_text("Switched on")
        context.close()

    def test_a_secret_is_never_echoed_and_a_failed_check_saves_nothing(self):
        context, page = self.login(self.operator)
        page.goto("/console/t/acme/add")
        page.get_by_role("link", name="Add custom-store 0.1.0").click()
        expect(page.get_by_label("password (required)")).to_have_attribute("type", "password")
        page.get_by_label("Name (required)", exact=True).fill("shop")
        page.get_by_label("endpoint (required)").fill("http://127.0.0.1:9/api/v1")
        page.get_by_label("username (required)").fill("acme")
        page.get_by_label("password (required)").fill("pw-never-echoed-123")
        shot(page, "add-form")
        page.get_by_role("checkbox", name="I approve the egress and record access above").check()
        page.get_by_role("button", name="Install").click()
        expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
        self.assertNotIn("pw-never-echoed-123", page.content())
        expect(page.get_by_label("password (required)")).to_have_value("")
        expect(page.get_by_label("endpoint (required)")).to_have_value("http://127.0.0.1:9/api/v1")
        page.goto("/console/t/acme/integrations")
        expect(page.get_by_role("link", name="shop", exact=True)).to_have_count(0)
        # The reviewer's pages.
        for name in ["records", "artifacts", "egress"]:
            page.goto(f"/console/t/acme/{name}")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            shot(page, name)
        page.goto("/console")
        expect(page.get_by_role("link", name="globex")).to_be_visible()
        shot(page, "tenants")
        context.close()

    def test_a_revoked_tokens_session_ends_at_its_next_request(self):
        token, number = self.site.token("short-lived", "--tenant", "acme", permissions="read")
        context, page = self.login(token)
        expect(page.get_by_role("switch").first).to_be_disabled()
        self.site.run("tokens", "revoke", str(number))
        page.reload()
        expect(page).to_have_url(re.compile(r"/console/login$"))
        context.close()

    def test_the_login_page(self):
        context = self.browser.new_context(base_url=self.server.base, viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto("/console/login")
        shot(page, "login")
        page.get_by_label("Admin token").fill("alk_not-a-token")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("not a live admin token")
        self.assertNotIn("alk_not-a-token", page.content())
        context.close()


if __name__ == "__main__":
    unittest.main()
