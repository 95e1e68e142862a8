#!/usr/bin/env bash
# Builds every example connector in plugins/ and puts each component at
# plugins/<name>/plugin.wasm, beside its plugin.toml: the Rust ones for
# wasm32-wasip2 (a directory with Cargo.toml), the Python ones with
# componentize-py (a directory with app.py), the JavaScript ones with
# componentize-js (a directory with src/index.js).
#
# Rust: prefers an installed rustup wasm32-wasip2 target. Without one (rustup
# cannot download targets on machines without internet), falls back to
# Debian's rustc-web with the standard library built from source
# (-Zbuild-std), installing the packages it needs when run as root.
#
# Python and JavaScript: each tool is installed once per version from its
# registry, into $AIRLOCK_CACHE/componentize-py-<version> (a venv, PyPI) and
# $AIRLOCK_CACHE/componentize-js-<version> (one npm project every JavaScript
# plugin's build uses). A built component is kept in
# $AIRLOCK_CACHE/plugin-builds/<hash>.wasm, the hash taken over everything it
# is built from (the plugin's files, the SDK module, the WIT, the tool and its
# version), so an unchanged plugin is copied, not rebuilt.
#
# Usage: scripts/build-plugins.sh
# Environment: PLUGINS_TARGET_DIR  cargo target dir for guests
#              (default: $HOME/.cache/airlock/plugins-target)
#              AIRLOCK_CACHE       tools and built components
#              (default: $HOME/.cache/airlock)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/plugins"
target_dir=${PLUGINS_TARGET_DIR:-${HOME:-/tmp}/.cache/airlock/plugins-target}
export CARGO_TARGET_DIR=$target_dir

say() { printf '==> %s\n' "$*" >&2; }

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  say "building plugins with the installed rustup wasm32-wasip2 target"
  cargo build --release --target wasm32-wasip2
else
  packages=(rustc-web rust-web-src lld-19 wasi-libc)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      say "missing packages: ${missing[*]}"
      say "install them with: sudo apt-get install -y ${missing[*]}  (or: rustup target add wasm32-wasip2)"
      exit 1
    fi
    say "installing ${missing[*]} (Debian's rustc-web toolchain for wasm32-wasip2)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  say "building plugins with Debian's rustc-web and -Zbuild-std (first build compiles std: about a minute)"
  PATH=/usr/lib/llvm-19/bin:$PATH \
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-L /usr/lib/wasm32-wasi" \
    cargo build --release --target wasm32-wasip2 -Zbuild-std=std,panic_abort
fi

