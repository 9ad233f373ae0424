#!/usr/bin/python
# One VPC firewall rule (Compute Engine v1), created or brought in line with the options.
from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Create, update or delete an ingress firewall rule
description:
  - Creates the rule when missing; patches it when its source ranges, allowed ports, target
    tags or network differ from the options; deletes it with I(state=absent).
options:
  name: {description: Rule name., type: str, required: true}
  network: {description: VPC network name., type: str, default: default}
  source_ranges: {description: CIDRs allowed in., type: list, elements: str, default: []}
  allowed:
    description: List of C({protocol, ports}) dicts, ports as strings.
    type: list
    elements: dict
    default: []
  target_tags: {description: Network tags the rule applies to., type: list, elements: str, default: []}
  description: {description: Free text., type: str, default: ""}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: SSH from the admin network only
  stockpipe.gcp.firewall:
    name: stockpipe-allow-ssh
    source_ranges: [203.0.113.0/24]
    allowed: [{protocol: tcp, ports: ["22"]}]
    target_tags: [stockpipe]
    project: my-project
"""

RETURN = r"""
firewall:
  description: The rule as the API describes it (empty when absent).
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
    short_name,
    to_dict,
    wait_for,
)


def _allowed(rules):
    return sorted(
        (r["protocol"], tuple(sorted(str(port) for port in r.get("ports") or []))) for r in rules
    )


def _differences(current, p):
    have = {
        "source_ranges": sorted(current.source_ranges),
        "allowed": _allowed(
            [{"protocol": a.I_p_protocol, "ports": list(a.ports)} for a in current.allowed]
        ),
        "target_tags": sorted(current.target_tags),
        "network": short_name(current.network),
    }
    want = {
        "source_ranges": sorted(p["source_ranges"]),
        "allowed": _allowed(p["allowed"]),
        "target_tags": sorted(p["target_tags"]),
        "network": p["network"],
    }
    return [key for key in want if have[key] != want[key]]


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            network=dict(type="str", default="default"),
            source_ranges=dict(type="list", elements="str", default=[]),
            allowed=dict(type="list", elements="dict", default=[]),
            target_tags=dict(type="list", elements="str", default=[]),
            description=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    for rule in p["allowed"]:
        if "protocol" not in rule:
            module.fail_json(msg=f"firewall {p['name']}: every 'allowed' entry needs a protocol")
    client = compute_client(module, compute_v1.FirewallsClient)
    current = get_or_none(client.get, project=p["project"], firewall=p["name"])

    if p["state"] == "absent":
        exit_absent(
            module,
            current,
            lambda: wait_for(
                module,
                client.delete(project=p["project"], firewall=p["name"]),
                f"deleting firewall {p['name']}",
            ),
            firewall={},
        )

    if not p["source_ranges"]:
        module.fail_json(msg=f"firewall {p['name']}: source_ranges is empty (nothing to allow)")
    resource = compute_v1.Firewall(
        name=p["name"],
        network=f"projects/{p['project']}/global/networks/{p['network']}",
        direction="INGRESS",
        source_ranges=p["source_ranges"],
        target_tags=p["target_tags"],
        description=p["description"],
        allowed=[
            compute_v1.Allowed(
                I_p_protocol=r["protocol"], ports=[str(x) for x in r.get("ports") or []]
            )
            for r in p["allowed"]
        ],
    )
    if current is not None:
        differences = _differences(current, p)
        if not differences:
            module.exit_json(changed=False, firewall=to_dict(current))
        if not module.check_mode:
            op = client.patch(project=p["project"], firewall=p["name"], firewall_resource=resource)
            wait_for(module, op, f"updating firewall {p['name']}")
            current = client.get(project=p["project"], firewall=p["name"])
        module.exit_json(changed=True, updated=differences, firewall=to_dict(current))

    if module.check_mode:
        module.exit_json(changed=True, firewall={})
    op = client.insert(project=p["project"], firewall_resource=resource)
    wait_for(module, op, f"creating firewall {p['name']}")
    created = client.get(project=p["project"], firewall=p["name"])
    module.exit_json(changed=True, firewall=to_dict(created))


if __name__ == "__main__":
    main()
