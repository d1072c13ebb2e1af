#!/usr/bin/env bash
# Install llama-cpp-python (llama.cpp through Python: the GGUF tests' reference and the decode benchmark's peer) into
# .venv from a wheel cache, building the wheel there first when it is missing. The build compiles llama.cpp from
# source for this CPU (-march=native, no BLAS, no GPU, no multimodal library): minutes on a few cores, so keep the
# cache between CI runs. The cache is keyed by the CPU's instruction set, since a native build may not run on
# another CPU. Failure is not fatal: the tests that need llama.cpp then skip, saying why.
#   RAPGPT_WHEEL_CACHE   the cache directory (default: ~/.cache/rapgpt-wheels)
set -uo pipefail
cd "$(dirname "$0")/.."
spec="llama-cpp-python>=0.3.10"
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-12)
cache="${RAPGPT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rapgpt-wheels}/llama-cpp-python-$cpu_key"
mkdir -p "$cache"
if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python for this CPU into $cache (several minutes)..."
  start=$(date +%s)
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/python -m pip wheel --quiet --no-deps -w "$cache" "$spec" \
    || { echo "could not build llama-cpp-python: the tests that need llama.cpp will be skipped"; exit 0; }
  echo "built llama-cpp-python in $(( $(date +%s) - start )) s"
fi
wheel=$(ls -t "$cache"/llama_cpp_python-*.whl | head -1)
.venv/bin/python -m pip install --quiet "$wheel" \
  || echo "could not install $wheel: the tests that need llama.cpp will be skipped"
