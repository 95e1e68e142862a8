#!/usr/bin/env bash
# Builds the example plugins from source, then runs every test: the guest
# SDKs' and connectors' own unit tests (Rust natively; Python under plain
# CPython and JavaScript under Node, the host faked at the WIT boundary: a
# few seconds), then cargo's (unit and end to end). Extra arguments go to
# `cargo test`, e.g. scripts/test.sh sandbox
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

cargo test --workspace --locked -- "$@"
