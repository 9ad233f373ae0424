"""A local stand-in for the Compute Engine v1 and IAM v1 REST APIs (GCP cannot be reached).

It speaks HTTP/JSON the way the real APIs do for the calls provision/teardown make: resources
at their real paths, 404s with Google's error body, long-running Operation objects, the
checks that would make the real API refuse a request (a VM whose natIP is not a reserved
address of its region, an address released while a VM uses it, a duplicate name). Every
request is recorded so tests can assert what the playbooks asked for.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

COMPUTE = "/compute/v1/projects/(?P<project>[^/]+)"
ROUTES = [
    (
        "addresses",
        re.compile(COMPUTE + r"/regions/(?P<scope>[^/]+)/addresses(?:/(?P<name>[^/]+))?$"),
    ),
    ("firewalls", re.compile(COMPUTE + r"/global/firewalls(?:/(?P<name>[^/]+))?$")),
    ("networks", re.compile(COMPUTE + r"/global/networks(?:/(?P<name>[^/]+))?$")),
    (
        "subnetworks",
        re.compile(COMPUTE + r"/regions/(?P<scope>[^/]+)/subnetworks(?:/(?P<name>[^/]+))?$"),
    ),
    ("instances", re.compile(COMPUTE + r"/zones/(?P<scope>[^/]+)/instances(?:/(?P<name>[^/]+))?$")),
    (
        "guest_attributes",
        re.compile(
            COMPUTE + r"/zones/(?P<scope>[^/]+)/instances/(?P<name>[^/]+)/getGuestAttributes$"
        ),
    ),
    (
        "set_tags",
        re.compile(COMPUTE + r"/zones/(?P<scope>[^/]+)/instances/(?P<name>[^/]+)/setTags$"),
    ),
    (
        "operations",
        re.compile(
            COMPUTE
            + r"/(?:regions/[^/]+/|zones/[^/]+/|global/)operations/(?P<name>[^/]+)(?:/wait)?$"
        ),
    ),
    (
        "accounts",
        re.compile(r"/v1/projects/(?P<project>[^/]+)/serviceAccounts(?:/(?P<name>[^/]+))?$"),
    ),
]
# A new project's auto-mode "default" network and the rules Google makes with it: what a
# deployment must not land in.
PREMADE_RULES = {
    "default-allow-ssh": ([{"IPProtocol": "tcp", "ports": ["22"]}], ["0.0.0.0/0"]),
    "default-allow-rdp": ([{"IPProtocol": "tcp", "ports": ["3389"]}], ["0.0.0.0/0"]),
    "default-allow-icmp": ([{"IPProtocol": "icmp"}], ["0.0.0.0/0"]),
    "default-allow-internal": (
        [
            {"IPProtocol": "tcp", "ports": ["0-65535"]},
            {"IPProtocol": "udp", "ports": ["0-65535"]},
            {"IPProtocol": "icmp"},
        ],
        ["10.128.0.0/9"],
    ),
}
PREMADE_KEYS = {"default", *PREMADE_RULES}


def _premade() -> dict[str, dict[Any, dict]]:
    network = "https://www.googleapis.com/compute/v1/projects/{project}/global/networks/default"
    return {
        "addresses": {},
        "firewalls": {
            name: {
                "kind": "compute#firewall",
                "name": name,
                "network": network,
                "direction": "INGRESS",
                "allowed": allowed,
                "sourceRanges": ranges,
                "targetTags": [],
            }
            for name, (allowed, ranges) in PREMADE_RULES.items()
        },
        "instances": {},
        "accounts": {},
        "networks": {
            "default": {"kind": "compute#network", "name": "default", "autoCreateSubnetworks": True}
        },
        "subnetworks": {},
    }


# Collections a GET without a name lists (the others are only read one by one here).
LISTABLE = {"addresses", "instances"}
LABEL_TERM = re.compile(r'labels\.(?P<key>[a-z][a-z0-9_-]*)\s*=\s*"(?P<value>[a-z0-9_-]*)"')


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any] | None
    authorization: str


@dataclass
class FakeGCE:
    """The fake's state. `requests` lists every call; `resources` holds what exists."""

    requests: list[Recorded] = field(default_factory=list)
    resources: dict[str, dict[Any, dict]] = field(default_factory=lambda: _premade())
    operations: dict[str, dict] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _ips: itertools.count = field(default_factory=lambda: itertools.count(10))
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    token_subjects: list[str] = field(default_factory=list)
    guest_attribute_reads: dict[str, int] = field(default_factory=dict)

    def made(self) -> dict[str, dict[Any, dict]]:
        """What exists now that the project did not come with (its default network and that
        network's pre-made rules are left out)."""
        return {
            kind: {key: value for key, value in store.items() if key not in PREMADE_KEYS}
            for kind, store in self.resources.items()
        }

    def writes(self) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.method in {"POST", "PATCH", "DELETE"}
            and "/operations/" not in r.path
            and r.path != "/token"
        ]

    # -- helpers ---------------------------------------------------------------------------
    def _link(self, path: str) -> str:
        return f"https://www.googleapis.com{path}"

    def _operation(self, project: str, scope_path: str, kind: str, target: str) -> dict:
        name = f"operation-{next(self._ids)}"
        op = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "operationType": kind,
            "targetLink": self._link(target),
            "status": "DONE",
            "progress": 100,
            "selfLink": self._link(
                f"/compute/v1/projects/{project}/{scope_path}/operations/{name}"
            ),
        }
        if scope_path.startswith("zones/"):
            op["zone"] = self._link(f"/compute/v1/projects/{project}/{scope_path}")
        elif scope_path.startswith("regions/"):
            op["region"] = self._link(f"/compute/v1/projects/{project}/{scope_path}")
        self.operations[name] = op
        return op

    def token(self, form: str) -> tuple[int, dict]:
        """Google's OAuth token endpoint: a signed JWT assertion in, an access token out."""
        fields = dict(parse_qsl(form))
        assertion = fields.get("assertion", "")
        if (
            fields.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer"
            or assertion.count(".") != 2
        ):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT assertion"}
        claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
        # google-auth signs for Google's token endpoint whatever token_uri the key names.
        if claims.get("aud") != "https://oauth2.googleapis.com/token" or not claims.get("iss"):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT audience"}
        self.token_subjects.append(claims["iss"])
        return 200, {
            "access_token": f"ya29.fake-{next(self._ids)}",
            "expires_in": 3599,
            "token_type": "Bearer",
        }

    def authorised(self, header: str) -> bool:
        """A token from token() or, as the Cloud client libraries send, a self-signed JWT."""
        token = header.removeprefix("Bearer ")
        if token == header:
            return False
        if token.startswith("ya29.fake-"):
            return True
        if token.count(".") != 2:
            return False
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        if not claims.get("iss"):
            return False
        self.token_subjects.append(claims["iss"])
        return True

    # -- the API ---------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, body: dict | None, query: dict[str, list[str]] | None = None
    ) -> tuple[int, dict]:
        for kind, pattern in ROUTES:
            match = pattern.match(path)
            if match:
                handler = getattr(self, f"_{kind}")
                if kind in LISTABLE and method == "GET" and not match["name"]:
                    return self._list(
                        kind, path, (query or {}).get("filter", [""])[0], **match.groupdict()
                    )
                return handler(method, body, **match.groupdict())
        return error(404, f"no such API path {path}")

    def _list(self, kind, path, expression, project, scope, name):
        """GET of a collection, with the API's label filter (``labels.KEY = "VALUE"``,
        joined by AND); an expression it cannot read is refused, as the API does."""
        wanted = {}
        for term in filter(None, re.split(r"\s+AND\s+", expression.strip())):
            match = LABEL_TERM.fullmatch(term.strip())
            if match is None:
                return error(400, f"Invalid value for field 'filter': '{expression}'.", "invalid")
            wanted[match["key"]] = match["value"]
        items = [
            resource
            for (resource_scope, _), resource in sorted(self.resources[kind].items())
            if resource_scope == scope
            and all(resource.get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        listing = {"kind": f"compute#{kind[:-1] if kind != 'addresses' else 'address'}List"}
        listing |= {"id": path, "selfLink": self._link(path)}
        if items:  # the API leaves "items" out of an empty list
            listing["items"] = items
        return 200, listing

    def _operations(self, method, body, project, name):
        if name not in self.operations:
            return not_found(f"operations/{name}")
        return 200, self.operations[name]

    def _addresses(self, method, body, project, scope, name):
        store = self.resources["addresses"]
        base = f"/compute/v1/projects/{project}/regions/{scope}/addresses"
        if method == "GET" and name:
            return found(
                store, (scope, name), f"projects/{project}/regions/{scope}/addresses/{name}"
            )
        if method == "POST" and not name:
            if (scope, body["name"]) in store:
                return already_exists(
                    f"projects/{project}/regions/{scope}/addresses/{body['name']}"
                )
            store[(scope, body["name"])] = {
                "kind": "compute#address",
                "id": str(next(self._ids)),
                "name": body["name"],
                "address": f"203.0.113.{next(self._ips)}",
                "addressType": body.get("addressType", "EXTERNAL"),
                "networkTier": body.get("networkTier", "PREMIUM"),
                "description": body.get("description", ""),
                "labels": body.get("labels", {}),
                "status": "RESERVED",
                "region": self._link(f"/compute/v1/projects/{project}/regions/{scope}"),
                "selfLink": self._link(f"{base}/{body['name']}"),
            }
            return 200, self._operation(
                project, f"regions/{scope}", "insert", f"{base}/{body['name']}"
            )
        if method == "DELETE" and name:
            address = store.get((scope, name))
            if address is None:
                return not_found(f"projects/{project}/regions/{scope}/addresses/{name}")
            if address.get("users"):
                return error(
                    400,
                    f"The address resource '{address['selfLink']}' is already being used by "
                    f"'{address['users'][0]}'",
                    reason="resourceInUseByAnotherResource",
                )
            del store[(scope, name)]
            return 200, self._operation(project, f"regions/{scope}", "delete", f"{base}/{name}")
        return error(405, f"{method} not allowed on {base}")

    def _firewalls(self, method, body, project, name):
        store = self.resources["firewalls"]
        base = f"/compute/v1/projects/{project}/global/firewalls"
        if method == "GET" and name:
            return found(store, name, f"projects/{project}/global/firewalls/{name}")
        if method in {"POST", "PATCH"}:
            rule_name = body["name"] if method == "POST" else name
            if method == "POST" and rule_name in store:
                return already_exists(f"projects/{project}/global/firewalls/{rule_name}")
            if method == "PATCH" and rule_name not in store:
                return not_found(f"projects/{project}/global/firewalls/{name}")
            if method == "POST" or "network" in body:
                network = body["network"].rstrip("/").rsplit("/", 1)[-1]
                if network not in self.resources["networks"]:
                    return not_found(f"projects/{project}/global/networks/{network}")
            for cidr in body.get("sourceRanges", []):
                try:
                    ip_network(cidr)
                except ValueError:
                    return error(
                        400,
                        f"Invalid value for field 'resource.sourceRanges': '{cidr}'",
                        reason="invalid",
                    )
            rule = store.get(rule_name, {"id": str(next(self._ids))})
            rule.update(
                {
                    "kind": "compute#firewall",
                    "name": rule_name,
                    "network": self._link(f"/compute/v1/{body['network']}")
                    if not body["network"].startswith("https://")
                    else body["network"],
                    "direction": body.get("direction", "INGRESS"),
                    "sourceRanges": body.get("sourceRanges", []),
                    "targetTags": body.get("targetTags", []),
                    "allowed": body.get("allowed", []),
                    "description": body.get("description", ""),
                    "selfLink": self._link(f"{base}/{rule_name}"),
                }
            )
            store[rule_name] = rule
            return 200, self._operation(
                project, "global", method.lower().replace("post", "insert"), f"{base}/{rule_name}"
            )
        if method == "DELETE" and name:
            if name not in store:
                return not_found(f"projects/{project}/global/firewalls/{name}")
            del store[name]
            return 200, self._operation(project, "global", "delete", f"{base}/{name}")
        return error(405, f"{method} not allowed on {base}")

    def _instances(self, method, body, project, scope, name):
        store = self.resources["instances"]
        base = f"/compute/v1/projects/{project}/zones/{scope}/instances"
        region = scope.rsplit("-", 1)[0]
        if method == "GET" and name:
            return found(store, (scope, name), f"projects/{project}/zones/{scope}/instances/{name}")
        if method == "POST" and not name:
            if (scope, body["name"]) in store:
                return already_exists(f"projects/{project}/zones/{scope}/instances/{body['name']}")
            if not body.get("machineType", "").startswith(f"zones/{scope}/machineTypes/"):
                return error(
                    400,
                    f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'",
                    reason="invalid",
                )
            instance = json.loads(json.dumps(body))
            for interface in instance.get("networkInterfaces", []):
                problem = self._place(project, region, interface, len(store) + 2)
                if problem is not None:
                    return problem
                for access in interface.get("accessConfigs", []):
                    nat_ip = access.get("natIP")
                    address = next(
                        (
                            a
                            for (r, _), a in self.resources["addresses"].items()
                            if r == region and a["address"] == nat_ip
                        ),
                        None,
                    )
                    if nat_ip and address is None:
                        return error(
                            400,
                            f"Invalid value for field 'resource.networkInterfaces[0]"
                            f".accessConfigs[0].natIP': '{nat_ip}'. The specified "
                            "external IP address was not found in region.",
                            reason="invalid",
                        )
                    if address is not None:
                        address["status"] = "IN_USE"
                        address["users"] = [self._link(f"{base}/{body['name']}")]
            instance.update(
                {
                    "kind": "compute#instance",
                    "id": str(next(self._ids)),
                    "status": "RUNNING",
                    "zone": self._link(f"/compute/v1/projects/{project}/zones/{scope}"),
                    "machineType": self._link(
                        f"/compute/v1/projects/{project}/{body['machineType']}"
                    ),
                    "selfLink": self._link(f"{base}/{body['name']}"),
                }
            )
            instance.setdefault("tags", {})["fingerprint"] = "fp-1"
            store[(scope, body["name"])] = instance
            return 200, self._operation(
                project, f"zones/{scope}", "insert", f"{base}/{body['name']}"
            )
        if method == "DELETE" and name:
            instance = store.pop((scope, name), None)
            if instance is None:
                return not_found(f"projects/{project}/zones/{scope}/instances/{name}")
            for address in self.resources["addresses"].values():
                if instance["selfLink"] in address.get("users", []):
                    address["users"] = []
                    address["status"] = "RESERVED"
            return 200, self._operation(project, f"zones/{scope}", "delete", f"{base}/{name}")
        return error(405, f"{method} not allowed on {base}")

    def _place(self, project, region, interface, host):
        """Checks a new VM's interface against the networks and gives it its internal
        address from its subnetwork (the API's error when the request is not placeable)."""
        network_name = interface.get("network", "global/networks/default").rsplit("/", 1)[-1]
        network = self.resources["networks"].get(network_name)
        if network is None:
            return not_found(f"projects/{project}/global/networks/{network_name}")
        if network["autoCreateSubnetworks"]:
            interface["networkIP"] = f"10.142.0.{host}"  # the region's auto subnetwork
            return None
        subnet_name = interface.get("subnetwork", "").rsplit("/", 1)[-1]
        if not subnet_name:
            return error(
                400,
                "Invalid value for field 'resource.networkInterfaces[0]': ''. Subnetwork "
                "should be specified for custom subnetmode network",
                reason="invalid",
            )
        subnet = self.resources["subnetworks"].get((region, subnet_name))
        if subnet is None or subnet["network"].rsplit("/", 1)[-1] != network_name:
            return not_found(f"projects/{project}/regions/{region}/subnetworks/{subnet_name}")
        interface["networkIP"] = str(ip_network(subnet["ipCidrRange"])[host])
        interface["subnetwork"] = subnet["selfLink"]
        return None

    def _in_use(self, resource_path: str, users: list[str]):
        return error(
            400,
            f"The {resource_path.split('/')[-2][:-1]} resource '{resource_path}' is already "
            f"being used by '{users[0]}'",
            reason="resourceInUseByAnotherResource",
        )

    def _networks(self, method, body, project, name):
        store = self.resources["networks"]
        base = f"/compute/v1/projects/{project}/global/networks"
        if method == "GET" and name:
            return found(store, name, f"projects/{project}/global/networks/{name}")
        if method == "POST" and not name:
            if body["name"] in store:
                return already_exists(f"projects/{project}/global/networks/{body['name']}")
            store[body["name"]] = {
                "kind": "compute#network",
                "id": str(next(self._ids)),
                "name": body["name"],
                "autoCreateSubnetworks": body.get("autoCreateSubnetworks", True),
                "routingConfig": body.get("routingConfig", {"routingMode": "REGIONAL"}),
                "description": body.get("description", ""),
                "selfLink": self._link(f"{base}/{body['name']}"),
            }
            return 200, self._operation(project, "global", "insert", f"{base}/{body['name']}")
        if method == "DELETE" and name:
            if name not in store:
                return not_found(f"projects/{project}/global/networks/{name}")
            users = [
                rule["selfLink"]
                for rule in self.resources["firewalls"].values()
                if rule["network"].rsplit("/", 1)[-1] == name and "selfLink" in rule
            ] + [
                subnet["selfLink"]
                for subnet in self.resources["subnetworks"].values()
                if subnet["network"].rsplit("/", 1)[-1] == name
            ]
            if users:
                return self._in_use(f"projects/{project}/global/networks/{name}", users)
            del store[name]
            return 200, self._operation(project, "global", "delete", f"{base}/{name}")
        return error(405, f"{method} not allowed on {base}")

    def _subnetworks(self, method, body, project, scope, name):
        store = self.resources["subnetworks"]
        base = f"/compute/v1/projects/{project}/regions/{scope}/subnetworks"
        if method == "GET" and name:
            return found(
                store, (scope, name), f"projects/{project}/regions/{scope}/subnetworks/{name}"
            )
        if method == "POST" and not name:
            if (scope, body["name"]) in store:
                return already_exists(
                    f"projects/{project}/regions/{scope}/subnetworks/{body['name']}"
                )
            network = body["network"].rsplit("/", 1)[-1]
            if network not in self.resources["networks"]:
                return not_found(f"projects/{project}/global/networks/{network}")
            try:
                ip_network(body["ipCidrRange"])
            except ValueError:
                return error(
                    400,
                    f"Invalid value for field 'resource.ipCidrRange': '{body['ipCidrRange']}'",
                    reason="invalid",
                )
            store[(scope, body["name"])] = {
                "kind": "compute#subnetwork",
                "id": str(next(self._ids)),
                "name": body["name"],
                "network": self._link(f"/compute/v1/projects/{project}/global/networks/{network}"),
                "ipCidrRange": body["ipCidrRange"],
                "region": self._link(f"/compute/v1/projects/{project}/regions/{scope}"),
                "description": body.get("description", ""),
                "selfLink": self._link(f"{base}/{body['name']}"),
            }
            return 200, self._operation(
                project, f"regions/{scope}", "insert", f"{base}/{body['name']}"
            )
        if method == "DELETE" and name:
            subnet = store.get((scope, name))
            if subnet is None:
                return not_found(f"projects/{project}/regions/{scope}/subnetworks/{name}")
            users = [
                vm["selfLink"]
                for vm in self.resources["instances"].values()
                if any(i.get("subnetwork") == subnet["selfLink"] for i in vm["networkInterfaces"])
            ]
            if users:
                return self._in_use(f"projects/{project}/regions/{scope}/subnetworks/{name}", users)
            del store[(scope, name)]
            return 200, self._operation(project, f"regions/{scope}", "delete", f"{base}/{name}")
        return error(405, f"{method} not allowed on {base}")

    def _guest_attributes(self, method, body, project, scope, name):
        """The guest environment publishes the host keys some time after the VM starts:
        here, from the third read of a VM on (the API answers 404 until then)."""
        instance = self.resources["instances"].get((scope, name))
        if instance is None:
            return not_found(f"projects/{project}/zones/{scope}/instances/{name}")
        enabled = {i["key"]: i["value"] for i in instance.get("metadata", {}).get("items", [])}
        reads = self.guest_attribute_reads[name] = self.guest_attribute_reads.get(name, 0) + 1
        if enabled.get("enable-guest-attributes") != "TRUE" or reads < 3:
            return not_found(f"projects/{project}/zones/{scope}/instances/{name}/guestAttributes")
        return 200, {
            "kind": "compute#guestAttributes",
            "queryPath": "hostkeys/",
            "queryValue": {
                "items": [
                    {"namespace": "hostkeys", "key": kind, "value": value}
                    for kind, value in self.host_keys(name).items()
                ]
            },
        }

    def host_keys(self, name: str) -> dict[str, str]:
        """The VM's SSH host keys (type -> base64), as its guest environment publishes them."""
        seed = base64.b64encode(f"host-key-of-{name}".encode()).decode()
        return {"ecdsa-sha2-nistp256": "AAAAE2VjZHNh" + seed, "ssh-ed25519": "AAAAC3Nz" + seed}

    def _set_tags(self, method, body, project, scope, name):
        instance = self.resources["instances"].get((scope, name))
        if instance is None:
            return not_found(f"projects/{project}/zones/{scope}/instances/{name}")
        if body.get("fingerprint") != instance["tags"].get("fingerprint"):
            return error(
                412,
                "Supplied fingerprint does not match current metadata fingerprint.",
                reason="conditionNotMet",
            )
        instance["tags"] = {"items": body.get("items", []), "fingerprint": f"fp-{next(self._ids)}"}
        path = f"/compute/v1/projects/{project}/zones/{scope}/instances/{name}"
        return 200, self._operation(project, f"zones/{scope}", "setTags", path)

    def _accounts(self, method, body, project, name):
        store = self.resources["accounts"]
        if method == "GET" and name:
            if name not in store:
                return error(404, "Unknown service account", status="NOT_FOUND")
            return 200, store[name]
        if method == "POST" and not name:
            email = f"{body['accountId']}@{project}.iam.gserviceaccount.com"
            if email in store:
                return error(
                    409,
                    f"Service account {body['accountId']} already exists within "
                    f"project projects/{project}.",
                    status="ALREADY_EXISTS",
                )
            store[email] = {
                "name": f"projects/{project}/serviceAccounts/{email}",
                "projectId": project,
                "uniqueId": str(next(self._ids)),
                "email": email,
                "displayName": body.get("serviceAccount", {}).get("displayName", ""),
                "description": body.get("serviceAccount", {}).get("description", ""),
            }
            return 200, store[email]
        if method == "DELETE" and name:
            if store.pop(name, None) is None:
                return error(404, "Unknown service account", status="NOT_FOUND")
            return 200, {}
        return error(405, f"{method} not allowed")


def error(code: int, message: str, reason: str = "notFound", status: str | None = None):
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    if status:
        body["error"]["status"] = status
    return code, body


def not_found(resource_path: str):
    return error(404, f"The resource '{resource_path}' was not found")


def found(store: dict, key, resource_path: str):
    if key not in store:
        return not_found(resource_path)
    return 200, store[key]


def already_exists(resource_path: str):
    return error(409, f"The resource '{resource_path}' already exists", reason="alreadyExists")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGCE

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        body = json.loads(raw) if raw and raw.lstrip()[:1] == b"{" else None
        auth = self.headers.get("Authorization", "")
        with self.fake.lock:
            self.fake.requests.append(Recorded(self.command, path, body, auth))
            if path == "/token":
                code, payload = self.fake.token(raw.decode())
            elif not self.fake.authorised(auth):
                code, payload = error(
                    401,
                    "Request is missing required authentication credential.",
                    reason="required",
                    status="UNAUTHENTICATED",
                )
            else:
                code, payload = self.fake.handle(self.command, path, body, query)
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, *args) -> None:  # quiet
        pass


def serve(fake: FakeGCE | None = None) -> tuple[FakeGCE, ThreadingHTTPServer]:
    """Start the fake on a free loopback port; returns the state and the server to shut down."""
    fake = fake or FakeGCE()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server
