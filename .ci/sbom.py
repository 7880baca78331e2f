#!/usr/bin/env python3
"""CycloneDX 1.5 JSON SBOMs for release artifacts, from what cargo itself resolves.

    sbom.py ARTIFACT[,ARTIFACT...] CONTENT...

writes ARTIFACT.cdx.json beside each ARTIFACT (artifacts listed together hold the same contents).

Each CONTENT is `PACKAGE:TARGET[:CARGO-FLAGS]` (e.g. `bmc-rotate:x86_64-unknown-linux-gnu:--no-default-features`,
`dell-idrac:wasm32-wasip2`): a workspace crate built into the artifact, for that target, with
those feature flags. Its components are what `cargo tree -e normal` shows for exactly that build
(the crates compiled into it; build scripts and dev-dependencies are not shipped), each with its
version, licence expression, package URL and the SHA-256 Cargo.lock pins for it, and the
dependency graph between them. The artifact itself is the BOM's subject, with its own SHA-256.

Output is reproducible: the timestamp is SOURCE_DATE_EPOCH (the release commit's time) and the
serial number is derived from the artifact's digest. Cargo runs as $CARGO (default `cargo`).
"""

import datetime
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid

# The depth, `name vX.Y.Z`, `(path)` for a workspace crate (or `(proc-macro)`), then our `|licence`;
# cargo marks a repeated subtree with a trailing ` (*)`.
LINE = re.compile(r"^(\d+)(\S+) v(\S+)((?: \([^)]*\))*)\|(.*?)(?: \(\*\))?$")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lock_checksums(workspace):
    with open(os.path.join(workspace, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}


def licence_expression(text):
    # Old crates write `MIT/Apache-2.0`; SPDX spells that `MIT OR Apache-2.0`.
    return re.sub(r"\s*/\s*", " OR ", text.strip()) if text.strip() else None


def tree(spec):
    package, target, *flags = spec.split(":", 2)
    cargo = shlex.split(os.environ.get("CARGO", "cargo"))
    cmd = cargo + [
        "tree", "--locked", "-p", package, "--target", target, "-e", "normal",
        "--prefix", "depth", "--format", "{p}|{l}",
    ] + (shlex.split(flags[0]) if flags else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [LINE.match(line) for line in out.splitlines() if line.strip()]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    artifacts, specs = sys.argv[1].split(","), sys.argv[2:]
    workspace = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checksums = lock_checksums(workspace)
    components, edges, roots = {}, {}, []
    for spec in specs:
        stack = []
        for match in tree(spec):
            if match is None:
                sys.exit(f"sbom.py: cannot read a line of `cargo tree` for {spec}")
            depth, name, version, notes, licence = match.groups()
            source = next((n for n in re.findall(r"\(([^)]*)\)", notes) if n != "proc-macro"), None)
            ref = f"{name}@{version}"
            depth = int(depth)
            del stack[depth:]
            if stack:
                edges.setdefault(stack[-1], set()).add(ref)
            else:
                roots.append(ref)
            stack.append(ref)
            edges.setdefault(ref, set())
            if ref in components:
                continue
            component = {"type": "library", "bom-ref": ref, "name": name, "version": version}
            if licence_expression(licence):
                component["licenses"] = [{"expression": licence_expression(licence)}]
            if source is None or source.startswith("registry"):
                component["purl"] = f"pkg:cargo/{name}@{version}"
                if checksums.get((name, version)):
                    component["hashes"] = [{"alg": "SHA-256", "content": checksums[(name, version)]}]
            else:
                # A crate of this workspace: shipped from this source tree, not a registry.
                component["type"] = "application" if depth == 0 else "library"
            components[ref] = component

    for artifact in artifacts:
        with open(f"{artifact}.cdx.json", "w") as out:
            json.dump(bom(artifact, components, edges, roots), out, indent=1)
            out.write("\n")


def bom(artifact, components, edges, roots):
    """The BOM whose subject is `artifact`, holding `components`."""
    digest = sha256(artifact)
    name = os.path.basename(artifact)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    subject = f"artifact:{name}"
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": uuid.uuid5(uuid.NAMESPACE_URL, f"bmc-rotate:{name}:{digest}").urn,
        "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "bmc-rotate .ci/sbom.py (cargo tree)"}]},
            "component": {
                "type": "file",
                "bom-ref": subject,
                "name": name,
                "hashes": [{"alg": "SHA-256", "content": digest}],
            },
        },
        "components": sorted(components.values(), key=lambda c: c["bom-ref"]),
        "dependencies": [{"ref": subject, "dependsOn": sorted(set(roots))}]
        + [{"ref": ref, "dependsOn": sorted(deps)} for ref, deps in sorted(edges.items())],
    }


if __name__ == "__main__":
    main()
