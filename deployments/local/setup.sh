#!/usr/bin/env bash
# One-time (and re-runnable) set-up of this machine for stockpipe, with no cloud account:
#   * Java 17 and Maven (the local Kafka broker's runtime and installer), Prometheus and
#     its Pushgateway, Chromium (the dashboard's browser test), from Debian packages, when
#     missing;
#   * a virtualenv in .venv with the project and all its extras (editable), installed by uv
#     from uv.lock;
#   * Apache Kafka's jars from Maven Central into ~/.cache/stockpipe/kafka;
#   * the GX Data Docs pages' scripts, styles and fonts from the npm registry into
#     ~/.cache/stockpipe/data-docs-assets (checked against pinned sha512 integrities).
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
say() { printf '\n==> %s\n' "$*"; }

apt_install() {
  local packages=("$@")
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "missing ${packages[*]}: install them (needs root)" >&2; exit 1
  fi
  say "installing ${packages[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
# Prometheus (promtool) and the Pushgateway: the metrics tests run the real ones.
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
# systemd-analyze: the Ansible tests score the rendered units' sandboxes offline.
command -v systemd-analyze >/dev/null || missing+=(systemd)
# A headless browser for the dashboard's browser test.
command -v chromium >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "stockpipe needs Python >= 3.11 (found $("$PYTHON" --version))" >&2; exit 1
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ uv.lock -nt "$stamp" ]; then
  say "creating .venv and installing stockpipe with every extra from uv.lock (about a minute the first time)"
  "$PYTHON" -m venv .venv
  # uv resolves and installs the dependency set in ~35 s where pip takes ~4 minutes of CPU;
  # pinned, as in the prefect_worker role (prefect_worker_uv_version).
  .venv/bin/python -m pip install -q uv==0.13.9
  # uv.lock's versions, checked against its hashes; --locked stops when pyproject.toml
  # changed without `uv lock`. Every extra: the embedded warehouse, the control machine's
  # Ansible, the tests' tools. --inexact keeps uv itself (pip put it there) and whatever a
  # developer added. --compile-bytecode: every test and flow run starts Python processes
  # (the CLI, Prefect's server, dbt, Ansible); without .pyc files each one compiles its
  # imports from source again when the cache cannot be written (PYTHONDONTWRITEBYTECODE,
  # read-only site-packages).
  UV_PROJECT_ENVIRONMENT=.venv .venv/bin/uv sync -q --locked --inexact --all-extras \
    --compile-bytecode --python .venv/bin/python
  touch "$stamp"
fi
# The project's own modules are installed editable, so compiled here, each run (unchanged
# files are skipped; an edited one is compiled from source until the next set-up).
.venv/bin/python -m compileall -q stockpipe flows deployments >/dev/null

say "installing the local Kafka broker's jars (cached after the first time)"
.venv/bin/stockpipe kafka install
say "installing the Data Docs pages' scripts and styles from the npm registry (cached; the pages then need no CDN)"
.venv/bin/python -m stockpipe.validation.data_docs
say "set-up done"
