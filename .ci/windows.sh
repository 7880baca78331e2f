#!/usr/bin/env bash
# CI: the Windows build (README: Windows). Cross-builds bmc-rotate.exe with Debian's mingw-w64,
# checks it needs no DLL beyond the system's, lints the Windows code, runs the host's unit tests
# and the Wine-able integration tests as .exe files under Wine, then rotates a lab stamp served
# by the Linux bmc-lab on loopback from the .exe under Wine, PEP step included, and checks the
# BMCs and the PEP through the lab's introspection. Needs the vendor plugins in
# target/wasm/wasm32-wasip2/plugin ($BMC_TEST_WASM_TARGET if set): .ci/run calls it after
# release.sh has built them.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
triple=x86_64-pc-windows-gnu
target=$(realpath "${CARGO_TARGET_DIR:-target}")
wasm=${BMC_TEST_WASM_TARGET:-$target/wasm}/wasm32-wasip2/plugin

rustup target add "$triple"
# mingw-w64 links the .exe (.cargo/config.toml); wine64 runs it. No i386 architecture is needed
# for a 64-bit program.
missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(mingw-w64)
command -v wine >/dev/null || missing+=(wine wine64)
if [ "${#missing[@]}" -gt 0 ]; then
    as_root=$([ "$(id -u)" = 0 ] || echo sudo)
    $as_root apt-get update -qq && $as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A prefix of our own, without the Mono and Gecko installers (nothing here needs .NET or HTML).
export WINEPREFIX=$target/wine-prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree=;mshtml="
[ -e "$WINEPREFIX/system.reg" ] || wineboot --init >/dev/null 2>&1
# Debian 12's Wine 8.0 lacks bcryptprimitives.dll (every Windows 10 has it; Rust's std draws its
# randomness from its ProcessPrng): a stand-in for this prefix only (.ci/wine/bcryptprimitives.c).
x86_64-w64-mingw32-gcc -O2 -shared -s -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    .ci/wine/bcryptprimitives.c -ladvapi32

# Every import must ship with Windows: no mingw runtime (libgcc_s, libwinpthread, libstdc++).
check_imports() {
    local dlls
    dlls=$(x86_64-w64-mingw32-objdump -p "$1" | awk '/DLL Name/ { print tolower($3) }' | sort -u)
    echo "bmc-rotate.exe: $(du -h "$1" | cut -f1), imports: $(echo $dlls)"
    if printf '%s\n' "$dlls" | grep -vxE 'kernel32\.dll|advapi32\.dll|ntdll\.dll|ws2_32\.dll|userenv\.dll|bcrypt\.dll|bcryptprimitives\.dll|crypt32\.dll|secur32\.dll|ole32\.dll|oleaut32\.dll|shell32\.dll|user32\.dll|msvcrt\.dll|synchronization\.dll|iphlpapi\.dll|api-ms-win-[a-z0-9-]+\.dll'; then
        echo "$1 imports the DLLs above, which Windows does not ship" >&2
        exit 1
    fi
}

# The build an operator gets (README: Windows), without the lab's simulators; then the full one,
# which the tests and the lab rotation below use (it replaces the lean .exe in the same place).
echo "-- build and clippy: the lean bmc-rotate.exe (--no-default-features)"
exe=$target/$triple/debug/bmc-rotate.exe
cargo build -p bmc-rotate --no-default-features --target "$triple" --locked
check_imports "$exe"
cargo clippy -p bmc-rotate --no-default-features --target "$triple" --all-targets --locked -- -D warnings

echo "-- build and clippy: bmc-rotate.exe"
cargo build -p bmc-rotate --target "$triple" --locked
check_imports "$exe"
cargo clippy -p bmc-rotate --target "$triple" --all-targets --locked -- -D warnings

echo "-- tests under Wine"
# Wine 8 accepts a file's new DACL (SetSecurityInfo succeeds) but keeps deriving the file's
# security from its Unix mode, which it takes from the directory's: with umask 077 the files the
# tests make are as private as those in a Windows user profile (%TEMP%, %LOCALAPPDATA%), whose
# inherited ACL admits only the user, SYSTEM and Administrators. Fresh temporary files each run:
# Wine reuses small process ids, which the tests' scratch directories are named after.
umask 077
profile=$WINEPREFIX/drive_c/users/$(id -un)
rm -rf "${profile:?}/Temp" "$profile/AppData/Local/bmc-rotate"
mkdir -p "$profile/Temp"
# One build of the selected test executables, run by Wine. Left out (README: Windows, "What
# Wine does not run"): the test files that are Unix-only say why in their first lines;
# discover, plugin_new and cli_signing for the reasons listed there.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
cargo test -p bmc-rotate --target "$triple" --locked --lib --test gateway --test pep --test canary --test cli_pep \
    --test cli --test plugin_test_bmc --test cache

