#!/usr/bin/python
# A custom-mode VPC network (Compute Engine v1): no subnetworks and no firewall rules but
# those the playbook makes.
from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Create or delete a custom-mode VPC network
description:
  - A network of its own for the deployment. The project's auto-mode C(default) network
    carries pre-made rules for every VM in it (SSH and RDP from anywhere, every port from
    10.128.0.0/9); a new custom-mode network has none, so only the playbook's rules apply.
  - Reads the network first; creates it only when missing, deletes it only when present
    (the API refuses while subnetworks, firewall rules or VMs still use it).
options:
  name: {description: Network name., type: str, required: true}
  description: {description: Free text shown in the console., type: str, default: ""}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: The deployment's own network
  stockpipe.gcp.network:
    name: stockpipe
    project: my-project
"""

RETURN = r"""
network:
  description: The network as the API describes it (empty when absent).
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
            description=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    client = compute_client(module, compute_v1.NetworksClient)
    key = dict(project=p["project"], network=p["name"])
    current = get_or_none(client.get, **key)

    if p["state"] == "absent":
        exit_absent(
            module,
            current,
            lambda: wait_for(module, client.delete(**key), f"deleting network {p['name']}"),
            network={},
        )
    if current is not None:
        if current.auto_create_subnetworks:
            module.fail_json(
                msg=f"network {p['name']} exists in auto mode (a subnetwork in every region, "
                "and the project's pre-made rules may apply to it): choose another "
                "gce_vm_network name"
            )
        module.exit_json(changed=False, network=to_dict(current))
    if module.check_mode:
        module.exit_json(changed=True, network={})
    resource = compute_v1.Network(
        name=p["name"],
        auto_create_subnetworks=False,
        routing_config=compute_v1.NetworkRoutingConfig(routing_mode="REGIONAL"),
        description=p["description"],
    )
    wait_for(
        module,
        client.insert(project=p["project"], network_resource=resource),
        f"creating network {p['name']}",
    )
    module.exit_json(changed=True, network=to_dict(client.get(**key)))


if __name__ == "__main__":
    main()
