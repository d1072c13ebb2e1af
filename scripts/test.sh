#!/usr/bin/env bash
# Set up .venv with the test dependencies and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh dev
# llama.cpp, the reference of the GGUF export tests: built once into a wheel cache (see the script).
scripts/install-llama-cpp.sh
# The browser test drives Debian's Chromium (never a downloaded one): install it when missing and we are root.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || echo "could not install chromium: the browser test will be skipped"
fi
# The front end's own unit tests, when Node is here.
if command -v npm >/dev/null; then
  # `npm install` rather than `npm ci`: npm 11 refuses this lockfile in `ci` for lacking other platforms' optional
  # packages, while `install` keeps to the locked versions and leaves the lockfile as it is.
  (cd web && npm install --silent --no-audit --no-fund && npm test --silent)
fi
exec .venv/bin/python -m pytest "$@"
