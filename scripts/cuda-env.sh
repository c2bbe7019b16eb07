#!/usr/bin/env bash
# cuda-env.sh: sourced by gpu-check.sh. It finds JAX's CUDA PJRT plugin (pip package
# jax-cuda13-pjrt, file xla_cuda_plugin.so) through python3, links it as pjrt_c_api_cuda_plugin.so into a temporary
# folder put on PJRT_PLUGIN_LIBRARY_PATH, puts the pip NVIDIA libraries on LD_LIBRARY_PATH and points XLA at the
# pip CUDA toolkit (ptxas, libdevice). It expects the functions say and fail, and defines them if missing.
declare -F say >/dev/null || say() { echo "cuda-env: $*"; }
declare -F fail >/dev/null || fail() { echo "cuda-env: ERROR: $*" >&2; exit 1; }

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
# Removed on exit, unless the caller has an EXIT trap of its own (which must remove $pjrt_dir): never replace it.
[[ -n "$(trap -p EXIT)" ]] || trap 'rm -rf "$pjrt_dir"' EXIT
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
# XLA needs ptxas and libdevice: point it at the folder that actually holds nvvm/libdevice, unless XLA_FLAGS
# already does: pip's CUDA toolkit first (its layout has changed between releases: nvidia/cuda_nvcc, nvidia/cu13),
# else a system toolkit ($CUDA_HOME, $CUDA_PATH, the one holding the nvcc on PATH, /usr/local/cuda), as on an image
# that has nvcc but not pip's nvidia-cuda-nvcc.
if [[ "${XLA_FLAGS:-}" != *--xla_gpu_cuda_data_dir* ]]; then
  cuda_data=""
  libdevice="$(find "$site/nvidia" -maxdepth 4 -type d -path '*nvvm/libdevice' 2>/dev/null | sort | head -n 1)"
  if [[ -n "$libdevice" ]]; then
    cuda_data="$(dirname "$(dirname "$libdevice")")"
  else
    nvcc_root=""
    command -v nvcc >/dev/null 2>&1 && nvcc_root="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$nvcc_root" /usr/local/cuda; do
      if [[ -n "$c" && -d "$c/nvvm/libdevice" ]]; then
        cuda_data="$c"
        break
      fi
    done
  fi
  if [[ -n "$cuda_data" ]]; then
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_cuda_data_dir=$cuda_data"
    say "XLA_FLAGS=$XLA_FLAGS"
  else
    say "warning: no nvvm/libdevice under $site/nvidia, \$CUDA_HOME, \$CUDA_PATH, nvcc's folder or /usr/local/cuda: XLA may fail to compile GPU kernels"
  fi
fi
# go-xla looks for an nvidia/ folder beside the (linked) plugin and warns at length when it is elsewhere, as here.
export GOPJRT_CUDA_CHECKS=0
# Libraries the plugin needs that the loader cannot find (each one would make it fail to load).
if command -v ldd >/dev/null 2>&1; then
  missing="$(ldd "$plugin" 2>&1 | grep 'not found' || true)"
  if [[ -n "$missing" ]]; then
    say "the plugin's libraries not found by the loader:"
    say "$missing"
  else
    say "ldd: every library of the plugin is found"
  fi
fi
