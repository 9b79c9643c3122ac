#!/usr/bin/env bash
# Start the lab: a real Triton fleet, its router, traffic, collectors and the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/warden up "$@"
