#!/usr/bin/env bash
# The SDK as a plugin author gets it: `cargo package` the bmc-plugin-sdk crate, unpack the
# .crate, and build an out-of-tree plugin (tests/guests/sample's source) against the unpacked
# crate alone, outside this workspace; then the host must accept the component. Fails if the
# package reaches outside its crate (the WIT contract lives in sdk/wit/ for that reason), misses a
# file, or builds something the host refuses. Uses the shared target directory, so a second run
# rebuilds only the plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' sdk/Cargo.toml | head -n 1)
crate_file=$target/package/bmc-plugin-sdk-$version.crate
rm -f "$crate_file"
# --allow-dirty: this checks what would be packaged from the tree as it is, not a release.
cargo package -p bmc-plugin-sdk --no-verify --allow-dirty --locked
test -f "$crate_file" || { echo "cargo package wrote no $crate_file" >&2; exit 1; }
size=$(wc -c <"$crate_file")
echo "packaged $(basename "$crate_file"): $size bytes"
if [ "$size" -gt 200000 ]; then
    echo "the SDK package is $size bytes: check \`include\` in sdk/Cargo.toml" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$crate_file" -C "$work"
sdk=$work/bmc-plugin-sdk-$version
for file in wit/v0.2/world.wit wit/v0.1/world.wit src/bindings.rs README.md; do
    test -f "$sdk/$file" || { echo "the SDK package lacks $file" >&2; exit 1; }
done
if [ -e "$sdk/tests" ]; then
    echo "the SDK package carries its tests: check \`include\` in sdk/Cargo.toml" >&2
    exit 1
fi

plugin=$work/oot-plugin
mkdir -p "$plugin/src"
cp tests/guests/sample/src/lib.rs "$plugin/src/lib.rs"
# Same toolchain, and the workspace's lock file as a starting point so the registry crates resolve
# to the versions already built (cargo drops what the plugin does not use and adds the plugin).
cp rust-toolchain.toml "$plugin/"
cp Cargo.lock "$plugin/"
cat >"$plugin/Cargo.toml" <<TOML
[package]
name = "oot-plugin"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
bmc-plugin-sdk = { path = "$sdk" }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# Its own workspace: not a member of any around it.
[workspace]
TOML
wasm=$target/wasm32-wasip2/release/oot_plugin.wasm
rm -f "$wasm"
(cd "$plugin" && cargo build --target wasm32-wasip2 --release)
test -f "$wasm" || { echo "the out-of-tree build produced no $wasm" >&2; exit 1; }

# The host must accept what the packaged SDK builds: contract version, manifest, imports.
inspect=$(cargo run -q -p bmc-rotate --no-default-features --locked -- plugins inspect "$wasm" --output json)
python3 - "$inspect" <<'PY'
import json, sys
info = json.loads(sys.argv[1])
assert info["id"] == "sample", info
assert info["api_version"] == "0.2.0", info
print(f"host accepts the out-of-tree plugin: {info['id']} {info['version']}, API {info['api_version']}")
PY
