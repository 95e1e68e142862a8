#!/usr/bin/env bash
# Builds every example connector in plugins/ for wasm32-wasip2 and copies each
# component to plugins/<name>/plugin.wasm, beside its plugin.toml.
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
