#!/usr/bin/python
# One regional subnetwork of a custom-mode VPC network (Compute Engine v1).
from __future__ import annotations

DOCUMENTATION = r"""
module: subnetwork
short_description: Create or delete a regional subnetwork
description:
  - Reads the subnetwork first; creates it only when missing, deletes it only when present
    (the API refuses while a VM uses it). A different range is reported, not changed (that
    means recreating it, and the VMs in it).
options:
  name: {description: Subnetwork name., type: str, required: true}
  region: {description: "Region, e.g. us-east1.", type: str, required: true}
  network: {description: "The VPC network's name (state=present).", type: str}
  ip_cidr_range: {description: "Its private range, e.g. 10.20.0.0/24 (state=present).", type: str}
  description: {description: Free text shown in the console., type: str, default: ""}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: The VMs' subnetwork
  stockpipe.gcp.subnetwork:
    name: stockpipe-us-east1
    region: us-east1
    network: stockpipe
    ip_cidr_range: 10.20.0.0/24
    project: my-project
"""

RETURN = r"""
subnetwork:
  description: The subnetwork as the API describes it (empty when absent).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import (
    argument_spec,
    compute_client,
    compute_v1,
    exit_absent,
    get_or_none,
    require_libraries,
    to_dict,
    wait_for,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            region=dict(type="str", required=True),
            network=dict(type="str"),
            ip_cidr_range=dict(type="str"),
            description=dict(type="str", default=""),
        ),
        required_if=[("state", "present", ["network", "ip_cidr_range"])],
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    client = compute_client(module, compute_v1.SubnetworksClient)
    key = dict(project=p["project"], region=p["region"], subnetwork=p["name"])
    current = get_or_none(client.get, **key)

    if p["state"] == "absent":
        exit_absent(
            module,
            current,
            lambda: wait_for(module, client.delete(**key), f"deleting subnetwork {p['name']}"),
            subnetwork={},
        )
    if current is not None:
        if current.ip_cidr_range != p["ip_cidr_range"]:
            module.warn(
                f"subnetwork {p['name']} exists with range {current.ip_cidr_range}; "
                "a range cannot change in place (tear down to change it)"
            )
        module.exit_json(changed=False, subnetwork=to_dict(current))
    if module.check_mode:
        module.exit_json(changed=True, subnetwork={})
    resource = compute_v1.Subnetwork(
        name=p["name"],
        network=f"projects/{p['project']}/global/networks/{p['network']}",
        ip_cidr_range=p["ip_cidr_range"],
        description=p["description"],
    )
    wait_for(
        module,
        client.insert(project=p["project"], region=p["region"], subnetwork_resource=resource),
        f"creating subnetwork {p['name']}",
    )
    module.exit_json(changed=True, subnetwork=to_dict(client.get(**key)))


if __name__ == "__main__":
    main()
