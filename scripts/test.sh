#!/usr/bin/env bash
# Builds the example plugins from source, then runs every test (unit and
# end-to-end). Extra arguments go to `cargo test`, e.g. scripts/test.sh sandbox
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
# The guest SDK's and connectors' pure logic, natively (their own workspace).
cargo test --manifest-path plugins/Cargo.toml --locked --quiet \
  --target-dir "${HOME:-/tmp}/.cache/airlock/plugins-clippy" -p airlock-sdk -p xero
cargo test --workspace --locked -- "$@"
