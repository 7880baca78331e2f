#!/usr/bin/env bash
# plugins/README.md's walk-through, as a vendor follows it, from a directory outside this
# workspace: `bmc-rotate plugin new` -> build the component against the packaged SDK (the .crate
# .ci/sdk-package.sh made, unpacked) -> the crate's own unit tests -> `bmc-rotate plugin test`
# against the lab's standard persona. Fails if any step does. Run after .ci/sdk-package.sh.
# Builds in <target>/plugin-new (the directory host/tests/plugin_new.rs uses), so a second run
# rebuilds only the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' sdk/Cargo.toml | head -n 1)
crate_file=$target/package/bmc-plugin-sdk-$version.crate
test -f "$crate_file" || { echo "no $crate_file: run .ci/sdk-package.sh first" >&2; exit 1; }

cargo build -q -p bmc-rotate --locked
bmc_rotate=$target/debug/bmc-rotate

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$crate_file" -C "$work"
sdk=$work/bmc-plugin-sdk-$version

# 1. New: a crate of its own, depending on the packaged SDK.
cd "$work"
"$bmc_rotate" plugin new acme-bmc --vendor Acme --sdk-path "$sdk"
cd acme-bmc
# This tree's lock file, so the registry crates resolve to the versions CI already built.
cp "$root/Cargo.lock" .
export CARGO_TARGET_DIR=$target/plugin-new

# 2. Its unit tests (MockHost, this machine's target), then the component.
cargo test --quiet
cargo build-plugin
wasm=$CARGO_TARGET_DIR/wasm32-wasip2/plugin/acme_bmc.wasm
"$bmc_rotate" plugins inspect "$wasm"

# 3. The conformance suite against the lab's standard persona, as generated.
"$bmc_rotate" plugin test "$wasm" --persona dmtf-generic

# 4. Sign, install, rotate: appended by the signing work (plugins/README.md, "Sign and ship").
