#!/usr/bin/env bash
# gpu-check.sh: nowt's GPU check, on a machine whose Python has JAX's CUDA PJRT plugin (pip package
# jax-cuda13-pjrt, file xla_cuda_plugin.so) and the NVIDIA pip packages, with binaries built elsewhere
# (`make gpu-build` writes them to bin/: nowt and the feedback and models test binaries, ~60 MB stripped).
#
# Stages, each run whatever the previous one gave (once the plugin loads), each with its own time limit (9.5
# minutes in all at most, so that one call of a 10-minute device machine holds it), and a summary at the end:
#   1. nvidia-smi; the plugin exposed as pjrt_c_api_cuda_plugin.so on PJRT_PLUGIN_LIBRARY_PATH (cuda-env.sh)
#   2. nowt devices -backend xla:cuda: the plugin loads, the GPU is listed
#   3. nowt bench: synthetic ImageNet batches, ResNet-18 and ResNet-50, rules bp and kp: images/s, KP/BP ratio
#      (one stage per model; rows print as they are measured, so a stage stopped at its limit keeps its rows)
#   4. the numerical tests on the GPU (NOWT_TEST_BACKEND=xla:cuda; TF32 off, so float32 matmuls stay float32):
#      every rule's layer gradients against the plain-Go reference, patches vs native convolution through a
#      whole ResNet-18, finite differences, a small ResNet fitted under every rule
#   5. a short training run (ResNet-18, weight mirror, synthetic 64×64 images): trainer, mirror steps, alignment,
#      evaluation and checkpoints on the GPU
# Output goes to stdout and, if $OUT is set, to $OUT/gpu-check.log.
#
# Usage: scripts/gpu-check.sh   (BIN overrides the folder of the binaries, relative to the repository root)
# From a development machine with the device tool: make gpu-build, then run "OUT=$OUT scripts/gpu-check.sh" there
# with bin carried, a timeout of 580 s, and give the machine back.
set -uo pipefail
cd "$(dirname "$0")/.."

log="/dev/null"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  log="$OUT/gpu-check.log"
  : >"$log"
fi
say() { echo "gpu-check: $*" | tee -a "$log"; }
fail() { echo "gpu-check: ERROR: $*" | tee -a "$log" >&2; exit 1; }
bin="${BIN:-bin}"
for f in nowt feedback.test models.test; do
  [[ -x "$bin/$f" ]] || fail "$bin/$f not found or not executable: build the binaries first (make gpu-build)"
done
bin="$(cd "$bin" && pwd)"

# 1. The GPU, the plugin, its libraries and XLA flags.
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi 2>&1 | tee -a "$log" || say "nvidia-smi failed (exit $?)"
else
  say "nvidia-smi not found"
fi
source scripts/cuda-env.sh

summary=()
# stage NAME SECONDS COMMAND...: runs the command under a time limit, logs its output and exit status.
stage() {
  local name=$1 limit=$2
  shift 2
  say "[$name] running: $*"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  [[ $rc == 124 || $rc == 137 ]] && say "[$name] stopped after its limit of ${limit}s"
  say "[$name] exit status $rc ($((SECONDS - start)) s)"
  summary+=("$name: exit $rc, $((SECONDS - start)) s")
}

# 2. The plugin loads and lists the GPU; without it nothing else can run.
stage devices 60 "$bin/nowt" devices -backend xla:cuda
if [[ ${summary[-1]} != "devices: exit 0,"* ]]; then
  say "the CUDA plugin did not load (its error is above): the other stages skipped"
  exit 1
fi

# 3. Training throughput, first: it is what the issue asks for (TF32 as the plugin's default: the speed users get).
stage bench-resnet18 120 "$bin/nowt" bench -backend xla:cuda -model resnet18 -rule bp,kp -dataset synthetic \
  -image-size 224 -batch 128 -steps 30
stage bench-resnet50 150 "$bin/nowt" bench -backend xla:cuda -model resnet50 -rule bp,kp -dataset synthetic \
  -image-size 224 -batch 128 -steps 30

# 4. The numerical tests on the GPU. Test binaries run in their package folder, as `go test` would.
export NOWT_TEST_BACKEND=xla:cuda NVIDIA_TF32_OVERRIDE=0
stage feedback-tests 90 bash -c "set -o pipefail; cd feedback && $bin/feedback.test -test.timeout 85s -test.v -test.run 'TestLayerGradients|TestBackpropMatchesAutodiff|TestConvBackpropFiniteDifferences|TestPatchMatrix|TestKolenPollackDecay|TestWeightMirrorAligns|TestAlignmentGraph' | grep -v '^=== RUN\|^    --- PASS'"
stage models-tests 90 bash -c "set -o pipefail; cd models && $bin/models.test -test.timeout 85s -test.v -test.run 'TestConvImplementationsAgree|TestBackpropFiniteDifferences|TestMaxPool2D|TestRulesFitSmallResNet' | grep -v '^=== RUN\|^    --- PASS'"
unset NOWT_TEST_BACKEND NVIDIA_TF32_OVERRIDE

# 5. A short training run through the whole trainer.
run_dir="$(mktemp -d "${TMPDIR:-/tmp}/nowt-gpu-run.XXXXXX")"
stage train 60 "$bin/nowt" train -backend xla:cuda -model resnet18 -rule wm -dataset synthetic \
  -data examples=1280,size=64,channels=3,classes=10 -batch 64 -steps 20 -log-every 10 -eval-every 20 \
  -progress=false -out "$run_dir"
rm -rf "$run_dir"

say "summary:"
for s in "${summary[@]}"; do say "  $s"; done
