#!/usr/bin/env bash
# CI: the Ansible collection (integrations/ansible) end to end against three lab stamps on loopback.
# Builds nothing: it needs target/debug/bmc-rotate, target/debug/bmc-lab and the vendor plugins in
# target/wasm/wasm32-wasip2/plugin ($BMC_TEST_WASM_TARGET if set); .ci/run calls it once the
# plugin walk-through and release.sh have built them. Installs a pinned ansible-core into target/ansible-venv.
#
# Stamps a and b are good; c is given a wrong CloudAdmin password, so its PEP check fails before any
# BMC changes. The example playbook must rotate a (the canary) then b, report c failed without
# hiding a's and b's results, and never print a password, even at -v. Check mode changes nothing,
# and a failed canary (c run first) starts no other stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=$(realpath "${CARGO_TARGET_DIR:-target}")
wasm=${BMC_TEST_WASM_TARGET:-$target/wasm}/wasm32-wasip2/plugin
ANSIBLE_CORE=2.19.14

for f in "$target/debug/bmc-rotate" "$target/debug/bmc-lab" "$wasm/dell_idrac.wasm" "$wasm/hpe_ilo.wasm"; do
    [ -e "$f" ] || { echo "missing $f: run cargo test first (this script builds nothing)" >&2; exit 1; }
done

venv=$target/ansible-venv
if ! "$venv/bin/ansible-playbook" --version 2>/dev/null | grep -q "core $ANSIBLE_CORE\]"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "ansible-core==$ANSIBLE_CORE"
fi

