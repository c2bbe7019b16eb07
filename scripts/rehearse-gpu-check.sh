#!/usr/bin/env bash
# rehearse-gpu-check.sh: runs scripts/gpu-check.sh here, on the CPU, as it will run on a GPU machine, and checks
# what it leaves behind. A GPU machine is lent for minutes, once: its script must work the first time.
#
# The rehearsal stands in for the GPU machine's Python: a site-packages folder (on PYTHONPATH) holding
# jax_plugins/xla_cuda13/xla_cuda_plugin.so, which is a copy of XLA's CPU PJRT plugin (a PJRT plugin is loaded
# by name: go-xla loads the CPU plugin as "cuda" and runs every stage on it), and pip's nvidia/*/lib folders.
# Every stage then runs for real, with the sizes shrunk (ResNet-18 at 64² and batch 4 for the benchmarks, the
# CIFAR-10 comparison CIFAR_STEPS steps a rule), inside a budget that cuts the comparison short, so that the
# report-from-logs and packing path after a stopped stage is the one exercised. Scenarios:
#   1. cuda-env.sh alone on a full pip layout (nvidia libraries and the CUDA toolkit's nvvm/libdevice): the
#      variables it exports; and on one without pip's toolkit, with a system one holding the nvcc on PATH.
#   2. no plugin in Python: gpu-check.sh stops at once with an error naming the pip package, and says its summary.
#   3. the whole script (plugin check, benchmarks, PyTorch and JAX peers on the CPU, CIFAR-10 comparison, packing, numerical tests as the budget
#      allows), then its log, $OUT/cifar-gpu.tar.gz, and that no temporary folder is left behind.
#   3b. scripts/collect-gpu.sh on what scenario 3 left in $OUT: the comparison, logs and table filed.
#   4. the numerical tests' stage, which scenario 3's budget does not reach: no benchmarks, no CIFAR archive,
#      so that the script goes from the plugin check to the tests (about 100 s): they pass, TF32 switched off.
# Needs the CPU plugin (`nowt setup`) and .gpu/ (`make gpu-build`, run first unless REUSE_GPU_BUILD=1). Takes
# about BUDGET seconds (default 300) for scenario 3 and 100 s for scenario 4, on an idle machine (beside another job, raise BENCH_LIMIT: each
# benchmark stage compiles ResNet-18 twice in 90 s). Exit status 0 when every check holds; each failed check is
# printed. Make target: `make gpu-rehearsal`.
set -uo pipefail
cd "$(dirname "$0")/.."
cpu_plugin=${PJRT_CPU_PLUGIN:-$HOME/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so}
[[ -f "$cpu_plugin" ]] || { echo "rehearse: no CPU PJRT plugin at $cpu_plugin: run \`bin/nowt setup\` (or set PJRT_CPU_PLUGIN)" >&2; exit 2; }
if [[ "${REUSE_GPU_BUILD:-}" != 1 || ! -d .gpu ]]; then
	make gpu-build || { echo "rehearse: make gpu-build failed" >&2; exit 2; }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/nowt-rehearse.XXXXXX")"
trap 'rm -rf "$work"' EXIT
failures=0
check() { # check DESCRIPTION COMMAND...: runs the command quietly; reports the description as held or failed.
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "rehearse: ok     $what"
	else
		echo "rehearse: FAILED $what"
		failures=$((failures + 1))
	fi
}

# A pip-like site-packages folder. The plugin is copied (not linked): cuda-env.sh resolves links to find
# site-packages two levels above the plugin's real file.
site="$work/site"
mkdir -p "$site/jax_plugins/xla_cuda13" "$site/nvidia/cublas/lib" "$site/nvidia/cudnn/lib"
: >"$site/jax_plugins/__init__.py"
: >"$site/jax_plugins/xla_cuda13/__init__.py"
ln "$cpu_plugin" "$site/jax_plugins/xla_cuda13/xla_cuda_plugin.so" 2>/dev/null ||
	cp "$cpu_plugin" "$site/jax_plugins/xla_cuda13/xla_cuda_plugin.so"

