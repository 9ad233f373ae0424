#!/usr/bin/python
# The names of the project's VMs or addresses that carry given labels.
from __future__ import annotations

DOCUMENTATION = r"""
module: labelled_info
short_description: Names of the VMs of a zone, or the addresses of a region, with given labels
description:
  - Lists through the Compute API with a label filter. Teardown selects what to delete this
    way, so it finds every node a deployment made whatever the variables say now.
options:
  kind: {description: What to list., type: str, required: true, choices: [instances, addresses]}
  zone: {description: "The zone (instances).", type: str}
  region: {description: "The region (addresses).", type: str}
  labels: {description: Labels every listed resource carries., type: dict, required: true}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: The deployment's VMs
  stockpipe.gcp.labelled_info:
    kind: instances
    zone: us-east1-b
    labels: {stockpipe_deployment: stockpipe}
    project: my-project
  register: found
"""

RETURN = r"""
names:
  description: The names found, sorted.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stockpipe.gcp.plugins.module_utils.gcp_client import (
    api_error,
    argument_spec,
    compute_client,
    compute_v1,
    gexc,
    label_filter,
    require_libraries,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            kind=dict(type="str", required=True, choices=["instances", "addresses"]),
            zone=dict(type="str"),
            region=dict(type="str"),
            labels=dict(type="dict", required=True),
        ),
        required_if=[("kind", "instances", ["zone"]), ("kind", "addresses", ["region"])],
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    if not p["labels"]:
        module.fail_json(msg="labels must name at least one label (an empty filter lists all)")
    selector = dict(project=p["project"], filter=label_filter(p["labels"]))
    if p["kind"] == "instances":
        client = compute_client(module, compute_v1.InstancesClient)
        request = compute_v1.ListInstancesRequest(zone=p["zone"], **selector)
    else:
        client = compute_client(module, compute_v1.AddressesClient)
        request = compute_v1.ListAddressesRequest(region=p["region"], **selector)
    try:
        names = sorted(item.name for item in client.list(request=request))
    except gexc.GoogleAPICallError as exc:
        api_error(module, f"listing {p['kind']}", exc)
    module.exit_json(changed=False, names=names)


if __name__ == "__main__":
    main()
