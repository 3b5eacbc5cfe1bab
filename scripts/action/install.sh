#!/usr/bin/env bash
# Step (a) of action.yml: put a goldgate built from the action's own source on PATH.
#
#   install.sh key     print the cache key of this source + features + runner to $GITHUB_OUTPUT (key=…)
#   install.sh build   build into $GOLDGATE_ROOT unless a restored cache already holds the binary,
#                      then add $GOLDGATE_ROOT/bin to $GITHUB_PATH
#
# Inputs (environment): GITHUB_ACTION_PATH (the action's checkout: Cargo.toml, Cargo.lock, src/),
# INPUT_FEATURES (cargo features, e.g. "gguf"), INPUT_INSTALL ('false': use the goldgate already on
# PATH), GOLDGATE_ROOT (default ~/.goldgate, the directory actions/cache saves), RUNNER_OS, RUNNER_ARCH.
set -euo pipefail

src=${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set: run this from action.yml or set it to the goldgate checkout}
root=${GOLDGATE_ROOT:-$HOME/.goldgate}
features=${INPUT_FEATURES:-}
install=${INPUT_INSTALL:-true}
: "${GITHUB_OUTPUT:=/dev/null}" "${GITHUB_PATH:=/dev/null}"

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi
}

# One hash over every file a build reads, each with its path, so a renamed file changes the key too.
source_hash() {
  (
    cd "$src"
    { printf '%s\n' Cargo.toml Cargo.lock; find src -type f; } | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s %s\n' "$(sha256 <"$f" | cut -d' ' -f1)" "$f"
    done
    printf 'features=%s\n' "$features"
  ) | sha256 | cut -d' ' -f1
}

case "${1:-}" in
  key)
    # The features go into the key in clear too, so a cache listing says which build is which.
    slug=$(printf '%s' "${features:-default}" | tr -c 'A-Za-z0-9_-' '_')
    key="goldgate-${RUNNER_OS:-$(uname -s)}-${RUNNER_ARCH:-$(uname -m)}-${slug}-$(source_hash)"
    echo "cache key: $key"
    echo "key=$key" >>"$GITHUB_OUTPUT"
    ;;
  build)
    if [ "$install" = false ]; then
      command -v goldgate >/dev/null 2>&1 || {
        echo "::error title=goldgate::install is 'false' but no goldgate is on PATH"
        exit 1
      }
      echo "using $(command -v goldgate) ($(goldgate --version))"
      exit 0
    fi
    if [ -x "$root/bin/goldgate" ] && "$root/bin/goldgate" --version >/dev/null 2>&1; then
      echo "goldgate restored from the cache: $("$root/bin/goldgate" --version)"
    else
      command -v cargo >/dev/null 2>&1 || {
        echo "::error title=goldgate::cargo is not on PATH: install a Rust toolchain before this action (GitHub's Ubuntu and macOS runners have one)"
        exit 1
      }
      args=(install --locked --root "$root" --path "$src")
      [ -z "$features" ] || args+=(--features "$features")
      echo "cargo ${args[*]}"
      cargo "${args[@]}"
    fi
    echo "$root/bin" >>"$GITHUB_PATH"
    ;;
  *)
    echo "usage: install.sh key|build" >&2
    exit 2
    ;;
esac