# 1. cuda-env.sh on a full layout (with the CUDA toolkit's libdevice), in a subshell: what it exports.
full="$work/full-site"
mkdir -p "$full/jax_plugins/xla_cuda13" "$full/nvidia/cublas/lib" "$full/nvidia/cuda_nvcc/nvvm/libdevice"
: >"$full/jax_plugins/__init__.py"
: >"$full/jax_plugins/xla_cuda13/__init__.py"
: >"$full/jax_plugins/xla_cuda13/xla_cuda_plugin.so"
env_out="$(PYTHONPATH="$full" XLA_FLAGS= LD_LIBRARY_PATH= bash -c 'source scripts/cuda-env.sh >/dev/null 2>&1
	printf "%s\n" "PJRT=$PJRT_PLUGIN_LIBRARY_PATH" "LINK=$(readlink "$PJRT_PLUGIN_LIBRARY_PATH/pjrt_c_api_cuda_plugin.so")" \
		"LD=$LD_LIBRARY_PATH" "XLA=$XLA_FLAGS" "CHECKS=$GOPJRT_CUDA_CHECKS"
	rm -rf "$pjrt_dir"')"
check "cuda-env: the plugin linked as pjrt_c_api_cuda_plugin.so" grep -qx "LINK=$full/jax_plugins/xla_cuda13/xla_cuda_plugin.so" <<<"$env_out"
check "cuda-env: pip's NVIDIA libraries on LD_LIBRARY_PATH" grep -q "^LD=$full/nvidia/cublas/lib" <<<"$env_out"
check "cuda-env: XLA pointed at the folder holding nvvm/libdevice" grep -qx "XLA=--xla_gpu_cuda_data_dir=$full/nvidia/cuda_nvcc" <<<"$env_out"
check "cuda-env: go-xla's CUDA-folder check silenced" grep -qx "CHECKS=0" <<<"$env_out"

# 1b. No CUDA toolkit in pip's folders, a system one holding the nvcc on PATH (the GPU image has nvcc, and no
# nvidia-cuda-nvcc among its pip packages): XLA is pointed at the system toolkit.
sys_cuda="$work/cuda-13.0"
mkdir -p "$sys_cuda/bin" "$sys_cuda/nvvm/libdevice"
printf '#!/bin/sh\n' >"$sys_cuda/bin/nvcc" && chmod +x "$sys_cuda/bin/nvcc"
rm -rf "$full/nvidia/cuda_nvcc"
env_out="$(PATH="$sys_cuda/bin:$PATH" CUDA_HOME= CUDA_PATH= PYTHONPATH="$full" XLA_FLAGS= LD_LIBRARY_PATH= bash -c '
	source scripts/cuda-env.sh >/dev/null 2>&1; printf "%s\n" "XLA=$XLA_FLAGS"; rm -rf "$pjrt_dir"')"
check "cuda-env: without pip's toolkit, XLA pointed at the nvcc's toolkit" grep -qx "XLA=--xla_gpu_cuda_data_dir=$sys_cuda" <<<"$env_out"

# 2. No plugin in Python: a clear error, at once.
mkdir -p "$work/empty" "$work/tmp2"
no_plugin="$(PYTHONPATH="$work/empty" TMPDIR="$work/tmp2" OUT="$work/out2" timeout 60 scripts/gpu-check.sh 2>&1)"
rc=$?
check "no plugin: exit status 1 (was $rc)" test "$rc" = 1
check "no plugin: the error names the pip package" grep -q "pip install jax-cuda13-pjrt" <<<"$no_plugin"
check "no plugin: the summary is printed" grep -q "gpu-check: summary" <<<"$no_plugin"
check "no plugin: no temporary folder left" test -z "$(ls -A "$work/tmp2")"

