#!/usr/bin/env bash
# Builds the example plugins from source, then runs every test (unit and
# end-to-end). Extra arguments go to `cargo test`, e.g. scripts/test.sh sandbox
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo test --workspace --locked -- "$@"
