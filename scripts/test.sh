#!/usr/bin/env bash
# Builds the example plugins from source, then runs every test: the guest
# SDKs' and connectors' own unit tests (Rust natively; Python under plain
# CPython and JavaScript under Node, the host faked at the WIT boundary: a
# few seconds), then cargo's (unit and end to end; the store's conformance
# suite on SQLite and on a loopback PostgreSQL that scripts/postgres.sh
# installs from Debian's packages and starts, once), then the web console's
# in a real headless Chromium (scripts/setup-browser.sh installs Debian's
# chromium and Playwright, once). Extra arguments go to `cargo test`, e.g.
# scripts/test.sh sandbox
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
# The guest SDK's and connectors' pure logic, natively (their own workspace).
cargo test --manifest-path plugins/Cargo.toml --locked --quiet \
  --target-dir "${HOME:-/tmp}/.cache/airlock/plugins-clippy" -p airlock-sdk -p salesmanago -p xero -p ebay -p xcart

echo "== Python connectors and SDK (python3 -m unittest)"
for tests in plugins/*/tests; do
  [[ -n $(find "$tests" -maxdepth 1 -name 'test_*.py' -print -quit) ]] || continue
  python3 -m unittest discover -s "$tests" -t "$tests"
done
echo "== JavaScript connectors and SDK (node --test)"
node --test plugins/*/test/

# The store's conformance suite runs on PostgreSQL too: on the database at
# $AIRLOCK_TEST_POSTGRES if set, else on a loopback one scripts/postgres.sh
# starts. Required: a missing database fails the run rather than skipping.
if [[ -z "${AIRLOCK_TEST_POSTGRES:-}" ]]; then
  echo "== PostgreSQL on loopback for the store's conformance suite (scripts/postgres.sh)"
  scripts/postgres.sh
  scripts/postgres.sh drop-test-schemas
  AIRLOCK_TEST_POSTGRES=$(cat "$(scripts/postgres.sh url)")
fi
AIRLOCK_TEST_POSTGRES="$AIRLOCK_TEST_POSTGRES" AIRLOCK_REQUIRE_POSTGRES=1 \
  cargo test --workspace --locked -- "$@"

echo "== the web console in headless Chromium (tests/browser: Playwright over CDP)"
python=$(scripts/setup-browser.sh)
cargo build --locked --quiet -p airlock --bin airlock
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
AIRLOCK_BIN="$target/debug/airlock" "$python" -m unittest discover -s tests/browser -v

echo "== the admin API's OpenAPI document (airlock openapi), validated by openapi-spec-validator"
document=$(mktemp --suffix=.json)
"$target/debug/airlock" openapi >"$document"
"$python" -m openapi_spec_validator "$document"
rm -f "$document"
