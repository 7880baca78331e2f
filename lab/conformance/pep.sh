#!/usr/bin/env bash
# Interop check of the lab's PEP simulator with a real PowerShell remoting client: pypsrp (pip)
# connects with NTLM, raw and inside SPNEGO (auth="negotiate"), and message encryption to
# `configuration_name="PrivilegedEndpoint"`, detects and runs Set-BmcCredential with a
# SecureString, checks the JEA NoLanguage refusals and that Close-PrivilegedEndpoint ends the pool. The
# simulator then has to report the password pypsrp sent (it never prints it, only whether it
# matches). Usage: lab/conformance/pep.sh. Installs pypsrp into target/conformance/venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/conformance"
. "$(dirname "$0")/common.sh"
venv="$work/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import pypsrp' 2>/dev/null || "$venv/bin/pip" install --quiet 'pypsrp==0.9.1'

dir="$work/pep"
rm -rf "$dir" && mkdir -p "$dir"
export PEP_CLOUDADMIN_PASSWORD='Interop-Cl0ud!' PEP_NEW_BMC_PASSWORD='N3w-Pass_w0rd'
"$lab" pep --endpoints 1 --password-env PEP_CLOUDADMIN_PASSWORD --expect-password-env PEP_NEW_BMC_PASSWORD \
    > "$dir/pep.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^account ' "$dir/pep.log" && break; sleep 0.1; done
address=$(sed -n 's|^ERCS01 http://\(.*\)/wsman|\1|p' "$dir/pep.log")
account=$(sed -n 's/^account //p' "$dir/pep.log")
[ -n "$address" ] || { echo "pep: the simulator did not start"; cat "$dir/pep.log"; exit 1; }

# The machine's CA-bundle variables are irrelevant on plain HTTP; unset them as protocol.sh does.
if ! env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE PEP_USER="$account" \
    "$venv/bin/python" "$(dirname "$0")/pep_interop.py" "${address%:*}" "${address##*:}" > "$dir/pypsrp.log" 2>&1; then
    echo "pep: pypsrp FAILED"; cat "$dir/pypsrp.log"; echo "--- simulator:"; cat "$dir/pep.log"; exit 1
fi
for _ in $(seq 20); do grep -q '^stored ' "$dir/pep.log" && break; sleep 0.1; done
if ! grep -q '^stored cmdlet=Set-BmcCredential user=bmcadmin bypass=true ercs=ERCS01 matches-expected=true$' "$dir/pep.log"; then
    echo "pep: the simulator did not record pypsrp's credential"; cat "$dir/pep.log"; exit 1
fi
if ! grep -q '^spnego ERCS01 mechListMIC verified both ways$' "$dir/pep.log"; then
    echo "pep: pypsrp's auth=negotiate did not complete SPNEGO with mechListMICs"; cat "$dir/pep.log"; exit 1
fi
echo "pep: ok ($(tail -n 1 "$dir/pypsrp.log"))"
