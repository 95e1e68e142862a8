#!/usr/bin/env bash
# The demo on a fresh machine: builds the example connectors from source and
# the host, starts a fake shop API on loopback, and runs the custom-store
# connector against it on an embedded SQLite database, twice (the second run
# asks only for the orders modified since the first). Then shows the sandbox
# stopping a misbehaving connector, and what `airlock inspect` and
# `airlock egress check|log|audit` tell a reviewer. Finally operations: two
# tenants with connectors installed, `airlock serve` running their feeds on
# schedule, a "Run now" of a failing feed, the feed executions and the
# notification it raised.
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

say "done: database $AIRLOCK_DB"
