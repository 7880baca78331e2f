#!/usr/bin/env bash
# Signs the project's plugins (three vendors' and the generic one) for a release with the stock minisign tool, leaving
# DIR/NAME.wasm.minisig beside each, and checks each signature against the release public key.
#
#   BMC_ROTATE_RELEASE_SECRET_KEY=/path/release.key \
#   BMC_ROTATE_RELEASE_PUBKEY=RW... \
#   [BMC_ROTATE_RELEASE_KEY_PASSWORD=...] release/sign-plugins.sh DIR
#
# The secret key exists only in the release environment (never in the repository or CI); CI runs
# this script with a throwaway key (host/tests/cli_signing.rs). Build the release binary with the
# same BMC_ROTATE_RELEASE_PUBKEY so its built-in profiles require these signatures.
set -euo pipefail
dir=${1:?usage: release/sign-plugins.sh DIR (holding dell_idrac.wasm, hpe_ilo.wasm, lenovo_xcc.wasm, generic_redfish.wasm)}
: "${BMC_ROTATE_RELEASE_SECRET_KEY:?set BMC_ROTATE_RELEASE_SECRET_KEY to the release secret key file (minisign -G)}"
: "${BMC_ROTATE_RELEASE_PUBKEY:?set BMC_ROTATE_RELEASE_PUBKEY to the release public key (the RW... line of its .pub file)}"
command -v minisign >/dev/null || { echo "minisign is missing: apt-get install minisign" >&2; exit 1; }
# Read once and taken out of the environment, so no child process (minisign, sha256sum) inherits it.
password=${BMC_ROTATE_RELEASE_KEY_PASSWORD:-}
unset BMC_ROTATE_RELEASE_KEY_PASSWORD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../host/Cargo.toml" | head -1)

for name in dell_idrac hpe_ilo lenovo_xcc generic_redfish; do
    file="$dir/$name.wasm"
    [ -f "$file" ] || { echo "$file is missing" >&2; exit 1; }
    # The trusted comment is signed too: it says what the file is, and `plugins inspect` shows it.
    comment="bmc-rotate $version $name.wasm sha256:$(sha256sum "$file" | cut -d' ' -f1)"
    # An encrypted key reads its password from stdin; an unencrypted one (CI's) ignores it.
    # A here-string, not a pipe: minisign does not read stdin for an unencrypted key, and a
    # writer into a pipe it closed dies of SIGPIPE (pipefail then ends the script silently).
    minisign -S -s "$BMC_ROTATE_RELEASE_SECRET_KEY" -m "$file" -t "$comment" >/dev/null <<<"$password"
    minisign -V -q -P "$BMC_ROTATE_RELEASE_PUBKEY" -m "$file"
    echo "signed $file -> $file.minisig"
done
