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

cargo build -q -p bmc-rotate -p bmc-lab --locked
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

# 4. Sign with the stock minisign tool, as a vendor does, and publish the public key.
minisign -G -W -p "$work/acme.pub" -s "$work/acme.key" >/dev/null
minisign -S -s "$work/acme.key" -m "$wasm" -t "acme-bmc walk-through" >/dev/null

# 5. The operator installs it with a profile that requires that key, and rotates (a dry run) a lab
#    stamp whose generic BMC names that profile.
cd "$work"
"$bmc_rotate" plugins install "$wasm" --signer "$work/acme.pub" --profile acme-server --default-account root \
    --dir "$work/plugins" --profile-dir "$work/profiles"
grep -q '^signers = \["RW' "$work/profiles/acme-server.toml"
printf 'stamp = "walk"\npassword = "Walk-Old-Pass-1"\nuser = "azsbmc"\n[fleet]\ndmtf-generic = 1\n' > fleet.toml
"$target/debug/bmc-lab" stamp --fleet fleet.toml --out "$work/stamp" > stamp.log 2>&1 &
lab=$!
trap 'kill $lab 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do test -s "$work/stamp/inventory.toml" && break; sleep 0.1; done
sed -i 's/^profile = "generic-redfish"$/profile = "acme-server"/' "$work/stamp/inventory.toml"
grep -q '^profile = "acme-server"$' "$work/stamp/inventory.toml"
rotate() {
    WALK_NEW=WalkNewPass2x BMC_ROTATE_PROFILE_DIR="$work/profiles" XDG_STATE_HOME="$work/state" \
        "$bmc_rotate" rotate --inventory "$work/stamp/inventory.toml" --plugin-dir "$1" \
        --bmc-password "file:$work/stamp/bmc-password" --cloudadmin-password "file:$work/stamp/cloudadmin-password" \
        --new-password env:WALK_NEW --dry-run --yes
}
rotate "$work/plugins"
# The same plugin without its signature: the profile refuses it before compiling it.
mkdir "$work/unsigned" && cp "$work/plugins/acme_bmc.wasm" "$work/unsigned/"
if rotate "$work/unsigned" > unsigned.log 2>&1; then
    echo "an unsigned plugin was used through a profile that requires a signature" >&2
    cat unsigned.log >&2
    exit 1
fi
grep -q "not compiled" unsigned.log || { cat unsigned.log >&2; exit 1; }
echo "walk-through: new, build, unit tests, plugin test, sign, install, signed dry run, unsigned refused: ok"
