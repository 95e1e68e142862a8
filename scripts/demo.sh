#!/usr/bin/env bash
# The demo on a fresh machine: builds the example connectors from source and
# the host, starts a fake shop API on loopback, and runs the custom-store
# connector against it on an embedded SQLite database, twice (the second run
# asks only for the orders modified since the first). Then shows the sandbox
# stopping a misbehaving connector, and what `airlock inspect` and
# `airlock egress check|log|audit` tell a reviewer. Finally operations: two
# tenants with connectors installed, `airlock serve` running their feeds on
# schedule, a "Run now" of a failing feed, the feed executions and the
# notification it raised. Last, the tenant data hub: a shop's catalogue,
# orders, returns, purchase orders, payments and refunds imported as records,
# synced to a fake Xero over TLS (OAuth2 held by the host), and published as
# a Google Shopping feed and a sitemap that curl fetches from `airlock serve
# --listen`. And marketing: a Polish shop's contacts and purchases sent to a
# fake SALESmanago, and SALESmanago's opt-out callback (a webhook) received
# by `airlock serve --listen`. At the end, an operator's token for the web
# console and its URL.
#
# Usage: scripts/demo.sh        (work files go to a temporary directory)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "building the example plugins (wasm32-wasip2) from source"
scripts/build-plugins.sh
say "building the host"
cargo build --locked --quiet -p airlock -p airlock-tests --bins
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

work=$(mktemp -d)
export AIRLOCK_DB=$work/airlock.db
"$bin/airlock-fake-store" --port 0 --orders 5 > "$work/shop.log" 2>&1 &
shop_pid=$!
trap 'kill $shop_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$work/shop.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/shop.log" | head -1)
[[ -n $port ]] || { cat "$work/shop.log"; exit 1; }
say "fake shop listening on 127.0.0.1:$port, reached as shop.test through the test resolver"
printf 'password = "demo-password"\n' > "$work/secrets.toml"

