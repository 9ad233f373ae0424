#!/usr/bin/python
# A Compute Engine VM with one boot disk, one external address and a service account.
from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: Create or delete a Compute Engine VM
description:
  - Creates the VM when missing. When it exists, network tags are brought in line with the
    options (setTags); any other difference (machine type, image, disk) is reported as a
    warning, because changing it means recreating the VM and its disk.
  - Deleting the VM deletes its boot disk (auto_delete).
options:
  name: {description: VM name., type: str, required: true}
  zone: {description: "Zone, e.g. us-east1-b.", type: str, required: true}
  machine_type: {description: Machine type., type: str, default: e2-micro}
  image: {description: Boot image or image family URL., type: str, default: projects/debian-cloud/global/images/family/debian-13}
  disk_size_gb: {description: Boot disk size., type: int, default: 30}
  disk_type: {description: Boot disk type., type: str, default: pd-standard}
  network: {description: VPC network name., type: str, default: default}
  subnetwork: {description: "The network's subnetwork in the zone's region (needed in a custom-mode network).", type: str, default: ""}
  address: {description: Static external IPv4 to attach (empty for an ephemeral one)., type: str, default: ""}
  network_tier: {description: STANDARD or PREMIUM (must match the address)., type: str, default: STANDARD, choices: [STANDARD, PREMIUM]}
  tags: {description: Network tags (firewall targets)., type: list, elements: str, default: []}
  labels: {description: Labels., type: dict, default: {}}
  metadata: {description: "Instance metadata, e.g. ssh-keys.", type: dict, default: {}}
  service_account_email: {description: Service account the VM runs as (needed to create it)., type: str}
  scopes: {description: OAuth scopes granted to the VM's service account., type: list, elements: str, default: []}
extends_documentation_fragment: [stockpipe.gcp.gcp]
"""

EXAMPLES = r"""
- name: The pipeline's VM
  stockpipe.gcp.instance:
    name: stockpipe
    zone: us-east1-b
    address: 203.0.113.7
    tags: [stockpipe]
    service_account_email: stockpipe-vm@my-project.iam.gserviceaccount.com
    project: my-project
"""

RETURN = r"""
instance:
  description: The VM as the API describes it (empty when absent).
  returned: always
  type: dict
ip:
  description: The VM's external IPv4 address.
  returned: when present
  type: str
internal_ip:
  description: The VM's internal IPv4 address in its VPC network (what cluster nodes use).
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


def _internal_ip(instance):
    for interface in instance.network_interfaces:
        if interface.network_i_p:
            return interface.network_i_p
    return ""


def _external_ip(instance):
    for interface in instance.network_interfaces:
        for config in interface.access_configs:
            if config.nat_i_p:
                return config.nat_i_p
    return ""


def _interface(p, access):
    interface = compute_v1.NetworkInterface(
        network=f"global/networks/{p['network']}", access_configs=[access]
    )
    if p["subnetwork"]:
        region = p["zone"].rsplit("-", 1)[0]
        interface.subnetwork = f"regions/{region}/subnetworks/{p['subnetwork']}"
    return interface


def _resource(p):
    zone = p["zone"]
    access = compute_v1.AccessConfig(
        name="External NAT", type_="ONE_TO_ONE_NAT", network_tier=p["network_tier"]
    )
    if p["address"]:
        access.nat_i_p = p["address"]
    return compute_v1.Instance(
        name=p["name"],
        machine_type=f"zones/{zone}/machineTypes/{p['machine_type']}",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=p["image"],
                    disk_size_gb=p["disk_size_gb"],
                    disk_type=f"zones/{zone}/diskTypes/{p['disk_type']}",
                ),
            )
        ],
        network_interfaces=[_interface(p, access)],
        tags=compute_v1.Tags(items=p["tags"]),
        labels=p["labels"],
        metadata=compute_v1.Metadata(
            items=[compute_v1.Items(key=k, value=str(v)) for k, v in sorted(p["metadata"].items())]
        ),
        service_accounts=[
            compute_v1.ServiceAccount(email=p["service_account_email"], scopes=p["scopes"])
        ],
        shielded_instance_config=compute_v1.ShieldedInstanceConfig(
            enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
        ),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            zone=dict(type="str", required=True),
            machine_type=dict(type="str", default="e2-micro"),
            image=dict(type="str", default="projects/debian-cloud/global/images/family/debian-13"),
            disk_size_gb=dict(type="int", default=30),
            disk_type=dict(type="str", default="pd-standard"),
            network=dict(type="str", default="default"),
            subnetwork=dict(type="str", default=""),
            address=dict(type="str", default=""),
            network_tier=dict(type="str", default="STANDARD", choices=["STANDARD", "PREMIUM"]),
            tags=dict(type="list", elements="str", default=[]),
            labels=dict(type="dict", default={}),
            metadata=dict(type="dict", default={}),
            service_account_email=dict(type="str"),
            scopes=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("state", "present", ["service_account_email"])],
        supports_check_mode=True,
    )
    require_libraries(module)
    p = module.params
    client = compute_client(module, compute_v1.InstancesClient)
    key = dict(project=p["project"], zone=p["zone"], instance=p["name"])
    current = get_or_none(client.get, **key)

    if p["state"] == "absent":
        exit_absent(
            module,
            current,
            lambda: wait_for(module, client.delete(**key), f"deleting VM {p['name']}"),
            instance={},
        )

    if current is None:
        if module.check_mode:
            module.exit_json(changed=True, instance={})
        op = client.insert(project=p["project"], zone=p["zone"], instance_resource=_resource(p))
        wait_for(module, op, f"creating VM {p['name']}")
        created = client.get(**key)
        module.exit_json(
            changed=True,
            instance=to_dict(created),
            ip=_external_ip(created),
            internal_ip=_internal_ip(created),
        )

    if short_name(current.machine_type) != p["machine_type"]:
        module.warn(
            f"VM {p['name']} runs {short_name(current.machine_type)}, not {p['machine_type']}; "
            "stop it and change the machine type, or tear down and provision again"
        )
    changed = False
    if sorted(current.tags.items) != sorted(p["tags"]):
        changed = True
        if not module.check_mode:
            tags = compute_v1.Tags(items=p["tags"], fingerprint=current.tags.fingerprint)
            wait_for(module, client.set_tags(tags_resource=tags, **key), f"tagging VM {p['name']}")
            current = client.get(**key)
    module.exit_json(
        changed=changed,
        instance=to_dict(current),
        ip=_external_ip(current),
        internal_ip=_internal_ip(current),
    )


if __name__ == "__main__":
    main()