work=$(mktemp -d "$target/ansible-ci.XXXXXX")
chmod 700 "$work"
labs=()
cleanup() {
    for pid in "${labs[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -m 700 "$work/plugins" "$work/escrow"
cp "$wasm"/{dell_idrac,hpe_ilo,lenovo_xcc}.wasm "$work/plugins/"
for s in a b c; do
    cat > "$work/fleet-$s.toml" <<TOML
stamp = "stamp-$s"
password = "Lab-Start_2026$s"
user = "azsbmc"
[fleet]
dell-idrac10 = 1
hpe-ilo6 = 1
lenovo-xcc3 = 1
TOML
    "$target/debug/bmc-lab" stamp --fleet "$work/fleet-$s.toml" --out "$work/stamp-$s" >"$work/lab-$s.log" 2>&1 &
    labs+=($!)
done
for s in a b c; do
    for _ in $(seq 100); do [ -s "$work/stamp-$s/inventory.toml" ] && break; sleep 0.1; done
    [ -s "$work/stamp-$s/inventory.toml" ] || { cat "$work/lab-$s.log" >&2; echo "stamp $s did not start" >&2; exit 1; }
done

# Fresh new passwords (4 classes, 13 characters), and a wrong CloudAdmin password for stamp c.
new_password() { printf 'Nw-%sx9' "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"; }
for s in a b c; do (umask 077; new_password > "$work/stamp-$s/new-password"); done
(umask 077; echo 'Wrong-CloudAdmin_1' > "$work/stamp-c/wrong-cloudadmin")

# The escrow stores the password it reads on stdin; its second call only names the event.
escrow='case "${BMC_ROTATE_EVENT:-}" in rotated|rolled-back) echo "$BMC_ROTATE_EVENT" > "'$work'/escrow/$BMC_ROTATE_STAMP.event" ;; *) umask 077; cat > "'$work'/escrow/$BMC_ROTATE_STAMP.password" ;; esac'
{
    echo "stamps:"
    echo "  vars:"
    echo "    ansible_connection: local"
    echo "    ansible_python_interpreter: $venv/bin/python"
    echo "    bmc_rotate_binary: $target/debug/bmc-rotate"
    echo "    bmc_rotate_plugin_dir: $work/plugins"
    echo "    bmc_rotate_escrow_command: '${escrow//\'/\'\'}'"
    echo "  hosts:"
    for s in a b c; do
        cloudadmin=$work/stamp-$s/cloudadmin-password
        [ "$s" = c ] && cloudadmin=$work/stamp-c/wrong-cloudadmin
        echo "    stamp-$s:"
        echo "      bmc_rotate_inventory: $work/stamp-$s/inventory.toml"
        echo "      bmc_rotate_journal: $work/stamp-$s/run.jsonl"
        echo "      bmc_rotate_audit_log: $work/audit.jsonl"
        echo "      bmc_rotate_bmc_password: \"{{ lookup('file', '$work/stamp-$s/bmc-password') }}\""
        echo "      bmc_rotate_new_password: \"{{ lookup('file', '$work/stamp-$s/new-password') }}\""
        echo "      bmc_rotate_cloudadmin_password: \"{{ lookup('file', '$cloudadmin') }}\""
    done
} > "$work/hosts.yml"

mkdir -p "$work/collections/ansible_collections/bmc_rotate"
ln -s "$repo/integrations/ansible" "$work/collections/ansible_collections/bmc_rotate/fleet"
export ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_HOME=$work/ansible-home \
    XDG_CACHE_HOME=$work/cache XDG_STATE_HOME=$work/state
playbook() { "$venv/bin/ansible-playbook" -v -i "$work/hosts.yml" "$repo/integrations/ansible/examples/rotate-stamps.yml" "$@"; }
fail() { echo "ansible CI: $*" >&2; exit 1; }

# The modules' DOCUMENTATION, EXAMPLES and RETURN parse (ansible-doc refuses a module whose YAML is wrong).
for module in bmc_rotate bmc_rotate_status; do
    "$venv/bin/ansible-doc" "bmc_rotate.fleet.$module" | grep -q 'RETURN VALUES' || fail "ansible-doc $module"
done

# Check mode is a dry run: the canary's BMCs are probed and nothing changes.
playbook --check --limit stamp-a >"$work/check.log" 2>&1 || { cat "$work/check.log"; fail "the check-mode run failed"; }
cat "$work/check.log"
grep -qE '^stamp-a +: ok=2 +changed=0 .*failed=0 +skipped=1' "$work/check.log" || fail "check mode changed something"
[ ! -e "$work/escrow/stamp-a.password" ] || fail "check mode escrowed a password"

set +e
playbook >"$work/ansible.log" 2>&1
rc=$?
set -e
cat "$work/ansible.log"

[ "$rc" = 2 ] || fail "ansible-playbook exited $rc, expected 2 (one stamp failed)"
grep -qE '^stamp-a +: ok=3 .*failed=0' "$work/ansible.log" || fail "stamp-a (the canary) did not rotate cleanly"
grep -qE '^stamp-b +: ok=3 .*failed=0' "$work/ansible.log" || fail "stamp-b did not rotate cleanly"
grep -qE '^stamp-c +: .*failed=1 .*rescued=1' "$work/ansible.log" || fail "stamp-c was not reported failed"
grep -q '"msg": "stamp-c FAILED: ' "$work/ansible.log" || fail "stamp-c's failure report is missing"
# The canary ran alone, before the others.
canary_line=$(grep -n -m1 'ok: \[stamp-a\]' "$work/ansible.log" | cut -d: -f1)
other_line=$(grep -nE -m1 '(ok|changed|fatal): \[stamp-[bc]\]' "$work/ansible.log" | cut -d: -f1)
[ "$canary_line" -lt "$other_line" ] || fail "the canary did not run first"

# A failed canary starts no other stamp: stamp c first, then a (its first batch fails entirely).
set +e
playbook -e 'stamps=stamp-c,stamp-a' >"$work/canary.log" 2>&1
rc=$?
set -e
cat "$work/canary.log"
[ "$rc" = 2 ] || fail "the failed-canary run exited $rc, expected 2"
grep -q 'fatal: \[stamp-c\]' "$work/canary.log" || fail "stamp-c was not the canary"
! grep -q '\[stamp-a\]' "$work/canary.log" || fail "a stamp started after the canary failed"

status() { "$target/debug/bmc-rotate" status --journal "$1" --output json; }
field() { "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
for s in a b; do
    [ "$(status "$work/stamp-$s/run.jsonl" | field finished)" = rotated ] || fail "stamp-$s's journal does not say rotated"
    # Exactly the password, no newline (a vault CLI reading stdin would store one).
    printf '%s' "$(head -n 1 "$work/stamp-$s/new-password")" | cmp -s - "$work/escrow/stamp-$s.password" ||
        fail "stamp-$s's password was not escrowed exactly"
    [ "$(cat "$work/escrow/stamp-$s.event")" = rotated ] || fail "stamp-$s's escrow was not told it rotated"
done
# Stamp c still holds its first password everywhere: a dry run with it and the right CloudAdmin passes.
printf '%s\n%s\n%s\n' "$(cat "$work/stamp-c/bmc-password")" "$(cat "$work/stamp-c/new-password")" \
    "$(cat "$work/stamp-c/cloudadmin-password")" |
    XDG_CACHE_HOME=$work/cache "$target/debug/bmc-rotate" rotate --inventory "$work/stamp-c/inventory.toml" \
        --plugin-dir "$work/plugins" --bmc-password stdin --new-password stdin --cloudadmin-password stdin \
        --audit-log "$work/audit.jsonl" --journal "$work/stamp-c/dry-run.jsonl" --dry-run --output json >/dev/null ||
    fail "stamp-c changed: a dry run with its first password failed"

for s in a b c; do
    for secret in bmc-password new-password cloudadmin-password; do
        if grep -qF -- "$(cat "$work/stamp-$s/$secret")" "$work/ansible.log" "$work/check.log" "$work/canary.log"; then
            fail "stamp-$s's $secret appears in Ansible's output"
        fi
    done
done
grep -qF 'Wrong-CloudAdmin_1' "$work/ansible.log" "$work/check.log" "$work/canary.log" && fail "stamp-c's CloudAdmin password appears in Ansible's output"
echo "ansible CI: stamps a and b rotated (canary first), c failed and was reported, no password in the log"
