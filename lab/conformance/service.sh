#!/usr/bin/env bash
# Checks the JSON every bmc-lab persona serves against DMTF's Redfish CSDL schemas with
# redfish-service-validator; fails on any FAIL (warnings, such as iLO 5's trailing slashes, pass).
# The validator downloads schemas from dmtf.org; where that is not reachable, point
# REDFISH_CSDL_DIR at the `csdl/` folder of DMTF's Redfish-Publications (or a DSP8010 bundle).
# Usage: REDFISH_CSDL_DIR=/path/to/csdl lab/conformance/service.sh [persona ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/conformance"
. "$(dirname "$0")/common.sh"
install_validator 'redfish-service-validator==3.1.8' rf_service_validator
schemas=()
[ -n "${REDFISH_CSDL_DIR:-}" ] && schemas=(--schema_directory "$REDFISH_CSDL_DIR")
personas=("$@")
[ ${#personas[@]} -gt 0 ] || mapfile -t personas < <("$lab" personas | awk '{print $1}')

status=0
for persona in "${personas[@]}"; do
    dir="$work/service-$persona"
    serve_persona "$persona" "$dir"
    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/rf_service_validator" -r "https://$address" -u "$user" \
        -p 'Sim-Pass.1x' --authtype Session --nooemcheck "${schemas[@]}" --logdir "$dir/report" > "$dir/validator.log" 2>&1 || true
    stop_persona
    counts=$(grep -A2 '|     PASS' "$dir/validator.log" | tail -n 1 | tr -s ' |' ' ')
    read -r pass warn fail untested <<< "$counts"
    if [ -z "${fail:-}" ] || [ "$fail" != 0 ] || [ "${pass:-0}" = 0 ]; then
        echo "$persona: FAIL (pass ${pass:-?}, warn ${warn:-?}, fail ${fail:-?}; see $dir/validator.log)"; status=1
    else
        echo "$persona: ok (pass $pass, warn $warn, fail 0, not tested $untested)"
    fi
done
exit $status
