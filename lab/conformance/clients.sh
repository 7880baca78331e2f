#!/usr/bin/env bash
# CI: real Redfish client tools, unmodified, against every bmc-lab persona (issue 15):
# - Ansible community.general: redfish_command UpdateUserPassword (an administrator sets the
#   rotation account's password) and redfish_info Systems, Chassis, Managers (inventory and network
#   protocols) and Accounts, with every command's `ret` true;
# - HPE's python-ilorest-library (module `redfish`) on the iLO personas: login, password change of
#   the rotation account, logout, with no session left behind;
# - OpenStack's sushy reading Systems and Managers, with no session left behind.
# Every change is checked through the lab's introspection (never by logging in). Builds nothing: it
# needs target/debug/bmc-lab. Installs ansible (for community.general) beside the pinned
# ansible-core in target/ansible-venv, and the two libraries into target/conformance/clients-venv.
# Usage: lab/conformance/clients.sh [persona ...]     (default: every persona)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=$(realpath "${CARGO_TARGET_DIR:-$here/../../target}")
lab=$target/debug/bmc-lab
ANSIBLE_CORE=2.19.14 ANSIBLE=12.3.0 ILOREST=7.4.0.0 SUSHY=5.14.0
started=$SECONDS
fail() { echo "clients: $*" >&2; exit 1; }
[ -x "$lab" ] || fail "missing $lab: build bmc-lab first (this script builds nothing)"

# Ansible: ansible-core pinned as .ci/ansible.sh pins it; the `ansible` package brings community.general.
venv=$target/ansible-venv
if ! [ -d "$venv/lib/python3"*/site-packages/ansible_collections/community/general ] 2>/dev/null ||
    ! "$venv/bin/ansible-playbook" --version 2>/dev/null | grep -q "core $ANSIBLE_CORE\]"; then
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "ansible-core==$ANSIBLE_CORE" "ansible==$ANSIBLE"
fi
# HPE's library and sushy share a venv; the DMTF python-redfish-library (also module `redfish`) must
# not be in it (HPE: the two cannot coexist).
clients=$target/conformance/clients-venv
if ! "$clients/bin/python" -c 'import redfish.rest.v1, sushy' 2>/dev/null; then
    python3 -m venv "$clients"
    "$clients/bin/pip" install -q "python-ilorest-library==$ILOREST" "sushy==$SUSHY"
fi
echo "clients: tools ready after $((SECONDS - started)) s"

