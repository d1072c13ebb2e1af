#!/usr/bin/env bash
# Set up .venv with the test dependencies and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh dev
exec .venv/bin/python -m pytest "$@"