# 3. The whole script. The PyTorch peer runs on the CPU, with a python that has torch (Debian's python3-torch for
# /usr/bin/python3, or PEERS_PYTHON), else its stage's failure is the one expected.
peers_python=${PEERS_PYTHON:-/usr/bin/python3}
peers_have_torch=0
"$peers_python" -c 'import torch' >/dev/null 2>&1 && peers_have_torch=1
# The JAX peer likewise, with a python that has jax (JAX_PYTHON; default: .peers-venv's, which bench-peers.sh makes).
jax_python=${JAX_PYTHON:-$PWD/.peers-venv/bin/python}
peers_have_jax=0
"$jax_python" -c 'import jax' >/dev/null 2>&1 && peers_have_jax=1
# A stand-in nvidia-smi (the machine has none): a banner, and with -l a CSV line a second until killed.
mkdir -p "$work/fakebin"
cat >"$work/fakebin/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
# rehearsal stand-in for nvidia-smi
if [[ " $* " == *" -l "* ]]; then
	echo "timestamp, utilization.gpu [%], utilization.memory [%], memory.used [MiB], power.draw [W]"
	while :; do echo "$(date '+%Y/%m/%d %H:%M:%S.000'), 0, 0, 0, 0.0"; sleep 1; done
fi
echo "NVIDIA-SMI rehearsal stand-in"
EOF
chmod +x "$work/fakebin/nvidia-smi"
mkdir -p "$work/tmp3"
out="$work/out3"
PATH="$work/fakebin:$PATH" PEERS_PYTHON="$peers_python" JAX_PYTHON="$jax_python" PEERS_DEVICE=cpu PEERS_MODELS=resnet18 CIFAR_BENCH_BATCH=8 \
CIFAR_SET="wm_batch=64" PYTHONPATH="$site" TMPDIR="$work/tmp3" OUT="$out" BUDGET="${BUDGET:-300}" BENCH_MODELS=resnet18 BENCH_IMAGE_SIZE=64 \
	BENCH_BATCH=4 BENCH_STEPS=3 BENCH_LIMIT="${BENCH_LIMIT:-90}" CIFAR_STEPS="${CIFAR_STEPS:-8}" CIFAR_LOG_EVERY=4 \
	timeout $((${BUDGET:-300} + 60)) scripts/gpu-check.sh
rc=$?
log="$out/gpu-check.log"
echo
check "whole script: exit status 0 (was $rc)" test "$rc" = 0
check "whole script: the plugin loads as xla:cuda" grep -q "\[devices\] exit status 0" "$log"
check "whole script: the ResNet-18 float32 benchmark ran" grep -q "\[bench-resnet18-float32\] exit status 0" "$log"
check "whole script: the ResNet-18 bfloat16 benchmark ran" grep -q "\[bench-resnet18-bfloat16\] exit status 0" "$log"
check "whole script: the step taken apart, batches from the host and on the device" bash -c "for s in resnet20-feed-host resnet20-feed-device resnet18-feed-host resnet18-feed-device; do grep -q \"\\[bench-\$s\\] exit status 0\" '$log' || exit 1; done"
check "whole script: nowt's optimised step packed into \$OUT/hlo-gpu.tar.gz" bash -c "tar tzf '$out/hlo-gpu.tar.gz' | grep -q '^./nowt/.*Trainer.*after_optimizations.txt'"
check "whole script: the bare ResNet-20 step timed for bp and kp" bash -c "grep -q '^resnet20,bp,8,' '$log' && grep -q '^resnet20,kp,8,' '$log'"
check "whole script: benchmark CSV rows for bp and kp" bash -c "grep -q '^resnet18,bp,' '$log' && grep -q '^resnet18,kp,' '$log'"
if ((peers_have_torch)); then
	check "whole script: the PyTorch peer ran in both precisions" bash -c "grep -q '\[peer-torch-resnet18-float32\] exit status 0' '$log' && grep -q '\[peer-torch-resnet18-bfloat16\] exit status 0' '$log'"
	check "whole script: PyTorch's CSV rows" bash -c "grep -q '^torch-.*threads,resnet18,bp,4,' '$log' && grep -q '^torch-.*-bfloat16,resnet18,bp,4,' '$log'"