now=$(date -u +%Y-%m-%dT%H:00:00Z)
later=$(date -u -d "$now + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
run_orders() {
  "$bin/airlock" run plugins/custom-store --feed orders --tenant acme \
    --config "endpoint=http://shop.test:$port/api/v1" --config username=demo \
    --config-file "$work/secrets.toml" --resolve shop.test=127.0.0.1 --allow-network 127.0.0.0/8 "$@"
}

say "airlock inspect plugins/custom-store"
"$bin/airlock" inspect plugins/custom-store

say "first run (due $now): imports the last day's orders"
run_orders --at "$now"

say "the shop gets a new order; second run (due $later) asks only for the new window"
python3 - "$port" "$now" <<'PY'
import json, sys, urllib.request
from datetime import datetime, timedelta
port, now = sys.argv[1], datetime.strptime(sys.argv[2], "%Y-%m-%dT%H:%M:%SZ")
order = {"OrderNumber": "R2001", "ModifiedDate": (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")}
req = urllib.request.Request(f"http://127.0.0.1:{port}/_admin/orders", json.dumps(order).encode(), {"content-type": "application/json"})
urllib.request.urlopen(req)
PY
run_orders --at "$later"

say "the sandbox: a connector that tries hosts it was not granted"
"$bin/airlock" run plugins/misbehaving --feed sneak --tenant acme || true
say "the sandbox: a connector that never returns is stopped at its deadline (exit 4 = error)"
"$bin/airlock" run plugins/misbehaving --feed spin --tenant acme || echo "exit status $?"

say "a security reviewer's view: check a URL without sending it (exit 1 = denied)"
"$bin/airlock" egress check plugins/custom-store "https://evil.example/steal" \
  --config "endpoint=http://shop.test:$port/api/v1" || echo "exit status $?"
say "the audit trail of denied requests, and what each plugin may reach and used"
"$bin/airlock" egress log --denied --limit 5
"$bin/airlock" egress audit plugins/custom-store plugins/misbehaving

say "operations: a master key, two tenants, connectors installed for each"
export AIRLOCK_MASTER_KEY_FILE=$work/master.key
"$bin/airlock" keygen "$AIRLOCK_MASTER_KEY_FILE"
"$bin/airlock" tenant add acme --name "Acme Outdoor"
"$bin/airlock" tenant add globex --name "Globex Homeware"
"$bin/airlock" install plugins/custom-store --tenant acme --name shop --mode live \
  --config "endpoint=http://shop.test:$port/api/v1" --config username=demo \
  --config-file "$work/secrets.toml" --schedule "orders=*/20 * * * * *" \
  --resolve shop.test=127.0.0.1 --allow-network 127.0.0.0/8 --yes
for tenant in acme globex; do
  "$bin/airlock" install plugins/hello --tenant "$tenant" --mode live \
    --schedule "greet=*/10 * * * * *" --time-zone Europe/London --yes
done
# A connector whose check fails on purpose: installed without the check.
"$bin/airlock" install plugins/misbehaving --tenant globex --name broken --skip-check --yes
"$bin/airlock" installations

say "airlock serve: feeds run on their schedules (watch for 25 seconds)"
"$bin/airlock" serve --jitter 2s --resolve shop.test=127.0.0.1 --allow-network 127.0.0.0/8 \
  > "$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $shop_pid $serve_pid 2>/dev/null || true' EXIT
sleep 12
say "Run now: a failing feed (it traps), from another process"
"$bin/airlock" run-now globex/broken trap
sleep 13
kill -TERM $serve_pid
wait $serve_pid || true
cat "$work/serve.log"

say "feed executions and the notification that waits for a person"
"$bin/airlock" runs list --limit 12
"$bin/airlock" notifications list

say "the tenant data hub: one shop's records flow to Xero (a fake, over TLS) and out as live feeds"
"$bin/airlock-fake-xero" --ca-out "$work/xero-ca.pem" --secrets-out "$work/xero-secrets.toml" \
  > "$work/xero.log" 2>&1 &
xero_pid=$!
trap 'kill $shop_pid $serve_pid $xero_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "fake xero listening" "$work/xero.log" 2>/dev/null && break; sleep 0.1; done
idp_port=$(sed -n 's/.*identity on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/xero.log" | head -1)
api_port=$(sed -n 's/.*api on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/xero.log" | head -1)
[[ -n $idp_port && -n $api_port ]] || { cat "$work/xero.log"; exit 1; }
head -3 "$work/xero.log"
xero_net=(--resolve "identity.xero.com=127.0.0.1:$idp_port" --resolve "api.xero.com=127.0.0.1:$api_port"
  --trust-root "$work/xero-ca.pem" --allow-network 127.0.0.0/8)

say "the shop's data, imported as the platform: a catalogue, orders, returns, purchase orders, payments, refunds"
"$bin/airlock" tenant add hadley --name "Hadley Homeware"
for c in products categories category-mappings stock; do
  "$bin/airlock" records import hadley "$c" "tests/fixtures/catalog/$c.jsonl"
done
for c in orders returns purchase-orders payments refunds; do
  "$bin/airlock" records import hadley "$c" "tests/fixtures/shop/$c.jsonl"
done

say "the operator's permitted domains: the shipped table plus Xero, added here visibly"
cp permitted-domains.toml "$work/permitted.toml"
printf '\n# Added by this operator for the Xero connector.\n"xero.com" = "Xero accounting"\n' \
  >> "$work/permitted.toml"
tail -2 "$work/permitted.toml"
export AIRLOCK_PERMITTED_DOMAINS=$work/permitted.toml

say "install Xero (OAuth2 by client credentials, held by the host), Google Shopping (Python) and the sitemap (JavaScript)"
"$bin/airlock" install plugins/xero --tenant hadley --mode live --config client_id=fake-client-id \
  --config-file "$work/xero-secrets.toml" --config credit_note_status=authorised "${xero_net[@]}" --yes
"$bin/airlock" reauthorise hadley/xero --oauth "${xero_net[@]}"
"$bin/airlock" install plugins/google-shopping --tenant hadley --mode live \
  --config store_url=https://shop.example.co.uk --config local_inventory=true --yes
"$bin/airlock" install plugins/sitemap --tenant hadley --mode live \
  --config base_url=https://shop.example.co.uk --yes

say "airlock serve --listen: run all three now (Xero's calls paced to its 60 a minute: about a minute)"
# The earlier tenants' schedules are switched off, so this server's log is the hub's.
for inst in acme/shop acme/hello globex/hello globex/broken; do "$bin/airlock" disable "$inst"; done
"$bin/airlock" serve --listen 127.0.0.1:0 --jitter 0s "${xero_net[@]}" > "$work/serve-hub.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "^listening on http://" "$work/serve-hub.log" 2>/dev/null && break; sleep 0.1; done
listen=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$work/serve-hub.log" | head -1)
[[ -n $listen ]] || { cat "$work/serve-hub.log"; exit 1; }
"$bin/airlock" run-now hadley/xero sync
"$bin/airlock" run-now hadley/google-shopping products
"$bin/airlock" run-now hadley/sitemap sitemap
for _ in $(seq 600); do
  [[ $(grep -cE '^[0-9:]+ (OK|INFO|RETRY|ERROR) +hadley/' "$work/serve-hub.log") -ge 3 ]] && break
  sleep 0.1
done
cat "$work/serve-hub.log"

say "the live feeds, fetched with curl (the token is shown once, stored hashed)"
"$bin/airlock" artifacts list hadley/google-shopping
feed_url() {
  "$bin/airlock" artifacts token "$1" --rotate --base-url "$listen" \
    | sed -n 's/^  \(http.*\)/\1/p' | sed "s/{name}/$2/"
}
shopping=$(feed_url hadley/google-shopping google-shopping.xml)
curl -sS --compressed "$shopping" | head -24
curl -sSI "$shopping" | grep -iE '^(HTTP|etag|last-modified|content-type)'
curl -sS -o /dev/null -w 'again with If-None-Match: HTTP %{http_code}\n' \
  -H "If-None-Match: $(curl -sSI "$shopping" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' | tr -d '\r')" "$shopping"
curl -sS -o /dev/null -w 'with a wrong token: HTTP %{http_code}\n' "${shopping%token=*}token=wrong"
curl -sS --compressed "$(feed_url hadley/sitemap sitemap.xml)" | head -8

say "what the fake Xero holds, and the orders still pending for it (cancelled, draft, quote, abandoned: never exported)"
kill -TERM $serve_pid
wait $serve_pid || true
kill -TERM $xero_pid
wait $xero_pid || true
tail -1 "$work/xero.log"
"$bin/airlock" records list hadley orders --pending-for xero --limit 5

say "marketing and webhooks: SALESmanago (seed 003) for a Polish shop, against a fake over TLS"
"$bin/airlock-fake-salesmanago" --ca-out "$work/sm-ca.pem" --secrets-out "$work/sm-secrets.toml" \
  > "$work/sm.log" 2>&1 &
sm_pid=$!
trap 'kill $shop_pid $serve_pid $xero_pid $sm_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "fake salesmanago listening" "$work/sm.log" 2>/dev/null && break; sleep 0.1; done
sm_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/sm.log" | head -1)
[[ -n $sm_port ]] || { cat "$work/sm.log"; exit 1; }
head -3 "$work/sm.log"
sm_net=(--resolve "app2.salesmanago.pl=127.0.0.1:$sm_port" --trust-root "$work/sm-ca.pem"
  --allow-network 127.0.0.0/8)
printf '"salesmanago.pl" = "SALESmanago marketing automation"\n"salesmanago.com" = "SALESmanago marketing automation"\n' >> "$work/permitted.toml"
"$bin/airlock" tenant add wisla --name "Wisła Home"
for c in customers categories products orders; do
  "$bin/airlock" records import wisla "$c" "tests/fixtures/marketing/$c.jsonl"
done
"$bin/airlock" install plugins/salesmanago --tenant wisla --mode live --check-mode live \
  --config endpoint=https://app2.salesmanago.pl --config client_id=demo-client \
  --config owner=owner@shop.example --config consent=all --config location=krakow \
  --config-file "$work/sm-secrets.toml" "${sm_net[@]}" --yes

say "serve: contacts (tags rejestracja / newsletter) and purchases (category-path tags) now"
for inst in hadley/xero hadley/google-shopping hadley/sitemap; do "$bin/airlock" disable "$inst"; done
"$bin/airlock" serve --listen 127.0.0.1:0 --jitter 0s "${sm_net[@]}" > "$work/serve-sm.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "^listening on http://" "$work/serve-sm.log" 2>/dev/null && break; sleep 0.1; done
listen=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$work/serve-sm.log" | head -1)
[[ -n $listen ]] || { cat "$work/serve-sm.log"; exit 1; }
"$bin/airlock" run-now wisla/salesmanago contacts
"$bin/airlock" run-now wisla/salesmanago purchases
for _ in $(seq 300); do
  [[ $(grep -cE '^[0-9:]+ (OK|INFO|RETRY|ERROR) +wisla/' "$work/serve-sm.log") -ge 2 ]] && break
  sleep 0.1
done

say "SALESmanago's opt-out callback, a webhook: its URL holds the installation's 16-character secret"
"$bin/airlock" webhooks list wisla/salesmanago
hooks=$("$bin/airlock" webhooks secret wisla/salesmanago --base-url "$listen")
sed 's/\(hooks\/wisla\/salesmanago\/[a-z-]*\/\)[A-Za-z0-9]*/\1<secret>/; s/(it is stored hashed): .*/(it is stored hashed): <secret>/' <<<"$hooks"
optout=$(sed -n 's/^  opt-out  \(http.*\)/\1/p' <<<"$hooks")
curl -sS -o /dev/null -w 'opt-out of ann@example.com: HTTP %{http_code}\n' "$optout?email=ann@example.com"
curl -sS -o /dev/null -w 'the same with a wrong secret: HTTP %{http_code}\n' \
  "${optout%/*}/WRONGSECRET00000?email=ann@example.com"
"$bin/airlock" records show wisla customers cust-ann | grep -E '"(newsletter|marketing_consent)"'
kill -TERM $serve_pid
wait $serve_pid || true
cat "$work/serve-sm.log"
"$bin/airlock" runs list --tenant wisla --limit 4
kill -TERM $sm_pid
wait $sm_pid || true
sed -n '/SALESmanago holds/,$p' "$work/sm.log"

say "the web console: an operator's token (shown once), and where to open the console"
console_token=$("$bin/airlock" tokens create demo-operator --operator --permission read,operate,approve 2>/dev/null)
echo "start the server:  AIRLOCK_DB=$AIRLOCK_DB AIRLOCK_MASTER_KEY_FILE=$AIRLOCK_MASTER_KEY_FILE $bin/airlock serve --listen 127.0.0.1:8440"
echo "open the console:  http://127.0.0.1:8440/console"
echo "log in with token: $console_token"

say "done: database $AIRLOCK_DB"
