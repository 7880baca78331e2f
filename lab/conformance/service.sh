#!/usr/bin/env bash
# Checks the JSON every bmc-lab persona serves against DMTF's Redfish CSDL schemas with
# redfish-service-validator; fails on any FAIL (warnings, such as iLO 5's trailing slashes, pass).
# The validator downloads schemas from dmtf.org; where that is not reachable, point
# REDFISH_CSDL_DIR at the `csdl/` folder of DMTF's Redfish-Publications (or a DSP8010 bundle).
# Usage: REDFISH_CSDL_DIR=/path/to/csdl lab/conformance/service.sh [persona ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/conformance"
mkdir -p "$work"
venv="$work/venv"
if [ ! -x "$venv/bin/rf_service_validator" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'redfish-service-validator==3.1.8'
fi
schemas=()
[ -n "${REDFISH_CSDL_DIR:-}" ] && schemas=(--schema_directory "$REDFISH_CSDL_DIR")
(cd "$root" && cargo build --quiet -p bmc-lab)
lab="$root/target/debug/bmc-lab"
personas=("$@")
[ ${#personas[@]} -gt 0 ] || mapfile -t personas < <("$lab" personas | awk '{print $1}')

status=0
for persona in "${personas[@]}"; do
    dir="$work/service-$persona"
    rm -rf "$dir" && mkdir -p "$dir"
    printf 'password = "Sim-Pass.1x"\n[fleet]\n%s = 1\n' "$persona" > "$dir/spec.toml"
    "$lab" serve --fleet "$dir/spec.toml" --inventory-out "$dir/inventory.toml" > "$dir/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do [ -s "$dir/inventory.toml" ] && break; sleep 0.1; done
    address=$(sed -n 's/^address = "\(.*\)"/\1/p' "$dir/inventory.toml")
    user=$("$lab" personas --default-user "$persona")
    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/rf_service_validator" -r "https://$address" -u "$user" \
        -p 'Sim-Pass.1x' --authtype Session --nooemcheck "${schemas[@]}" --logdir "$dir/report" > "$dir/validator.log" 2>&1 || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    counts=$(grep -A2 '|     PASS' "$dir/validator.log" | tail -n 1 | tr -s ' |' ' ')
    read -r pass warn fail untested <<< "$counts"
    if [ -z "${fail:-}" ] || [ "$fail" != 0 ] || [ "${pass:-0}" = 0 ]; then
        echo "$persona: FAIL (pass ${pass:-?}, warn ${warn:-?}, fail ${fail:-?}; see $dir/validator.log)"; status=1
    else
        echo "$persona: ok (pass $pass, warn $warn, fail 0, not tested $untested)"
    fi
done
exit $status