else
	echo "rehearse: skipped the PyTorch peer's checks: $peers_python has no torch (apt-get install python3-torch, or set PEERS_PYTHON)"
	check "whole script: the PyTorch peer's failure fails only its stage" grep -q "\[peer-torch-resnet18-float32\] exit status 1" "$log"
fi
if ((peers_have_jax)); then
	check "whole script: the JAX peer ran on ResNet-20 and ResNet-18, both feeds" bash -c "for s in resnet20-host resnet20-device resnet18-host resnet18-device; do grep -q \"\\[peer-jax-\$s\\] exit status 0\" '$log' || exit 1; done"
	check "whole script: JAX's CSV rows, the batch from the host and on the device" bash -c "grep -q '^jax-[0-9.]*/host-batch,resnet20,bp,8,' '$log' && grep -q '^jax-[0-9.]*/host-batch,resnet18,bp,4,' '$log' && grep -q '^jax-[0-9.]*,resnet20,bp,8,' '$log'"
	check "whole script: JAX's optimised step packed beside nowt's" bash -c "tar tzf '$out/hlo-gpu.tar.gz' | grep -q '^./jax/.*jit_step.*after_optimizations.txt'"
else
	echo "rehearse: skipped the JAX peer's checks: $jax_python has no jax (bench-peers.sh installs it into .peers-venv, or set JAX_PYTHON)"
	check "whole script: the JAX peer's failure fails only its stage" grep -q "\[peer-jax-resnet20-host\] exit status" "$log"
fi
check "whole script: the CIFAR-10 stage ran" grep -q "\[cifar10\] exit status" "$log"
check "whole script: \$OUT/cifar-gpu.tar.gz written" test -s "$out/cifar-gpu.tar.gz"
check "whole script: the pack holds the table" bash -c "tar tzf '$out/cifar-gpu.tar.gz' | grep -q 'cifar10-resnet20-gpu/results.md'"
check "whole script: the pack holds bp's log and config" bash -c "tar tzf '$out/cifar-gpu.tar.gz' | grep -q 'bp/metrics.jsonl' && tar tzf '$out/cifar-gpu.tar.gz' | grep -q 'bp/config.json'"
check "whole script: the pack holds bp's wall time and provenance" bash -c "tar tzf '$out/cifar-gpu.tar.gz' | grep -q 'bp/wall_time.json' && tar tzf '$out/cifar-gpu.tar.gz' | grep -q 'bp/provenance.jsonl'"
check "whole script: the benchmarks ran in alternated rounds" grep -q -- "-rounds 3" "$log"
if [[ -f .gpu/lib/libturbojpeg.so.0 ]]; then
	check "whole script: the carried libjpeg-turbo on LD_LIBRARY_PATH" grep -q "libjpeg-turbo carried:" "$log"
	check "whole script: JPEGs decoded by libjpeg-turbo" grep -q "JPEG decoder: libjpeg-turbo" "$log"
fi
check "whole script: CIFAR_SET reached the comparison's runs" bash -c "tar xzOf '$out/cifar-gpu.tar.gz' ./cifar10-resnet20-gpu/bp/config.json | grep -q '\"settings\": \"wm_batch=64\"'"
check "whole script: the pack holds no checkpoint" bash -c "! tar tzf '$out/cifar-gpu.tar.gz' | grep -q checkpoint"
check "whole script: the summary is printed" grep -q "gpu-check: summary" "$log"
check "whole script: stopped within its budget" bash -c "s=\$(grep -o 'summary ([0-9]* s)' '$log' | grep -o '[0-9]*'); ((s <= ${BUDGET:-300}))"
check "whole script: no temporary folder left" test -z "$(ls -A "$work/tmp3")"
check "whole script: GPU utilisation sampled into \$OUT/gpu-util.csv" bash -c "(($(wc -l <"$out/gpu-util.csv" 2>/dev/null || echo 0) > 10))"
check "whole script: the sampler stopped with the script" bash -c "! pgrep -f '$work/fakebin/[n]vidia-smi' >/dev/null"

