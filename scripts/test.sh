#!/usr/bin/env bash
# Run Warden's whole test suite, real processes included (Triton, Prometheus, Alertmanager).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
