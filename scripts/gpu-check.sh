#!/usr/bin/env bash
# gpu-check.sh: run nowt's GPU benchmark on a machine whose Python has JAX's CUDA PJRT plugin
# (pip package jax-cuda13-pjrt, file xla_cuda_plugin.so) and the NVIDIA pip packages, without `nowt setup`.
#
# It links the plugin as pjrt_c_api_cuda_plugin.so into a temporary folder put on PJRT_PLUGIN_LIBRARY_PATH
# (the name go-xla looks for), puts the pip NVIDIA libraries (site-packages/nvidia/*/lib) on LD_LIBRARY_PATH,
# points XLA at the pip CUDA toolkit folder (ptxas, libdevice) and runs the prebuilt bin/nowt bench with
# -backend xla:cuda. Output goes to stdout and, if $OUT is set, to $OUT/gpu-check.log.
#
# Usage: scripts/gpu-check.sh   (from the repository root; NOWT_BIN overrides bin/nowt)
set -euo pipefail

log="/dev/null"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  log="$OUT/gpu-check.log"
  : >"$log"
fi
say() { echo "gpu-check: $*" | tee -a "$log"; }
fail() { echo "gpu-check: ERROR: $*" | tee -a "$log" >&2; exit 1; }

# 1. The GPU.
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi 2>&1 | tee -a "$log" || say "nvidia-smi failed (exit $?)"
else
  say "nvidia-smi not found"
fi

# 2-4. The plugin, its libraries and XLA flags.
source "$(dirname "$0")/cuda-env.sh"

# 5. The benchmark.
nowt="${NOWT_BIN:-bin/nowt}"
[[ -x "$nowt" ]] || fail "$nowt not found or not executable: build it first (go build -o bin/nowt ./cmd/nowt)"
cmd=("$nowt" bench -backend xla:cuda -model resnet18,resnet50 -rule bp,kp -dataset synthetic -image-size 224 -batch 128 -steps 30)
say "running: ${cmd[*]}"
set +e
"${cmd[@]}" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
set -e
say "nowt bench exited with status $rc"
exit "$rc"
