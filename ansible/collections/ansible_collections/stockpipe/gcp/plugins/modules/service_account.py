#!/usr/bin/python
# The VM's own service account: created with no roles, so the VM can do nothing in GCP.
from __future__ import annotations

DOCUMENTATION = r"""
module: service_account
short_description: Create or delete an IAM service account
description:
  - The account is created without any role binding; grant roles separately if the VM ever
    needs to call a Google API.
options:
  account_id: {description: The part before the @ (6-30 characters)., type: str, required: true}
  display_name: {description: Display name., type: str, default: ""}
  description: {description: Free text., type: str, default: ""}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: The VM's identity
  stockpipe.gcp.service_account:
    account_id: stockpipe-vm
    project: my-project
"""

RETURN = r"""
email:
  description: The account's e-mail address.
  returned: always
  type: str
service_account:
  description: The account as the API describes it (empty when absent).
  returned: always
  type: dict
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import (
    argument_spec,
    exit_absent,
    iam_session,
    require_libraries,
)

ACCOUNT_ID = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")


def _checked(module, response, what):
    if response.status_code >= 400:
        module.fail_json(msg=f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json() if response.content else {}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            account_id=dict(type="str", required=True),
            display_name=dict(type="str", default=""),
            description=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    if not ACCOUNT_ID.match(p["account_id"]):
        module.fail_json(
            msg=f"account_id {p['account_id']!r} must be 6-30 characters of a-z, 0-9 and -, "
            "starting with a letter"
        )
    session, base = iam_session(module)
    email = f"{p['account_id']}@{p['project']}.iam.gserviceaccount.com"
    url = f"{base}/v1/projects/{p['project']}/serviceAccounts/{email}"
    response = session.get(url)
    exists = response.status_code != 404
    current = _checked(module, response, f"reading service account {email}") if exists else {}

    if p["state"] == "absent":
        exit_absent(
            module,
            current if exists else None,
            lambda: _checked(module, session.delete(url), f"deleting service account {email}"),
            email=email,
            service_account={},
        )

    if exists:
        module.exit_json(changed=False, email=email, service_account=current)
    if module.check_mode:
        module.exit_json(changed=True, email=email, service_account={})
    body = {
        "accountId": p["account_id"],
        "serviceAccount": {"displayName": p["display_name"], "description": p["description"]},
    }
    created = _checked(
        module,
        session.post(f"{base}/v1/projects/{p['project']}/serviceAccounts", json=body),
        f"creating service account {email}",
    )
    module.exit_json(changed=True, email=created.get("email", email), service_account=created)


if __name__ == "__main__":
    main()