echo "-- a lab stamp rotated from bmc-rotate.exe under Wine"
cargo build -p bmc-lab --locked
work=$(mktemp -d "$target/windows-ci.XXXXXX")
chmod 700 "$work"
lab=
cleanup() {
    [ -z "$lab" ] || kill "$lab" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -m 700 "$work/plugins"
cp "$wasm"/{dell_idrac,hpe_ilo,lenovo_xcc}.wasm "$work/plugins/"
cat > "$work/fleet.toml" <<'TOML'
stamp = "wine"
password = "Lab-Start_2026w"
user = "azsbmc"
[fleet]
dell-idrac9 = 1
dell-idrac10 = 1
hpe-ilo5 = 1
hpe-ilo6 = 1
lenovo-xcc2 = 1
lenovo-xcc3 = 1
TOML
introspect=127.0.0.1:$((40000 + RANDOM % 20000))
"$target/debug/bmc-lab" stamp --fleet "$work/fleet.toml" --out "$work/stamp" --introspect "$introspect" \
    >"$work/lab.log" 2>&1 &
lab=$!
for _ in $(seq 100); do [ -s "$work/stamp/inventory.toml" ] && break; sleep 0.1; done
[ -s "$work/stamp/inventory.toml" ] || { cat "$work/lab.log" >&2; echo "the lab stamp did not start" >&2; exit 1; }

# Linux paths reach the .exe as Z:\... (Wine's drive for /). Secrets from the lab's 0600 files,
# which Wine shows as owner-only ACLs; the new password generated into another.
wine "$exe" rotate --inventory "$work/stamp/inventory.toml" --plugin-dir "$work/plugins" \
    --bmc-password "file:$work/stamp/bmc-password" --cloudadmin-password "file:$work/stamp/cloudadmin-password" \
    --generate-password --password-out "$work/stamp/new-password" --journal "$work/stamp/run.jsonl" --yes
new=$(head -n 1 "$work/stamp/new-password")
body=$(printf '{"user": "azsbmc", "password": "%s"}' "$new")
holding=$(curl -sf "$introspect/fleet/holds" -H 'content-type: application/json' -d "$body")
pep=$(curl -sf "$introspect/pep/holds" -H 'content-type: application/json' -d "$body")
echo "lab: fleet $holding, PEP $pep"
echo "$holding" | grep -q '"holding":6' || { echo "not every BMC holds the new password" >&2; exit 1; }
echo "$pep" | grep -q '"holds":true' || { echo "the PEP does not hold the new password" >&2; exit 1; }
wine "$exe" status --journal "$work/stamp/run.jsonl" | tee "$work/status.txt"
grep -q rotated "$work/status.txt" || { echo "status does not say rotated" >&2; exit 1; }
# A secret file others can read is refused, as on Unix, before anything is contacted.
cp "$work/stamp/new-password" "$work/open-password"
chmod 644 "$work/open-password"
if wine "$exe" rotate --inventory "$work/stamp/inventory.toml" --plugin-dir "$work/plugins" \
    --bmc-password "file:$work/open-password" --cloudadmin-password "file:$work/stamp/cloudadmin-password" \
    --generate-password --password-out "$work/unused" --dry-run 2>"$work/refused.txt"; then
    echo "a secret file open to Everyone was accepted" >&2
    exit 1
fi
grep -q "is open to Everyone" "$work/refused.txt" || { cat "$work/refused.txt" >&2; exit 1; }

echo "-- the compiled-plugin cache of bmc-rotate.exe under Wine"
# The cache directory's and the key's security as Wine derives it from their Unix modes; an
# entry planted there is refused before deserialize, as on Unix. What Wine cannot show: a DACL set
# through Windows (Wine keeps the mode's), a junction (Wine follows Unix links).
cache=$work/cache
plugin=$work/plugins/dell_idrac.wasm
inspect() { # LABEL: runs `plugins inspect` with this cache, its log in $work/inspect.log
    local from=$SECONDS
    wine "$exe" --log bmc_rotate=debug --cache-dir "$cache" plugins inspect "$plugin" >/dev/null 2>"$work/inspect.log" \
        || { cat "$work/inspect.log" >&2; echo "plugins inspect failed ($1)" >&2; exit 1; }
    echo "cache: $1: $((SECONDS - from)) s"
}
expect() { # TEXT...: each must be in the last log
    for text in "$@"; do
        grep -qF "$text" "$work/inspect.log" || { cat "$work/inspect.log" >&2; echo "expected: $text" >&2; exit 1; }
    done
}
inspect cold
expect "compiled plugin origin="
entry=$(ls "$cache"/*.cwasm)
[ "$(stat -c %s "$cache/cache.key")" = 32 ] || { echo "no 32-byte cache.key" >&2; exit 1; }
inspect warm
expect "loaded a compiled plugin from the cache"
# A bare wasmtime artifact (what deserialize would run) planted under the entry's name.
tail -c +41 "$entry" >"$work/bare" && cp "$work/bare" "$entry"
inspect planted
expect "refused a compiled-plugin cache entry" "no MAC header" "compiled plugin origin="
inspect replaced
expect "loaded a compiled plugin from the cache"
# A key others can read is replaced, and the entries it signed are recompiled.
chmod 644 "$cache/cache.key"
inspect "readable key"
expect "replacing the compiled-plugin cache key" "open to Everyone" "MAC does not match"
# A cache directory others can read is not used at all.
chmod 755 "$cache"
inspect "open directory"
expect "compiled-plugin cache" "not used: it is open to Everyone" "compiled plugin origin="
chmod 700 "$cache"
inspect "private again"
expect "loaded a compiled plugin from the cache"
# Another account's key or directory: Wine shows a file of another uid as owned by ANONYMOUS
# LOGON. Making one needs root (chown), which CI runs as.
if [ "$(id -u)" = 0 ]; then
    chown 65534 "$cache/cache.key"
    inspect "another user's key"
    expect "replacing the compiled-plugin cache key" "owned by" "MAC does not match"
    chown 65534 "$cache"
    inspect "another user's directory"
    expect "not used: it is owned by" "compiled plugin origin="
    chown 0 "$cache"
fi

echo "windows: $((SECONDS - started)) s"