for manifest in "$root"/plugins/*/plugin.toml; do
  dir=$(dirname "$manifest")
  name=$(basename "$dir")
  [[ -f $dir/Cargo.toml ]] || continue
  crate=${name//-/_}
  built=$target_dir/wasm32-wasip2/release/$crate.wasm
  if [[ ! -f $built ]]; then
    say "error: $built was not built"
    exit 1
  fi
  cp "$built" "$dir/plugin.wasm"
  say "plugins/$name/plugin.wasm ($(du -k "$dir/plugin.wasm" | cut -f1) KiB)"
done

# Python and JavaScript guests. Tools pinned here, installed once per version.
cache=${AIRLOCK_CACHE:-${HOME:-/tmp}/.cache/airlock}
componentize_py_version=0.25.1
componentize_js_version=0.23.0
builds=$cache/plugin-builds
mkdir -p "$builds"

# A hash of everything a component is built from: the tool line, then each
# file's path (relative to the checkout) and contents, in a fixed order.
inputs_hash() {
  local tool=$1
  shift
  (
    cd "$root"
    printf '%s\n' "$tool"
    find "$@" -type f ! -name plugin.wasm ! -name package-lock.json \
      ! -path '*/node_modules/*' ! -path '*/__pycache__/*' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-40
}

# Copies the cached component for `hash` to `dir`/plugin.wasm, or builds it
# with the rest of the arguments (a command writing to $out) and caches it.
build_cached() {
  local dir=$1 hash=$2 kind=$3
  shift 3
  local name cached
  name=$(basename "$dir")
  cached=$builds/$hash.wasm
  if [[ -f $cached ]]; then
    say "plugins/$name: unchanged, component from the cache ($kind)"
  else
    say "building plugins/$name with $kind"
    local started=$SECONDS
    out=$cached.tmp.$$
    "$@"
    mv "$out" "$cached"
    say "built plugins/$name in $((SECONDS - started)) s"
  fi
  cp "$cached" "$dir/plugin.wasm"
  say "plugins/$name/plugin.wasm ($(du -k "$dir/plugin.wasm" | cut -f1) KiB)"
}

componentize_py=$cache/componentize-py-$componentize_py_version/bin/componentize-py
ensure_componentize_py() {
  if "$componentize_py" --version 2>/dev/null | grep -qx "componentize-py $componentize_py_version"; then
    return
  fi
  local venv=$cache/componentize-py-$componentize_py_version
  say "installing componentize-py $componentize_py_version into $venv (once per version)"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
    # Neither venv nor pip (a bare Debian python3): install them as the
    # Rust toolchain's packages are installed, when run as root.
    rm -rf "$venv"
    if [[ $(id -u) -ne 0 ]]; then
      say "python3 has neither venv nor pip: install them with: sudo apt-get install -y python3-venv python3-pip"
      exit 1
    fi
    say "installing python3-venv and python3-pip (Debian) for componentize-py"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
  fi
  rm -rf "$venv"
  if python3 -m venv "$venv" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version"
  else
    # No venv module (Debian's python3 without python3-venv): install into a
    # directory of its own and run the package's entry point from there.
    rm -rf "$venv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$venv/lib" \
      "componentize-py==$componentize_py_version"
    mkdir -p "$venv/bin"
    printf '#!/bin/sh\nPYTHONPATH="%s" exec python3 -c "import componentize_py; componentize_py.script()" "$@"\n' \
      "$venv/lib" >"$componentize_py"
    chmod +x "$componentize_py"
  fi
}

js_tools=$cache/componentize-js-$componentize_js_version
ensure_componentize_js() {
  local installed=$js_tools/node_modules/@bytecodealliance/componentize-js/package.json
  if [[ -f $installed ]] && grep -q "\"version\": \"$componentize_js_version\"" "$installed"; then
    return
  fi
  say "installing componentize-js $componentize_js_version into $js_tools (once per version)"
  rm -rf "$js_tools"
  mkdir -p "$js_tools"
  # No lock file: one written here omitted a dependency that `npm install`
  # then skipped. The exact version is pinned.
  printf '{ "private": true, "type": "module", "dependencies": { "@bytecodealliance/componentize-js": "%s" } }\n' \
    "$componentize_js_version" >"$js_tools/package.json"
  (cd "$js_tools" && npm install --no-audit --no-fund --loglevel=error)
}

for dir in "$root"/plugins/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [[ -f $dir/plugin.toml ]] || continue
  if [[ -f $dir/app.py ]]; then
    ensure_componentize_py
    hash=$(inputs_hash "componentize-py $componentize_py_version -w connector app" \
      "plugins/$name" plugins/sdk-python/airlock_sdk.py wit)
    build_cached "$dir" "$hash" "componentize-py $componentize_py_version" \
      eval '"$componentize_py" -d "$root/wit" -w connector componentize app \
        -p "$dir" -p "$root/plugins/sdk-python" -o "$out" >/dev/null'
  elif [[ -f $dir/src/index.js ]]; then
    ensure_componentize_js
    hash=$(inputs_hash "componentize-js $componentize_js_version" \
      "plugins/$name" plugins/sdk-js/airlock-sdk.js plugins/js-tools/build.mjs wit)
    build_cached "$dir" "$hash" "componentize-js $componentize_js_version" \
      eval 'AIRLOCK_JS_TOOLS="$js_tools" node "$root/plugins/js-tools/build.mjs" "$dir" "$out"'
  fi
done
