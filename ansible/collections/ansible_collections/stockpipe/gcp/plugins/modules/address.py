#!/usr/bin/python
# A regional static external IP address (Compute Engine v1).
from __future__ import annotations

DOCUMENTATION = r"""
module: address
short_description: Reserve or release a regional static external IP address
description:
  - Reads the address first; creates it only when missing, deletes it only when present.
options:
  name: {description: Address name., type: str, required: true}
  region: {description: "Region, e.g. us-east1.", type: str, required: true}
  network_tier:
    description: STANDARD or PREMIUM.
    type: str
    default: STANDARD
    choices: [STANDARD, PREMIUM]
  description: {description: Free text shown in the console., type: str, default: ""}
  labels: {description: Labels (set when the address is reserved)., type: dict, default: {}}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: Reserve the VM's address
  stockpipe.gcp.address:
    name: stockpipe-ip
    region: us-east1
    project: my-project
"""

RETURN = r"""
address:
  description: The address resource (empty when absent).
  returned: always
  type: dict
ip:
  description: The reserved IPv4 address.
  returned: when present
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import (
    argument_spec,
    compute_client,
    compute_v1,
    exit_absent,
    get_or_none,
    require_libraries,
    short_name,
    to_dict,
    wait_for,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            region=dict(type="str", required=True),
            network_tier=dict(type="str", default="STANDARD", choices=["STANDARD", "PREMIUM"]),
            description=dict(type="str", default=""),
            labels=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    client = compute_client(module, compute_v1.AddressesClient)
    key = dict(project=p["project"], region=p["region"], address=p["name"])
    current = get_or_none(client.get, **key)

    if p["state"] == "absent":
        exit_absent(
            module,
            current,
            lambda: wait_for(module, client.delete(**key), f"deleting address {p['name']}"),
            address={},
        )

    if current is not None:
        if short_name(current.network_tier) != p["network_tier"]:
            module.warn(
                f"address {p['name']} exists with tier {current.network_tier}; "
                "the tier cannot change in place (release it to change it)"
            )
        module.exit_json(changed=False, address=to_dict(current), ip=current.address)
    if module.check_mode:
        module.exit_json(changed=True, address={})
    resource = compute_v1.Address(
        name=p["name"],
        address_type="EXTERNAL",
        network_tier=p["network_tier"],
        description=p["description"],
        labels=p["labels"],
    )
    wait_for(
        module,
        client.insert(project=p["project"], region=p["region"], address_resource=resource),
        f"reserving address {p['name']}",
    )
    created = client.get(**key)
    module.exit_json(changed=True, address=to_dict(created), ip=created.address)


if __name__ == "__main__":
    main()
