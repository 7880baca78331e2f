#!/usr/bin/env bash
# Runs DMTF's redfish-protocol-validator against every bmc-lab persona and fails on any FAIL that
# deviations.tsv does not list for that persona (each listed deviation is the real vendor's).
# Usage: lab/conformance/protocol.sh [persona ...]     (default: every persona)
# Needs python3 with venv; installs the validator into target/conformance/venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/conformance"
. "$(dirname "$0")/common.sh"
install_validator 'redfish-protocol-validator==1.3.2' rf_protocol_validator
personas=("$@")
[ ${#personas[@]} -gt 0 ] || mapfile -t personas < <("$lab" personas | awk '{print $1}')

status=0
for persona in "${personas[@]}"; do
    dir="$work/$persona"
    serve_persona "$persona" "$dir" --certs-out "$dir/certs"
    # The machine's CA-bundle variables would override --ca-bundle inside python-requests.
    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/rf_protocol_validator" -r "https://$address" -u "$user" -p 'Sim-Pass.1x' \
        --ca-bundle "$dir/certs/$persona-01.pem" --avoid-http-redirect --report-dir "$dir/report" --report-type tsv \
        > "$dir/validator.log" 2>&1 || true
    stop_persona
    report=$(ls "$dir"/report/*.tsv 2>/dev/null | head -n 1)
    if [ -z "$report" ]; then
        echo "$persona: the validator produced no report (see $dir/validator.log)"; status=1; continue
    fi
    summary=$(grep -o 'Summary - .*' "$dir/validator.log" || true)
    unexpected=$(awk -F'\t' -v p="$persona" '
        FNR == NR { if ($1 == p) allowed[$2] = 1; next }
        $5 == "FAIL" && !($1 in allowed) { print "  " $1 " " $2 " " $4 ": " $6 }' \
        "$(dirname "$0")/deviations.tsv" "$report" | sort -u)
    if [ -n "$unexpected" ]; then
        echo "$persona: FAIL ($summary)"; echo "$unexpected"; status=1
    else
        echo "$persona: ok ($summary; failures, if any, are listed deviations)"
    fi
done
exit $status
