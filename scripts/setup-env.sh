#!/usr/bin/env bash
# Create (or reuse) .venv in the project root and install rapgpt into it with the given extras.
# PyTorch's CPU build is installed first and pinned, so that no dependency pulls a multi-GB CUDA build;
# on a GPU machine, install the torch build you want into .venv before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
