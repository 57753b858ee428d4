#!/usr/bin/env bash
# The GPU checks in one run of at most 8 minutes on one GPU, written to one report (bench/gpu.py says what):
#   bench/gpu.sh [REPORT]             on a machine with a CUDA GPU (default report: gpu_report.md)
#   bench/gpu.sh --dry-run [REPORT]   the same steps on the CPU at toy sizes: checks the script (the suite runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec timeout 480 "$PYTHON" bench/gpu.py "$@"
