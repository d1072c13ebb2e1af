#!/usr/bin/env bash
# Set up .venv with everything the pipeline uses and run `rapgpt quickstart` on the bundled sample corpus:
# prepare, pretrain, fine-tune, generate, evaluate, then serve the models in the browser. Arguments go to
# `rapgpt quickstart` (see `--help`), e.g. --train-minutes 10 or --no-serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh serve,eval
exec .venv/bin/rapgpt quickstart "$@"
