#!/usr/bin/env bash
# Builds every example connector in plugins/ and puts each component at
# plugins/<name>/plugin.wasm, beside its plugin.toml: the Rust ones for
# wasm32-wasip2, the JavaScript ones with componentize-js.
#
# Prefers an installed rustup wasm32-wasip2 target. Without one (rustup cannot
# download targets on machines without internet), falls back to Debian's
# rustc-web with the standard library built from source (-Zbuild-std),
# installing the packages it needs when run as root.
#
# Usage: scripts/build-plugins.sh
# Environment: PLUGINS_TARGET_DIR  cargo target dir for guests
#              (default: $HOME/.cache/airlock/plugins-target)
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

# JavaScript guests: componentize-js from the npm registry (exact version in
# package.json; no lock file: one written here omitted a dependency that
# `npm install` then skipped), rebuilt when their sources change.
for dir in "$root"/plugins/*/; do
  [[ -f $dir/package.json && -f $dir/build.mjs ]] || continue
  name=$(basename "$dir")
  if [[ ! -d $dir/node_modules/@bytecodealliance/componentize-js ]]; then
    say "installing componentize-js for plugins/$name (npm install)"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
  if [[ ! -f $dir/plugin.wasm || -n $(find "$dir/src" "$dir/build.mjs" "$root/wit" -newer "$dir/plugin.wasm" 2>/dev/null) ]]; then
    say "building plugins/$name with componentize-js"
    (cd "$dir" && node build.mjs)
  fi
done

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
