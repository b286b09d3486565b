# Sourced by the run and test scripts: the environment a Lookout process needs.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ORT_DYLIB_PATH="$ROOT/.runtime/libonnxruntime.so"
export LOOKOUT_SHARED="$(cd "${LOOKOUT_SHARED:-$ROOT/../shared}" 2>/dev/null && pwd || echo "${LOOKOUT_SHARED:-$ROOT/../shared}")"
if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
