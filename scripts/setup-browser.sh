#!/usr/bin/env bash
# Installs what the web console's browser tests need, skipping what is
# there already: Debian's Chromium (apt-get; run as root, as CI is) and
# Playwright for Python in a venv under ~/.cache/airlock keyed by its
# version. Playwright only drives the system browser over CDP: its own
# browser downloads are never asked for. The same venv holds
# openapi-spec-validator, which checks the admin API's OpenAPI document.
# Prints the venv's python.
set -euo pipefail
PLAYWRIGHT_VERSION=1.65.2
OPENAPI_VALIDATOR_VERSION=0.9.0
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
VENV="${HOME:-/tmp}/.cache/airlock/playwright-$PLAYWRIGHT_VERSION"
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
  echo "== installing playwright $PLAYWRIGHT_VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION" >&2
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
    sys.exit(m.version('openapi-spec-validator') != '$OPENAPI_VALIDATOR_VERSION')" 2>/dev/null; then
  echo "== installing openapi-spec-validator $OPENAPI_VALIDATOR_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION" >&2
fi
echo "$VENV/bin/python"
