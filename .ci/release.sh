#!/usr/bin/env bash
# Builds the release artifacts into $CARGO_TARGET_DIR/dist (README: Release notes / artifacts):
#   bmc-rotate_VERSION_ARCH.deb                 binary, plugins, man pages, completions (dpkg-deb)
#   bmc-rotate-VERSION-TRIPLE.tar.gz            the same files under bin/, lib/, share/ (any prefix)
#   bmc-rotate-VERSION-TRIPLE.debug             the binary's debug info, split off before stripping
#   *.cdx.json                                  a CycloneDX SBOM per artifact (.ci/sbom.py)
#   SHA256SUMS, SHA256SUMS.minisig, minisign.pub  sums of all the above, signed
# then installs the .deb (`dpkg -x`) and the tarball into temporary roots and, in a mount namespace
# where the source tree, the target directory and the Rust toolchain are hidden, runs each
# installed `bmc-rotate --version`, `plugins list` and `rotate --dry-run` against a lab fleet.
#
# Signing: with BMC_ROTATE_MINISIGN_KEY (a minisign secret key file) and BMC_ROTATE_MINISIGN_PUB
# (its public key file), the release environment's key signs; otherwise a throwaway key made here
# does, so CI checks the whole path. Cargo runs as $RELEASE_CARGO (default `cargo`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
cargo=${RELEASE_CARGO:-cargo}
wasm=${BMC_TEST_WASM_TARGET:-$target/wasm}/wasm32-wasip2/plugin
dist=$target/dist
plugins=(dell-idrac hpe-ilo lenovo-xcc generic-redfish)
max_binary=$((30 * 1024 * 1024))

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' host/Cargo.toml | head -n 1)
triple=$(rustc -vV | sed -n 's/^host: //p')
arch=$(dpkg --print-architecture)
# Every timestamp in the artifacts (archive members, SBOMs) is the commit's: rebuilding a commit
# gives the same bytes.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
name=bmc-rotate-$version-$triple
deb=bmc-rotate_${version}_$arch.deb
umask 022

step() {
    local t=$SECONDS
    "$@"
    echo "   ($(($SECONDS - t)) s)"
}

