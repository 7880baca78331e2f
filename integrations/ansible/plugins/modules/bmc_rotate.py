#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bmc_rotate
short_description: Rotate the BMC password of one Azure Stack Hub stamp with bmc-rotate
description:
  - Runs C(bmc-rotate rotate --inventory FILE --output json --yes) on the node the task runs on
    (usually the controller, with C(ansible_connection=local) or C(delegate_to)).
  - Every secret goes to the binary over its standard input, one per line, in the order
    C(bmc-rotate rotate --help) documents (current BMC password, new BMC password, CloudAdmin
    password); never in its arguments or environment.
  - The run preflights every BMC, changes them all, verifies, rolls back on any failure and stores
    the new credential through the privileged endpoint; the module reports the binary's JSON report.
  - In check mode the binary runs with C(--dry-run); it probes and verifies every BMC and checks the
    new password against every policy, and changes nothing.
version_added: 0.1.0
options:
  binary:
    description: The bmc-rotate binary, a path or a name looked up on C(PATH).
    type: str
    default: bmc-rotate
  inventory:
    description: The stamp's bmc-rotate inventory (TOML) on the node the task runs on.
    type: path
    required: true
  bmc_password:
    description: The password every BMC holds now.
    type: str
    required: true
    no_log: true
  new_password:
    description: The new BMC password.
    type: str
    required: true
    no_log: true
  cloudadmin_password:
    description: The CloudAdmin password for the privileged endpoint.
    type: str
    required: true
    no_log: true
  plugin_dir:
    description: The vendor plugin directory (C(*.wasm)); default the binary's own.
    type: path
  journal:
    description: The run's journal (created, never overwritten); default under C($XDG_STATE_HOME).
    type: path
  audit_log:
    description: The audit log the run is appended to; default under C($XDG_STATE_HOME).
    type: path
  escrow_command:
    description:
      - A command (run by C(/bin/sh -c)) that receives the new password on its standard input before
        the first BMC changes, and runs again after the run with C(BMC_ROTATE_EVENT=rotated) or
        C(rolled-back). A failure stops the run with nothing changed.
    type: str
  extra_args:
    description:
      - More C(bmc-rotate rotate) arguments, e.g. C([--concurrency, "8"]). Never put a secret here;
        arguments are visible to every user of the node.
    type: list
    elements: str
    default: []
notes:
  - Needs the bmc-rotate binary and its vendor plugins on the node the task runs on.
  - The binary's exit code decides the result; 0 rotated (or a clean dry run), 1 failed, 2 bad input
    (nothing changed), 3 rolled back (every BMC holds the old password again), 4 needs
    C(bmc-rotate resume).
author:
  - bmc-rotate maintainers
"""

EXAMPLES = r"""
- name: Rotate the stamp's BMC password
  bmc_rotate.fleet.bmc_rotate:
    inventory: /etc/bmc-rotate/{{ inventory_hostname }}.toml
    bmc_password: "{{ vault_bmc_password }}"
    new_password: "{{ vault_new_bmc_password }}"
    cloudadmin_password: "{{ vault_cloudadmin_password }}"
    journal: /var/lib/bmc-rotate/{{ inventory_hostname }}-{{ ansible_date_time.epoch }}.jsonl
    escrow_command: vault kv put secret/bmc/{{ inventory_hostname }} password=-
  register: rotation

- name: Plan only (check mode is bmc-rotate's --dry-run)
  bmc_rotate.fleet.bmc_rotate:
    inventory: /etc/bmc-rotate/{{ inventory_hostname }}.toml
    bmc_password: "{{ vault_bmc_password }}"
    new_password: "{{ vault_new_bmc_password }}"
    cloudadmin_password: "{{ vault_cloudadmin_password }}"
  check_mode: true
"""

RETURN = r"""
outcome:
  description: The run's outcome from the report (C(rotated), C(rolled-back), C(failed), ...).
  returned: when the binary wrote a report
  type: str
  sample: rotated
bmcs:
  description: Per BMC, the report's C(report.bmcs) entries (name, address, vendor, result, holds, error).
  returned: when the binary wrote a report
  type: list
  elements: dict
journal:
  description: The run's journal, for C(bmc_rotate_status) or C(bmc-rotate resume).
  returned: when the binary wrote a report
  type: str
report:
  description: The binary's whole JSON report (PEP step, notes, password policy).
  returned: when the binary wrote a report
  type: dict
exit_code:
  description: The binary's exit code.
  returned: always
  type: int
exit_meaning:
  description: What the exit code means.
  returned: always
  type: str
errors:
  description: The binary's error messages, when it refused the input or failed before a report.
  returned: on failure
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

EXIT_MEANING = {
    0: "ok",
    1: "failed",
    2: "bad input: nothing was changed",
    3: "rolled back: every BMC holds the old password again",
    4: "needs resume: the outcome is not known everywhere; run bmc-rotate resume",
}


def command(module, binary):
    p = module.params
    cmd = [binary, "rotate", "--inventory", p["inventory"], "--output", "json", "--yes",
           "--bmc-password", "stdin", "--new-password", "stdin", "--cloudadmin-password", "stdin"]
    for option, flag in (("plugin_dir", "--plugin-dir"), ("journal", "--journal"),
                         ("audit_log", "--audit-log"), ("escrow_command", "--escrow-command")):
        if p[option] is not None:
            cmd += [flag, p[option]]
    if module.check_mode:
        cmd.append("--dry-run")
    return cmd + p["extra_args"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="str", default="bmc-rotate"),
            inventory=dict(type="path", required=True),
            bmc_password=dict(type="str", required=True, no_log=True),
            new_password=dict(type="str", required=True, no_log=True),
            cloudadmin_password=dict(type="str", required=True, no_log=True),
            plugin_dir=dict(type="path"),
            journal=dict(type="path"),
            audit_log=dict(type="path"),
            escrow_command=dict(type="str"),
            extra_args=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    secrets = [p["bmc_password"], p["new_password"], p["cloudadmin_password"]]
    if any("\n" in s or "\r" in s for s in secrets):
        module.fail_json(msg="a password contains a line break; bmc-rotate reads one secret per line")
    binary = module.get_bin_path(p["binary"], required=True) if "/" not in p["binary"] else p["binary"]

    # The stdin order is the one `bmc-rotate rotate --help` documents; run_command ends it with a newline.
    rc, out, err = module.run_command(command(module, binary), data="\n".join(secrets),
                                      check_rc=False, environ_update={"NO_COLOR": "1"})
    result = dict(changed=False, exit_code=rc, exit_meaning=EXIT_MEANING.get(rc, "unknown exit code"))
    try:
        document = json.loads(out) if out.strip() else {}
    except ValueError:
        document = {}
    report = document.get("report")
    if report is not None:
        result.update(report=report, bmcs=report.get("bmcs", []), outcome=report.get("outcome"),
                      journal=document.get("journal"))
        result["changed"] = report.get("outcome") == "rotated" and not module.check_mode
    error = document.get("error")
    if error:
        result["errors"] = error.get("messages", [])
    if rc != 0:
        # The binary's own words: its errors, else the report's notes, else its last stderr lines.
        notes = (report or {}).get("notes", [])
        detail = "; ".join(result.get("errors") or notes) or err.strip()[-2000:]
        module.fail_json(msg="bmc-rotate rotate exited %d (%s)%s" % (
            rc, result["exit_meaning"], ": " + detail if detail else ""), stderr=err, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
