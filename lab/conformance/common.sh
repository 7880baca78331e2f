# Shared by the conformance scripts: the validator venv and one served persona at a time.
# Source it after setting `root` (the workspace) and `work` (the scratch directory).

# install_validator PACKAGE==VERSION BINARY: puts the validator into $work/venv once.
install_validator() {
    venv="$work/venv"
    if [ ! -x "$venv/bin/$2" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "$1"
    fi
}

# serve_persona PERSONA DIR [ARGS...]: starts bmc-lab with one BMC of PERSONA; sets `pid`,
# `address` (host:port) and `user` (the persona's default account).
serve_persona() {
    local persona=$1 dir=$2
    shift 2
    rm -rf "$dir" && mkdir -p "$dir"
    printf 'password = "Sim-Pass.1x"\n[fleet]\n%s = 1\n' "$persona" > "$dir/spec.toml"
    "$lab" serve --fleet "$dir/spec.toml" --inventory-out "$dir/inventory.toml" "$@" > "$dir/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do [ -s "$dir/inventory.toml" ] && break; sleep 0.1; done
    address=$(sed -n 's/^address = "\(.*\)"/\1/p' "$dir/inventory.toml")
    user=$("$lab" personas --default-user "$persona")
}

stop_persona() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

(cd "$root" && cargo build --quiet -p bmc-lab)
# A shared CARGO_TARGET_DIR (worktrees) is where cargo put the binary.
lab="${CARGO_TARGET_DIR:-$root/target}/debug/bmc-lab"
mkdir -p "$work"