echo "-- build: the lean binary (release profile), the vendor plugins (host/src/plugin_build.rs), the lab"
step "$cargo" build --release -p bmc-rotate --no-default-features --locked
# bmc-tests' build script runs the reproducible plugin build the built-in profiles' pins come from.
step "$cargo" build -p bmc-tests -p bmc-lab --locked
binary=$target/release/bmc-rotate
for p in "${plugins[@]}"; do
    file=$wasm/${p//-/_}.wasm
    built=$(sha256sum "$file" | cut -d' ' -f1)
    for profile in $(grep -l "^plugin = \"$p\"" host/profiles/*.toml); do
        pin=$(sed -n 's/^plugin_sha256 = "\(.*\)"$/\1/p' "$profile")
        if [ "$pin" != "$built" ]; then
            echo "$profile pins $p at $pin, but this tree builds $built: BMC_ROTATE_UPDATE_PINS=1 cargo test -p bmc-tests --test pins" >&2
            exit 1
        fi
    done
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bmc-rotate-release.XXXXXX")
lab_pids=()
cleanup() {
    for pid in "${lab_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
case "$work/" in
"$root"/* | "$target"/*) echo "the temporary directory $work is inside the tree or target: set TMPDIR" >&2; exit 1 ;;
esac

echo "-- stage: strip (debug info split off), man pages, completions"
rm -rf "$dist"
mkdir -p "$dist"
usr=$work/stage/usr
mkdir -p "$usr/bin" "$usr/lib/bmc-rotate/plugins" "$usr/share/man/man1" "$usr/share/doc/bmc-rotate/profiles" \
    "$usr/share/bash-completion/completions" "$usr/share/zsh/vendor-completions" "$usr/share/fish/vendor_completions.d"
objcopy --only-keep-debug --compress-debug-sections=zlib "$binary" "$dist/$name.debug"
# The stripped binary names its debug file (and carries its build id) so gdb finds
# /usr/lib/debug/usr/bin/bmc-rotate.debug or /usr/lib/debug/.build-id/NN/REST.debug.
chmod 0644 "$dist/$name.debug"
cp "$dist/$name.debug" "$work/bmc-rotate.debug"
objcopy --strip-all --add-gnu-debuglink="$work/bmc-rotate.debug" "$binary" "$usr/bin/bmc-rotate"
for p in "${plugins[@]}"; do
    install -m 0644 "$wasm/${p//-/_}.wasm" "$usr/lib/bmc-rotate/plugins/"
done
# A binary built with a release key (BMC_ROTATE_RELEASE_PUBKEY) requires that key's signature on
# every built-in profile's plugin: the signatures ship beside the plugins.
if [ -n "${BMC_ROTATE_RELEASE_PUBKEY:-}" ]; then
    BMC_ROTATE_RELEASE_SECRET_KEY=${BMC_ROTATE_RELEASE_SECRET_KEY:-${BMC_ROTATE_MINISIGN_KEY:?a binary with a release key needs BMC_ROTATE_MINISIGN_KEY to sign its plugins}} \
        release/sign-plugins.sh "$usr/lib/bmc-rotate/plugins"
    chmod 0644 "$usr"/lib/bmc-rotate/plugins/*.minisig
fi
"$usr/bin/bmc-rotate" man --out "$work/man" >/dev/null
for page in "$work"/man/*.1; do gzip -9n <"$page" >"$usr/share/man/man1/$(basename "$page").gz"; done
"$usr/bin/bmc-rotate" completions bash >"$usr/share/bash-completion/completions/bmc-rotate"
"$usr/bin/bmc-rotate" completions zsh >"$usr/share/zsh/vendor-completions/_bmc-rotate"
"$usr/bin/bmc-rotate" completions fish >"$usr/share/fish/vendor_completions.d/bmc-rotate.fish"
# The built-in profiles are compiled into the binary; these copies document them and are the
# starting point of a user profile ($XDG_CONFIG_HOME/bmc-rotate/profiles).
install -m 0644 host/profiles/*.toml "$usr/share/doc/bmc-rotate/profiles/"
install -m 0644 host/inventory.example.toml "$usr/share/doc/bmc-rotate/"
cat >"$usr/share/doc/bmc-rotate/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bmc-rotate
Source: $(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml)

Files: *
Copyright: the bmc-rotate authors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0. The crates
 compiled into the binary and the plugins, with their licences, are listed in the SBOM
 published beside this package (bmc-rotate_${version}_$arch.deb.cdx.json).
EOF
size=$(stat -c %s "$usr/bin/bmc-rotate")
if [ "$size" -gt "$max_binary" ]; then
    echo "the stripped binary is $size bytes, over the $max_binary-byte budget" >&2
    exit 1
fi

echo "-- package: $deb (dpkg-deb), $name.tar.gz"
pkg=$work/deb
cp -a "$work/stage" "$pkg"
mkdir -p "$pkg/DEBIAN"
# The newest glibc symbol version the binary uses is the libc it needs; libgcc_s unwinds panics.
glibc=$(objdump -T "$usr/bin/bmc-rotate" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: bmc-rotate
Version: $version
Architecture: $arch
Maintainer: bmc-rotate maintainers <bmc-rotate@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
Depends: libc6 (>= $glibc), libgcc-s1
Section: admin
Priority: optional
Homepage: $(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml)
Description: $(sed -n 's/^description = "\(.*\)"$/\1/p' host/Cargo.toml)
 Rotates the passwords of Dell iDRAC, HPE iLO and Lenovo XCC baseboard management controllers
 across an Azure Stack Hub fleet and hands the new credential to the privileged endpoint. Each
 vendor's procedure is a sandboxed WebAssembly plugin (/usr/lib/bmc-rotate/plugins).
EOF
(cd "$pkg" && find usr -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
t=$SECONDS
dpkg-deb --root-owner-group -Zxz -z6 --build "$pkg" "$dist/$deb" >/dev/null
mv "$work/stage/usr" "$work/stage/$name"
find "$work/stage/$name" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar -C "$work/stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" \
    | gzip -9n >"$dist/$name.tar.gz"
echo "   ($((SECONDS - t)) s)"

echo "-- SBOMs (CycloneDX), SHA256SUMS, minisign"
contents=("bmc-rotate:$triple:--no-default-features")
for p in "${plugins[@]}"; do contents+=("$p:wasm32-wasip2"); done
export CARGO=$cargo
t=$SECONDS
python3 .ci/sbom.py "$dist/$deb,$dist/$name.tar.gz" "${contents[@]}"
python3 .ci/sbom.py "$dist/$name.debug" "${contents[0]}"
echo "   ($((SECONDS - t)) s)"
(cd "$dist" && sha256sum -- *.deb *.tar.gz *.debug *.cdx.json >SHA256SUMS)
if [ -n "${BMC_ROTATE_MINISIGN_KEY:-}" ]; then
    secret=$BMC_ROTATE_MINISIGN_KEY
    cp "${BMC_ROTATE_MINISIGN_PUB:?names the public half of BMC_ROTATE_MINISIGN_KEY}" "$dist/minisign.pub"
    comment="bmc-rotate $version release"
else
    # A throwaway key without a password (-W), made and thrown away here: CI signs and verifies
    # the way a release does, but nothing it signs is trusted.
    secret=$work/throwaway.key
    minisign -G -W -p "$dist/minisign.pub" -s "$secret" >/dev/null
    comment="bmc-rotate $version, signed with a throwaway CI key: not a release"
fi
minisign -S -s "$secret" -m "$dist/SHA256SUMS" -t "$comment" >/dev/null
minisign -V -q -p "$dist/minisign.pub" -m "$dist/SHA256SUMS"
(cd "$dist" && sha256sum --quiet -c SHA256SUMS)

echo "-- install: dpkg -x and tar -x into temporary roots; run from the installed files alone"
dpkg -x "$dist/$deb" "$work/deb-root"
mkdir -p "$work/tar-root"
tar -xzf "$dist/$name.tar.gz" -C "$work/tar-root"
mkdir -p "$work/lab"
cat >"$work/lab/fleet.toml" <<'EOF'
password = "Lab-Start-1"
user = "azsbmc"
stamp = "release-check"
[fleet]
dell-idrac9 = 1
hpe-ilo6 = 1
lenovo-xcc3 = 1
EOF
"$target/debug/bmc-lab" serve --fleet "$work/lab/fleet.toml" --inventory-out "$work/lab/lab.toml" >"$work/lab/serve.log" 2>&1 &
lab_pids+=($!)
export RELEASE_CHECK_CLOUDADMIN=Release-Cloud-1
"$target/debug/bmc-lab" pep --endpoints 1 --password-env RELEASE_CHECK_CLOUDADMIN >"$work/lab/pep.log" 2>&1 &
lab_pids+=($!)
for _ in $(seq 300); do
    grep -q '^serving' "$work/lab/serve.log" && grep -q '^serving' "$work/lab/pep.log" && break
    sleep 0.1
done
{ grep -q '^serving' "$work/lab/serve.log" && grep -q '^serving' "$work/lab/pep.log"; } || {
    echo "the lab did not start in 30 s:" >&2
    cat "$work/lab/"*.log >&2
    exit 1
}
# bmc-lab's `persona` key is for lab-built binaries; the lean binary refuses it.
{
    grep -v '^persona = ' "$work/lab/lab.toml"
    printf '\n[pep]\nendpoints = ["%s"]\ncloudadmin = '"'%s'"'\n' \
        "$(sed -n 's|^ERCS01 http://\(.*\)/wsman$|\1|p' "$work/lab/pep.log")" \
        "$(sed -n 's/^account //p' "$work/lab/pep.log")"
} >"$work/lab/inventory.toml"

# The checks, run in a mount namespace over which the source tree, the target directory, cargo's and
# rustup's homes are empty tmpfs mounts, with a clean environment: whatever the installed binary
# needs must come from its own root.
hidden=("$root" "$target" "${CARGO_HOME:-$HOME/.cargo}" "${RUSTUP_HOME:-$HOME/.rustup}")
check() {
    local prefix=$1 label=$2
    local home=$work/home-$label
    mkdir -p "$home"
    local script='
        set -euo pipefail
        bin=$1/bin/bmc-rotate inventory=$2
        shift 2
        for dir in "$@"; do if [ -d "$dir" ]; then mount -t tmpfs none "$dir"; fi; done
        if [ -e "$1/Cargo.toml" ]; then echo "the source tree is still visible" >&2; exit 1; fi
        cd "$HOME"
        exec env -i HOME="$HOME" PATH=/usr/bin:/bin LC_ALL=C.UTF-8 RELEASE_CHECK_OLD=Lab-Start-1 \
            RELEASE_CHECK_NEW=Release-New-27q RELEASE_CHECK_CLOUDADMIN="$RELEASE_CHECK_CLOUDADMIN" \
            bash -c "set -euo pipefail
                $bin --version
                $bin plugins list
                $bin rotate --inventory $inventory --bmc-password env:RELEASE_CHECK_OLD \
                    --new-password env:RELEASE_CHECK_NEW --cloudadmin-password env:RELEASE_CHECK_CLOUDADMIN \
                    --dry-run --output json >dry-run.json"'
    local unshare=(unshare --mount --fork)
    [ "$(id -u)" = 0 ] || unshare=(unshare --user --map-root-user --mount --fork)
    HOME=$home PATH=$PATH "${unshare[@]}" bash -c "$script" check "$prefix" "$work/lab/inventory.toml" "${hidden[@]}"
    python3 - "$home/dry-run.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))["report"]
if report["outcome"] != "dry-run" or len(report["bmcs"]) != 3:
    sys.exit(f"the dry run did not plan the three BMCs: {report}")
print(f"dry run: {len(report['bmcs'])} BMCs preflighted, outcome {report['outcome']}")
PY
}
echo "   .deb ($work/deb-root/usr):"
step check "$work/deb-root/usr" deb
echo "   .tar.gz ($work/tar-root/$name):"
step check "$work/tar-root/$name" tar

echo "-- artifacts ($dist)"
echo "stripped binary: $size bytes; plugins: $(du -cb "$work/stage/$name/lib/bmc-rotate/plugins"/*.wasm | tail -n 1 | cut -f1) bytes"
(cd "$dist" && ls -l --time-style=+ -- * | awk '{ printf "%12d  %s\n", $5, $NF }')
