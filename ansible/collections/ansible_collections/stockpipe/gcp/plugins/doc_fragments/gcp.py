# The options every stockpipe.gcp module takes (see module_utils/gcp_client.py).
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  project: {description: GCP project id (GCP_PROJECT)., type: str, required: true}
  credentials_file:
    description:
      - Service-account key file (GCP_SERVICE_ACCOUNT_FILE).
      - Without it, Application Default Credentials.
    type: path
  api_endpoint: {description: Compute API endpoint override (GCP_COMPUTE_ENDPOINT)., type: str}
  iam_endpoint: {description: IAM API endpoint override (GCP_IAM_ENDPOINT)., type: str}
  state: {description: present or absent., type: str, default: present, choices: [present, absent]}
requirements: [google-cloud-compute, google-auth]
"""
