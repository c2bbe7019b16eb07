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

# 2. JAX's CUDA PJRT plugin, via python3, else by searching site-packages.
command -v python3 >/dev/null 2>&1 || fail "python3 not found: it is needed to find JAX's CUDA PJRT plugin (pip install jax-cuda13-pjrt)"
plugin=""
for mod in xla_cuda13 xla_cuda12; do
  dir="$(python3 -c "import jax_plugins.${mod} as m, os; print(os.path.dirname(m.__file__))" 2>/dev/null || true)"
  if [[ -n "$dir" && -f "$dir/xla_cuda_plugin.so" ]]; then
    plugin="$dir/xla_cuda_plugin.so"
    break
  fi
done
if [[ -z "$plugin" ]]; then
  mapfile -t sites < <(python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null | sort -u)
  for s in "${sites[@]}"; do
    [[ -d "$s" ]] || continue
    plugin="$(find "$s" -maxdepth 4 -name xla_cuda_plugin.so -path '*jax_plugins*' 2>/dev/null | sort | tail -n 1)"
    [[ -n "$plugin" ]] && break
  done
fi
[[ -n "$plugin" && -f "$plugin" ]] || fail "JAX's CUDA PJRT plugin (xla_cuda_plugin.so) not found in python3's site-packages; install it with: pip install jax-cuda13-pjrt jax-cuda13-plugin (or run \`nowt setup\`)"
plugin="$(readlink -f "$plugin")"
say "CUDA PJRT plugin: $plugin"

# 3. A plugin folder with the name go-xla expects.
pjrt_dir="$(mktemp -d "${TMPDIR:-/tmp}/nowt-pjrt.XXXXXX")"
trap 'rm -rf "$pjrt_dir"' EXIT
ln -s "$plugin" "$pjrt_dir/pjrt_c_api_cuda_plugin.so"
export PJRT_PLUGIN_LIBRARY_PATH="$pjrt_dir"
say "PJRT_PLUGIN_LIBRARY_PATH=$PJRT_PLUGIN_LIBRARY_PATH"

# 4. The pip NVIDIA libraries: site-packages/nvidia/*/lib (site-packages is two levels above the plugin).
site="$(dirname "$(dirname "$(dirname "$plugin")")")"
nv_libs=""
for d in "$site"/nvidia/*/lib; do
  [[ -d "$d" ]] && nv_libs="${nv_libs:+$nv_libs:}$d"
done
if [[ -n "$nv_libs" ]]; then
  export LD_LIBRARY_PATH="$nv_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
else
  say "warning: no NVIDIA pip libraries in $site/nvidia/*/lib; relying on the system's CUDA libraries"
fi
# XLA needs ptxas and libdevice: point it at the pip CUDA toolkit folder unless XLA_FLAGS already does.
if [[ "${XLA_FLAGS:-}" != *--xla_gpu_cuda_data_dir* ]]; then
  for d in "$site/nvidia/cu13" "$site/nvidia/cuda_nvcc"; do
    if [[ -d "$d" ]]; then
      export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_cuda_data_dir=$d"
      say "XLA_FLAGS=$XLA_FLAGS"
      break
    fi
  done
fi

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