personas=("$@")
[ ${#personas[@]} -gt 0 ] || mapfile -t personas < <("$lab" personas | awk '{print $1}')
work=$(mktemp -d "$target/clients-ci.XXXXXX")
chmod 700 "$work"
pid= as_root=
cleanup() {
    [ -z "$pid" ] || { $as_root kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    $as_root rm -rf "$work"
}
trap cleanup EXIT

# One lab serves every persona (one BMC each, their own loopback addresses) on port 443, where
# BMCs listen: HPE's library cannot log out of a session on any other port (RestClient's
# session_location setter adds the base URL's port to the Location, its getter then strips only
# `https://host` and leaves `:PORT/redfish/...`, on every release from 4.9 to 7.4), which is the
# library's limit, not a BMC's. Port 443 needs root (or passwordless sudo, as .ci/run uses for apt).
START=Sim-Pass.1x USER=azsbmc
export ADMIN_PASSWORD=$START
NEW_ANSIBLE=Ansible-Rot4_x NEW_ILOREST=Ilorest-Set5_y
{
    printf 'stamp = "clients"\npassword = "%s"\nuser = "%s"\n[fleet]\n' "$START" "$USER"
    for p in "${personas[@]}"; do echo "$p = 1"; done
} > "$work/spec.toml"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
introspect=http://127.0.0.1:$port
as_root=
[ "$(id -u)" = 0 ] || as_root="sudo -n"
$as_root "$lab" stamp --fleet "$work/spec.toml" --out "$work/stamp" --port-base 443 \
    --introspect "127.0.0.1:$port" > "$work/lab.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf "$introspect/bmcs" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
curl -sf "$introspect/bmcs" >/dev/null || { cat "$work/lab.log" >&2; fail "the lab did not start on port 443"; }
# name persona host (port 443 left implicit, as on a BMC), one BMC a line.
mapfile -t bmcs < <(curl -sf "$introspect/bmcs" | python3 -c '
import json, sys
for b in json.load(sys.stdin): print(b["name"], b["persona"], b["address"].removesuffix(":443"))')
# Each BMC's own certificate is the CA the clients verify it with (the stamp's tls/ is the lab's, 0700).
certs=$work/certs
mkdir "$certs"
for line in "${bmcs[@]}"; do
    read -r name _ <<< "$line"
    $as_root cat "$work/stamp/tls/$name.crt" > "$certs/$name.crt"
done

holding() { # holding PASSWORD NAME...: every named BMC's rotation account holds PASSWORD
    local password=$1 name
    shift
    for name in "$@"; do
        curl -sf "$introspect/bmcs/$name/holds" -H 'content-type: application/json' \
            -d "{\"user\": \"$USER\", \"password\": \"$password\"}" | grep -q '"holds":true' ||
            fail "$name: $USER does not hold the password expected"
    done
}

# --- Ansible ---------------------------------------------------------------------------------
t=$SECONDS
{
    echo "all:"
    echo "  vars:"
    echo "    ansible_python_interpreter: $venv/bin/python"
    echo "    admin_password: \"$START\""
    echo "    rotation_user: $USER"
    echo "    new_password: \"$NEW_ANSIBLE\""
    echo "  hosts:"
    for line in "${bmcs[@]}"; do
        read -r name persona address <<< "$line"
        echo "    $name:"
        echo "      baseuri: \"$address\""
        echo "      admin_user: \"$("$lab" personas --default-user "$persona")\""
        echo "      ca_path: $certs/$name.crt"
        echo "      facts_out: $work/$name.facts.json"
    done
} > "$work/hosts.yml"
chmod 600 "$work/hosts.yml"
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_HOME=$work/ansible-home \
    ANSIBLE_HOST_KEY_CHECKING=0 XDG_CACHE_HOME=$work/cache
"$venv/bin/ansible-playbook" -f "${#bmcs[@]}" -i "$work/hosts.yml" "$here/clients.yml" > "$work/ansible.log" 2>&1 ||
    { cat "$work/ansible.log"; fail "ansible-playbook failed"; }
names=()
for line in "${bmcs[@]}"; do
    read -r name persona address <<< "$line"
    names+=("$name")
    # Each command's answer carries `ret`; a false one (or none) is a failed read.
    "$venv/bin/python" - "$work/$name.facts.json" "$name" <<'PY' || fail "redfish_info failed on $name"
import json, sys
facts, name = json.load(open(sys.argv[1])), sys.argv[2]
rets = []
def walk(v):
    if isinstance(v, dict):
        if "ret" in v:
            rets.append((v["ret"], v.get("msg", "")))
        for x in v.values():
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(facts)
bad = [m for r, m in rets if r is not True]
if not rets or bad:
    sys.exit(f"{name}: {bad or 'no answers'}")
PY
done
holding "$NEW_ANSIBLE" "${names[@]}"
grep -qF -- "$NEW_ANSIBLE" "$work/ansible.log" && fail "Ansible's output shows the new password"
echo "clients: ansible UpdateUserPassword + redfish_info (5 commands) ok on ${#names[@]} personas ($((SECONDS - t)) s)"

# --- HPE python-ilorest-library on the iLOs ------------------------------------------------------
t=$SECONDS
export NEW_PASSWORD=$NEW_ILOREST
ilos=0
for line in "${bmcs[@]}"; do
    read -r name persona address <<< "$line"
    [[ $persona == hpe-* ]] || continue
    "$clients/bin/python" "$here/clients_interop.py" ilorest "$address" "$certs/$name.crt" \
        "$("$lab" personas --default-user "$persona")" "$introspect" "$name" "$USER" || fail "ilorest failed on $name"
    holding "$NEW_ILOREST" "$name"
    ilos=$((ilos + 1))
done
echo "clients: ilorest ok on $ilos iLO personas ($((SECONDS - t)) s)"

# --- sushy -----------------------------------------------------------------------------------
t=$SECONDS
for line in "${bmcs[@]}"; do
    read -r name persona address <<< "$line"
    "$clients/bin/python" "$here/clients_interop.py" sushy "$address" "$certs/$name.crt" \
        "$("$lab" personas --default-user "$persona")" "$introspect" "$name" 2>"$work/sushy-$name.log" ||
        { cat "$work/sushy-$name.log"; fail "sushy failed on $name"; }
done
echo "clients: sushy ok on ${#bmcs[@]} personas ($((SECONDS - t)) s)"
echo "clients: every tool succeeded on every persona in $((SECONDS - started)) s"