# 3b. What came back, filed by collect-gpu.sh into a docs folder of the rehearsal's own.
collected="$(DOCS="$work/docs" scripts/collect-gpu.sh "$out" 2>&1)"
check "collect-gpu: the comparison filed with its logs and provenance" bash -c "test -s '$work/docs/results/cifar10-resnet20-gpu/bp/metrics.jsonl' && grep -q '\"commit\": \"[0-9a-f]\{40\}\"' '$work/docs/results/cifar10-resnet20-gpu/provenance.json'"
check "collect-gpu: the log and utilisation samples filed" bash -c "ls '$work/docs/perf/gpu/'*.log '$work/docs/perf/gpu/'*.csv"
check "collect-gpu: nowt's benchmark rows as a table" grep -q "^| nowt | resnet18 | 4 | bfloat16 | kp |" <<<"$collected"
check "collect-gpu: the feed stages' rows name their feed" grep -q "^| nowt | resnet20 | 8 | float32 | bp (-feed device) |" <<<"$collected"
if ((peers_have_torch)); then
	check "collect-gpu: PyTorch's rows in the table" grep -q "^| PyTorch torch-.* | resnet18 | 4 | bfloat16 | bp |" <<<"$collected"
fi
if ((peers_have_jax)); then
	check "collect-gpu: JAX's rows in the table" grep -q "^| JAX jax-.* | resnet18 | 4 | float32 | bp |" <<<"$collected"
fi
check "collect-gpu: refuses to replace a filed comparison" bash -c "DOCS='$work/docs' scripts/collect-gpu.sh '$out' 2>&1 | grep -q 'exists: give another NAME'"

# 4. The numerical tests' stage alone: .gpu's binaries without the CIFAR archive, no benchmark models.
mkdir -p "$work/tmp4" "$work/gpu4"
cp .gpu/nowt.gz .gpu/feedback.test.gz .gpu/models.test.gz "$work/gpu4/"
out4="$work/out4"
PYTHONPATH="$site" TMPDIR="$work/tmp4" GPU_DIR="$work/gpu4" OUT="$out4" BUDGET=250 BENCH_MODELS= PEERS_MODELS= \
	JAX_MODELS= FEED_MODELS= CIFAR_BENCH_BATCH=0 CIFAR_RULES= timeout 320 scripts/gpu-check.sh >/dev/null 2>&1
rc=$?
log4="$out4/gpu-check.log"
check "tests stage: exit status 0 (was $rc)" test "$rc" = 0
check "tests stage: TF32 off in cuBLAS/cuDNN and XLA's Triton products" \
	grep -q "NVIDIA_TF32_OVERRIDE=0 XLA_FLAGS=.*--xla_gpu_enable_triton_gemm=false" "$log4"
check "tests stage: the feedback tests pass" grep -q "\[feedback-tests\] exit status 0" "$log4"
check "tests stage: the models tests pass" grep -q "\[models-tests\] exit status 0" "$log4"
check "tests stage: only the tests ran (the second call's settings)" bash -c "! grep -q '\[\(bench\|peer\|hlo\)' '$log4' && grep -q 'cifar10: skipped (CIFAR_RULES empty)' '$log4'"
check "tests stage: no temporary folder left" test -z "$(ls -A "$work/tmp4")"
echo
if ((failures > 0)); then
	echo "rehearse: $failures check(s) failed (gpu-check.sh's log: above)"
	exit 1
fi
echo "rehearse: every check holds"
