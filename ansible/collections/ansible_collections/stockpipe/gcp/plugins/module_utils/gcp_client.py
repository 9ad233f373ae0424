# Shared plumbing of the stockpipe.gcp modules: options, credentials, clients, waiting.
from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import re
import sys
import traceback
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback, missing_required_lib

COMPUTE_PACKAGE = "google.cloud.compute_v1"


def _compute_package():
    """google.cloud.compute_v1 without running its ``__init__``, which imports the client of
    every Compute service (most of each module run's time); a module here uses one service.

    The package is registered unexecuted and a name is resolved on first use: ``XxxClient``
    from its service's subpackage (``services/xxx``), anything else from the message types.
    """
    if COMPUTE_PACKAGE in sys.modules:
        return sys.modules[COMPUTE_PACKAGE]
    spec = importlib.util.find_spec(COMPUTE_PACKAGE)
    if spec is None:
        raise ImportError(f"No module named {COMPUTE_PACKAGE!r}")
    package = importlib.util.module_from_spec(spec)

    def resolve(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.endswith("Client"):
            service = re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Client")).lower()
            source = importlib.import_module(f"{COMPUTE_PACKAGE}.services.{service}")
        else:
            source = importlib.import_module(f"{COMPUTE_PACKAGE}.types")
        value = getattr(source, name)
        setattr(package, name, value)
        return value

    package.__getattr__ = resolve  # PEP 562: called only for names not yet resolved
    sys.modules[COMPUTE_PACKAGE] = package
    return package


GOOGLE_IMPORT_ERROR = None
try:
    import google.auth
    from google.api_core import exceptions as gexc
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    compute_v1 = _compute_package()
except ImportError:  # pragma: no cover - reported by require_libraries()
    GOOGLE_IMPORT_ERROR = traceback.format_exc()

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_IAM_ENDPOINT = "https://iam.googleapis.com"
OPERATION_TIMEOUT_SECONDS = 300

COMMON_ARGUMENT_SPEC = dict(
    project=dict(type="str", required=True, fallback=(env_fallback, ["GCP_PROJECT"])),
    credentials_file=dict(type="path", fallback=(env_fallback, ["GCP_SERVICE_ACCOUNT_FILE"])),
    api_endpoint=dict(type="str", fallback=(env_fallback, ["GCP_COMPUTE_ENDPOINT"])),
    iam_endpoint=dict(type="str", fallback=(env_fallback, ["GCP_IAM_ENDPOINT"])),
    state=dict(type="str", default="present", choices=["present", "absent"]),
)


def argument_spec(**specific):
    spec = dict(COMMON_ARGUMENT_SPEC)
    spec.update(specific)
    return spec


def require_libraries(module):
    if GOOGLE_IMPORT_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("google-cloud-compute"), exception=GOOGLE_IMPORT_ERROR
        )


def credentials(module):
    path = module.params.get("credentials_file")
    try:
        if path:
            return service_account.Credentials.from_service_account_file(
                path, scopes=[CLOUD_PLATFORM_SCOPE]
            )
        creds, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        return creds
    except (OSError, ValueError, google.auth.exceptions.DefaultCredentialsError) as exc:
        module.fail_json(
            msg="no usable Google credentials: set credentials_file (GCP_SERVICE_ACCOUNT_FILE) "
            f"or Application Default Credentials ({exc})"
        )


def checked_endpoint(module, url):
    """``url``, unless it would carry the operator's Google token in clear text: plain http
    is for a local stand-in on a loopback address only."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and parts.hostname is not None:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    module.fail_json(
        msg=f"refusing API endpoint {url}: requests carry your Google credentials, so an "
        "endpoint must be https (or http on a loopback address, for a local stand-in); "
        "check GCP_COMPUTE_ENDPOINT / GCP_IAM_ENDPOINT"
    )


def compute_client(module, client_class):
    """A google-cloud-compute client on the REST transport, honouring api_endpoint."""
    options = None
    if module.params.get("api_endpoint"):
        options = {"api_endpoint": checked_endpoint(module, module.params["api_endpoint"])}
    return client_class(credentials=credentials(module), transport="rest", client_options=options)


def iam_session(module):
    """An authorised HTTP session and the base URL of the IAM API."""
    base = checked_endpoint(
        module, (module.params.get("iam_endpoint") or DEFAULT_IAM_ENDPOINT).rstrip("/")
    )
    return AuthorizedSession(credentials(module)), base


def wait_for(module, operation, what):
    """Block until a Compute operation finishes; fail the task with the API's error."""
    try:
        operation.result(timeout=OPERATION_TIMEOUT_SECONDS)
    except gexc.GoogleAPICallError as exc:
        module.fail_json(msg=f"{what} failed: {exc}")
    if getattr(operation, "error_code", None):
        module.fail_json(msg=f"{what} failed: {operation.error_message}")


def exit_absent(module, current, delete, **empty):
    """state=absent: call ``delete()`` when the resource exists (not in check mode); exit."""
    if current is None:
        module.exit_json(changed=False, **empty)
    if not module.check_mode:
        delete()
    module.exit_json(changed=True, **empty)


def get_or_none(call, **kwargs):
    try:
        return call(**kwargs)
    except gexc.NotFound:
        return None


def label_filter(labels):
    """The Compute API's list filter selecting resources that carry every label given."""
    return " AND ".join(f'labels.{key} = "{value}"' for key, value in sorted(labels.items()))


def to_dict(message):
    return type(message).to_dict(message, preserving_proto_field_name=False)


def short_name(url_or_name):
    """'.../zones/us-east1-b/machineTypes/e2-micro' -> 'e2-micro'."""
    return (url_or_name or "").rstrip("/").rsplit("/", 1)[-1]


def api_error(module, what, exc):
    module.fail_json(msg=f"{what}: {exc}")


__all__ = [
    "GOOGLE_IMPORT_ERROR",
    "api_error",
    "argument_spec",
    "checked_endpoint",
    "compute_client",
    "compute_v1",
    "exit_absent",
    "get_or_none",
    "gexc",
    "iam_session",
    "label_filter",
    "require_libraries",
    "short_name",
    "to_dict",
    "wait_for",
]
