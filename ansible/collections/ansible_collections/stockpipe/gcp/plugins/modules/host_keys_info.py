#!/usr/bin/python
# The SSH host keys a VM's guest environment published in its guest attributes.
from __future__ import annotations

DOCUMENTATION = r"""
module: host_keys_info
short_description: The SSH host keys a VM published (guest attributes, hostkeys/)
description:
  - Google's guest environment writes the VM's SSH host keys to its guest attributes
    (namespace C(hostkeys)) once it has booted, when the metadata has
    C(enable-guest-attributes=TRUE). Read through the Compute API (authenticated, not over
    SSH), they let the first SSH connection check the host key instead of trusting it.
  - Returns no keys while the VM has not published them yet (retry until it has).
options:
  name: {description: VM name., type: str, required: true}
  zone: {description: "Zone, e.g. us-east1-b.", type: str, required: true}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: Wait for the VM's host keys
  stockpipe.gcp.host_keys_info:
    name: stockpipe
    zone: us-east1-b
    project: my-project
  register: found
  until: found.host_keys | length > 0
  retries: 30
  delay: 10
"""

RETURN = r"""
host_keys:
  description: The published keys, as known_hosts fields (type and base64 key), sorted.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import (
    api_error,
    argument_spec,
    compute_client,
    compute_v1,
    gexc,
    require_libraries,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            zone=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    client = compute_client(module, compute_v1.InstancesClient)
    request = compute_v1.GetGuestAttributesInstanceRequest(
        project=p["project"], zone=p["zone"], instance=p["name"], query_path="hostkeys/"
    )
    try:
        attributes = client.get_guest_attributes(request=request)
        items = attributes.query_value.items
    except gexc.NotFound:  # not published yet (or no guest environment)
        items = []
    except gexc.GoogleAPICallError as exc:
        api_error(module, f"reading the host keys of VM {p['name']}", exc)
    keys = sorted(
        ({"type": item.key, "key": item.value} for item in items if item.namespace == "hostkeys"),
        key=lambda k: k["type"],
    )
    module.exit_json(changed=False, host_keys=keys)


if __name__ == "__main__":
    main()
