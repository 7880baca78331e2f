#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bmc_rotate_status
short_description: Where a bmc-rotate run stands, from its journal alone
description:
  - Runs C(bmc-rotate status --journal FILE --output json). It contacts no BMC and needs no secret.
  - Fails when the run needs C(bmc-rotate resume) (exit code 4) or the journal cannot be read.
version_added: 0.1.0
options:
  binary:
    description: The bmc-rotate binary, a path or a name looked up on C(PATH).
    type: str
    default: bmc-rotate
  journal:
    description: The run's journal.
    type: path
    required: true
author:
  - bmc-rotate maintainers
"""

EXAMPLES = r"""
- name: Check the last rotation converged
  bmc_rotate.fleet.bmc_rotate_status:
    journal: "{{ rotation.journal }}"
  register: status

- ansible.builtin.assert:
    that: status.status.finished == 'rotated'
"""

RETURN = r"""
status:
  description: The binary's JSON status (stamp, bmcs with what each holds, target, pep, finished, skipped).
  returned: when the journal was read
  type: dict
converged:
  description: Whether the run converged (exit code 0).
  returned: always
  type: bool
exit_code:
  description: The binary's exit code (0 converged, 4 needs resume, 2 bad input).
  returned: always
  type: int
"""

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            binary=dict(type="str", default="bmc-rotate"),
            journal=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    binary = module.get_bin_path(p["binary"], required=True) if "/" not in p["binary"] else p["binary"]
    rc, out, err = module.run_command([binary, "status", "--journal", p["journal"], "--output", "json"],
                                      check_rc=False, environ_update={"NO_COLOR": "1"})
    try:
        document = json.loads(out) if out.strip() else {}
    except ValueError:
        document = {}
    result = dict(changed=False, exit_code=rc, converged=rc == 0)
    if "error" in document:
        module.fail_json(msg="bmc-rotate status exited %d: %s" % (
            rc, "; ".join(document["error"].get("messages", []))), **result)
    result["status"] = document
    if rc != 0:
        module.fail_json(msg="bmc-rotate status exited %d: %s" % (
            rc, "the run needs bmc-rotate resume" if rc == 4 else err.strip()[-2000:]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
