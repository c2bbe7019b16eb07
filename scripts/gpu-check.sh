#!/usr/bin/env bash
# gpu-check.sh: nowt's one GPU script, for a machine with an NVIDIA GPU whose Python has JAX's CUDA PJRT plugin
# (pip jax-cuda13-pjrt, file xla_cuda_plugin.so) and no Go. Build here with `make gpu-build` (.gpu/: gzipped
# nowt and test binaries, the CIFAR-10 JPEG archive; ~40 MB), carry .gpu, run this script there, give the
# machine back. Every stage has its own time limit and the whole script stops itself before BUDGET seconds
# (default 540, inside a 600 s device call):
#   0. the binaries unpacked; libjpeg-turbo, where gpu-build carried it in .gpu/lib, put on LD_LIBRARY_PATH
#   1. nvidia-smi (and its utilisation samples, every second, into $OUT/gpu-util.csv); the plugin found and
#      exposed (cuda-env.sh: missing libraries listed with ldd, the CUDA data folder that holds nvvm/libdevice,
#      go-xla's CUDA-folder check silenced)
#   2. nowt devices -backend xla:cuda, retried with the plugin's absolute path if the linked name fails; without a
#      plugin that loads, the rest is skipped
#   3. nowt bench: synthetic ImageNet batches, ResNet-18 and ResNet-50, rules bp and kp, float32 and bfloat16,
#      BENCH_ROUNDS alternated rounds: images/s, KP/BP ratio (median of the rounds, and their range)
#   3a. nowt bench of ResNet-20 at the CIFAR stage's batch (CIFAR_BENCH_BATCH, 256; 0: skipped), the bare step
#      to set against the CIFAR training loop's rate
#   3b. PyTorch (the machine's python3) on the same models, batch and precisions: step time and images/s
#   3a'. nowt bench -feed host and -feed device (FEED_MODELS, "resnet20 resnet18"; BP, float32): the step without
#      the input pipeline, and without the transfer
#   3c. JAX (the same python3, its CUDA plugin: nowt's compiler) on ResNet-20 and ResNet-18 in float32, the batch
#      from the host and kept on the device
#   3d. XLA's optimised programs of nowt's and JAX's ResNet-20 step (HLO_DUMP, 1), into $OUT/hlo-gpu.tar.gz
#   4. the CIFAR-10 comparison (ResNet-20, CIFAR_RULES in order, default bp, kp, wm, ss, fa, CIFAR_EPOCHS epochs
#      each, seed CIFAR_SEED, CIFAR_SET's -set settings), runs written locally; its table, plots and each rule's config.json, metrics.jsonl,
#      wall_time.json and provenance.jsonl packed into one file, $OUT/cifar-gpu.tar.gz, whatever finished before
#      the budget ran out
#   5. if time is left and RUN_TESTS is not 0: the numerical tests on the GPU (TF32 off)
# Output: stdout and $OUT/gpu-check.log (when $OUT is set).
# Sizes (defaults are the GPU run's; scripts/rehearse-gpu-check.sh shrinks them to rehearse the script on a CPU):
# BENCH_MODELS ("resnet18 resnet50"), BENCH_IMAGE_SIZE (224), BENCH_BATCH (128), BENCH_STEPS (20 a round),
# BENCH_ROUNDS (3), BENCH_LIMIT (75 s a benchmark stage; ResNet-50's BENCH_LIMIT_RESNET50, 120 s), CIFAR_EPOCHS
# (10), CIFAR_STEPS (0: epochs), CIFAR_SEED (1), CIFAR_RULES (bp,kp,wm,ss,fa), CIFAR_SET (none; e.g.
# wm_batch=1024), CIFAR_LOG_EVERY (49), RUN_TESTS (1); PEERS_MODELS (BENCH_MODELS; empty: none),
# PEERS_PYTHON (python3), PEERS_DEVICE (cuda), PEERS_LIMIT (40 s a stage); JAX_MODELS ("resnet20 resnet18"; empty:
# none), JAX_PYTHON (PEERS_PYTHON), PEERS_LIMIT_JAX (60 s a stage).
# On the first GPU run (2026-12-04, one H200, commit 5a9dd2a) every stage ran in 432 s; ResNet-50's bfloat16 stage
# stopped at the 75 s it then had, after BP's row (docs/perf-gpu.md). On the second (commit 10fe84f, with PyTorch
# and JAX) the stages before the CIFAR one took 280 s and cut it in its last rule: hence the two calls below.
#
# Device tool: make gpu-build here, then run(command="OUT=$OUT scripts/gpu-check.sh", carry=[".gpu"],
# timeout_s=590) and give_back; then scripts/collect-gpu.sh FILES_AT [NAME] files what came back into docs/.
# Every stage no longer fits one call (the second run, 2026-12-04, cut the CIFAR stage in its last rule): two
# calls of one lease do, the machine warm between them: first OUT=$OUT/bench CIFAR_RULES= RUN_TESTS=0
# scripts/gpu-check.sh (stages 1-3d), then OUT=$OUT/cifar BENCH_MODELS= PEERS_MODELS= JAX_MODELS=
# FEED_MODELS= CIFAR_BENCH_BATCH=0 scripts/gpu-check.sh (the CIFAR comparison and the tests).
# The working tree travels too (64 MiB with .gpu's ~41 MB): docs/results is larger than what is left, so keep it
# out of the index for the call (git rm -r -q --cached docs/results and /docs/results/ in .git/info/exclude) and
# restore it after (git reset -q docs/results).
set -uo pipefail
cd "$(dirname "$0")/.."
start_time=$SECONDS
BUDGET=${BUDGET:-540}
GPU_DIR=${GPU_DIR:-.gpu}
CIFAR_EPOCHS=${CIFAR_EPOCHS:-10}
CIFAR_STEPS=${CIFAR_STEPS:-0}
CIFAR_LOG_EVERY=${CIFAR_LOG_EVERY:-49}
CIFAR_SEED=${CIFAR_SEED:-1}
CIFAR_RULES=${CIFAR_RULES-bp,kp,wm,ss,fa}
CIFAR_SET=${CIFAR_SET:-}
RUN_TESTS=${RUN_TESTS:-1}
BENCH_MODELS=${BENCH_MODELS-resnet18 resnet50}
BENCH_IMAGE_SIZE=${BENCH_IMAGE_SIZE:-224}
BENCH_BATCH=${BENCH_BATCH:-128}
BENCH_STEPS=${BENCH_STEPS:-20}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_LIMIT=${BENCH_LIMIT:-75}
BENCH_LIMIT_RESNET50=${BENCH_LIMIT_RESNET50:-120}
CIFAR_BENCH_BATCH=${CIFAR_BENCH_BATCH:-256}
FEED_MODELS=${FEED_MODELS-resnet20 resnet18}
HLO_DUMP=${HLO_DUMP:-1}
PEERS_MODELS=${PEERS_MODELS-$BENCH_MODELS}
PEERS_PYTHON=${PEERS_PYTHON:-python3}
PEERS_DEVICE=${PEERS_DEVICE:-cuda}
PEERS_LIMIT=${PEERS_LIMIT:-40}
JAX_MODELS=${JAX_MODELS-resnet20 resnet18}
PEERS_LIMIT_JAX=${PEERS_LIMIT_JAX:-60}
JAX_PYTHON=${JAX_PYTHON:-$PEERS_PYTHON}

log=/dev/null
if [[ -n "${OUT:-}" ]]; then
	mkdir -p "$OUT"
	log="$OUT/gpu-check.log"
	: >"$log"
fi
say() { echo "gpu-check: $*" | tee -a "$log"; }
fail() { echo "gpu-check: ERROR: $*" | tee -a "$log" >&2; exit 1; }
left() { echo $((BUDGET - (SECONDS - start_time))); }

# 0. The binaries, unpacked into a temporary folder.
[[ -d "$GPU_DIR" ]] || fail "$GPU_DIR not found: run \`make gpu-build\` on a machine with Go and carry $GPU_DIR"
bin="$(mktemp -d "${TMPDIR:-/tmp}/nowt-bin.XXXXXX")"
for f in nowt feedback.test models.test; do
	if [[ -f "$GPU_DIR/$f.gz" ]]; then
		gunzip -c "$GPU_DIR/$f.gz" >"$bin/$f" && chmod +x "$bin/$f"
	elif [[ -x "$GPU_DIR/$f" ]]; then
		cp "$GPU_DIR/$f" "$bin/$f"
	fi
done
[[ -x "$bin/nowt" ]] || fail "$GPU_DIR/nowt.gz missing: run \`make gpu-build\`"
# libjpeg-turbo carried by gpu-build (the GPU image has none): nowt loads it by name at run time.
if [[ -f "$GPU_DIR/lib/libturbojpeg.so.0" ]]; then
	export LD_LIBRARY_PATH="$(cd "$GPU_DIR/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	say "libjpeg-turbo carried: $GPU_DIR/lib/libturbojpeg.so.0 on LD_LIBRARY_PATH"
fi
"$bin/nowt" version | tee -a "$log"
"$bin/nowt" version | grep -q "xla backend: compiled in" || fail "this nowt binary has no XLA backend (build with CGO_ENABLED=1: make gpu-build)"

summary=()
# stage NAME SECONDS COMMAND...: runs the command under a time limit (cut to what the budget has left), logs its
# output and exit status.
stage() {
	local name=$1 limit=$2
	shift 2
	local remaining
	remaining=$(($(left) - 5))
	((limit > remaining)) && limit=$remaining
	if ((limit < 10)); then
		say "[$name] skipped: the budget of ${BUDGET}s is spent"
		summary+=("$name: skipped (budget)")
		return 1
	fi
	say "[$name] running (limit ${limit}s, from $(date -u +%H:%M:%S) UTC): $*"
	local t0=$SECONDS
	timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$log"
	local rc=${PIPESTATUS[0]}
	[[ $rc == 124 || $rc == 137 ]] && say "[$name] stopped at its limit of ${limit}s"
	say "[$name] exit status $rc ($((SECONDS - t0)) s)"
	summary+=("$name: exit $rc, $((SECONDS - t0)) s")
	return "$rc"
}
finish() {
	[[ -n "${monitor_pid:-}" ]] && kill "$monitor_pid" 2>/dev/null
	say "summary ($((SECONDS - start_time)) s):"
	for s in "${summary[@]}"; do say "  $s"; done
	rm -rf "$bin" "${pjrt_dir:-}"
}
trap finish EXIT

# 1. The GPU, the plugin, its libraries and XLA flags.
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi 2>&1 | tee -a "$log" || say "nvidia-smi failed"
	# The GPU's utilisation and memory once a second through every stage, to tell a step waiting on the host
	# from one the GPU is busy with: $OUT/gpu-util.csv, its time stamps to be matched with the stages' in the log.
	if [[ -n "${OUT:-}" ]]; then
		nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw \
			--format=csv,nounits -l 1 >"$OUT/gpu-util.csv" 2>/dev/null &
		monitor_pid=$!
		say "GPU utilisation sampled every second into \$OUT/gpu-util.csv"
	fi
else
	say "nvidia-smi not found"
fi
source scripts/cuda-env.sh # keeps finish as the EXIT trap; finish removes its $pjrt_dir

# 2. The plugin loads and lists the GPU; without it nothing else can run.
SPEC=xla:cuda
if ! stage devices 60 "$bin/nowt" devices -backend "$SPEC"; then
	SPEC="xla:$plugin"
	say "retrying with the plugin's absolute path"
	stage devices-abs 60 "$bin/nowt" devices -backend "$SPEC" || {
		say "no CUDA backend could be created (its error is above: a plugin that loads names its PJRT C API version): the other stages skipped"
		exit 1
	}
fi

# 3. Training throughput (TF32 as the plugin's default: the speed users get), in float32 and in mixed precision
# (bfloat16 compute on float32 master weights), each as CSV rows for docs/perf-gpu.md. The rules are timed in
# alternated rounds (one turn of one GPU measurement to the next drifted by 10 %), whose rows are printed at the end.
for model in $BENCH_MODELS; do
	limit=$BENCH_LIMIT
	[[ $model == resnet50 ]] && limit=$BENCH_LIMIT_RESNET50
	for dtype in float32 bfloat16; do
		stage "bench-$model-$dtype" "$limit" "$bin/nowt" bench -backend "$SPEC" -model "$model" -rule bp,kp -dataset synthetic \
			-image-size "$BENCH_IMAGE_SIZE" -batch "$BENCH_BATCH" -steps "$BENCH_STEPS" -rounds "$BENCH_ROUNDS" -dtype "$dtype" -csv
	done
done

# 3a. The CIFAR stage's own step, alone: ResNet-20 at its batch on synthetic 32x32 images, so that the training
# loop's rate in stage 4 (its log's img/s) can be set against the bare step's: the difference is the loop's.
# (cifar_bench: whether the ResNet-20 stages at CIFAR_BENCH_BATCH run, here and in 3a', 3c and 3d; cifar_data: the
# synthetic images of those that time few steps.)
cifar_bench=0
[[ -n "$CIFAR_BENCH_BATCH" && "$CIFAR_BENCH_BATCH" != 0 ]] && cifar_bench=1
cifar_data="examples=$((CIFAR_BENCH_BATCH * 4)),size=32,channels=3,classes=10"
if ((cifar_bench)); then
	stage bench-resnet20 45 "$bin/nowt" bench -backend "$SPEC" -model resnet20 -rule bp,kp -dataset synthetic \
		-data "examples=$((CIFAR_BENCH_BATCH * (2 + BENCH_ROUNDS * (BENCH_STEPS + 1)))),size=32,channels=3,classes=10" \
		-batch "$CIFAR_BENCH_BATCH" -steps "$BENCH_STEPS" -rounds "$BENCH_ROUNDS" -csv
fi

# 3a'. The step taken apart (nowt bench -feed): BP's step on one batch transferred from the host every step (host:
# what JAX's and PyTorch's rows do) and on one batch kept on the device (device: the step alone), for ResNet-20 at
# the CIFAR stage's batch and ResNet-18 at the benchmark's, float32. Against the pipeline's rows above: what the
# input pipeline costs the step, what the transfer costs, and what is left for the step itself.
for model in $FEED_MODELS; do
	batch=$BENCH_BATCH data=(-image-size "$BENCH_IMAGE_SIZE")
	if [[ $model == resnet20 ]]; then
		((cifar_bench)) || continue
		batch=$CIFAR_BENCH_BATCH data=(-data "$cifar_data")
	fi
	for feed in host device; do
		stage "bench-$model-feed-$feed" 45 "$bin/nowt" bench -backend "$SPEC" -model "$model" -rule bp -dataset synthetic \
			"${data[@]}" -batch "$batch" -steps "$BENCH_STEPS" -feed "$feed" -csv
	done
done

# 3b. PyTorch on the same GPU, the same models, batch and precisions (scripts/peers/bench_torch.py: eager mode,
# channels-last, cuDNN autotuning, the batch copied from the host and the step synchronised, as nowt's), each a
# CSV row for docs/perf-gpu.md. Python's own failure (no torch, no CUDA device) fails only its stage.
for model in $PEERS_MODELS; do
	for dtype in float32 bfloat16; do
		stage "peer-torch-$model-$dtype" "$PEERS_LIMIT" "$PEERS_PYTHON" scripts/peers/bench_torch.py --device "$PEERS_DEVICE" \
			--model "$model" --image-size "$BENCH_IMAGE_SIZE" --batch "$BENCH_BATCH" --steps "$BENCH_STEPS" --dtype "$dtype"
	done
done

# 3c. JAX on the same GPU, through the same XLA as nowt's rows (JAX's CUDA plugin): the step of ResNet-20 at the
# CIFAR stage's batch and of ResNet-18 at the benchmark's, float32, the batch transferred from the host every step
# and kept on the device (scripts/peers/bench_jax.py --feed host, --feed device: as nowt's 3a' stages), each a CSV
# row for docs/perf-gpu.md. nowt's step ÷ JAX's on one compiler
# is docs/perf.md's first goal (1.2x), measured here on the GPU. JAX_PLATFORMS keeps JAX on PEERS_DEVICE: a JAX that
# cannot reach the GPU fails its stage instead of timing the CPU.
for model in $JAX_MODELS; do
	batch=$BENCH_BATCH size=$BENCH_IMAGE_SIZE
	if [[ $model == resnet20 ]]; then
		((cifar_bench)) || continue
		batch=$CIFAR_BENCH_BATCH size=32
	fi
	for feed in host device; do
		stage "peer-jax-$model-$feed" "$PEERS_LIMIT_JAX" env JAX_PLATFORMS="$PEERS_DEVICE" "$JAX_PYTHON" scripts/peers/bench_jax.py \
			--model "$model" --image-size "$size" --batch "$batch" --steps "$BENCH_STEPS" --feed "$feed"
	done
done

# 3d. XLA's optimised program of the same step, nowt's and JAX's (ResNet-20 at the CIFAR stage's batch, BP), so that
# the two can be compared kernel by kernel here: each *after_optimizations.txt of the step's module, packed into
# $OUT/hlo-gpu.tar.gz (nowt/ and jax/).
if [[ "$HLO_DUMP" != 0 ]] && ((cifar_bench)); then
	hlo="$(mktemp -d "${TMPDIR:-/tmp}/nowt-hlo.XXXXXX")"
	stage hlo-nowt 60 env XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_dump_to=$hlo/nowt --xla_dump_hlo_as_text --xla_dump_hlo_module_re=Trainer" \
		"$bin/nowt" bench -backend "$SPEC" -model resnet20 -rule bp -dataset synthetic \
		-data "$cifar_data" -batch "$CIFAR_BENCH_BATCH" -steps 1 -warmup-steps 1 -csv
	if [[ " $JAX_MODELS " == *" resnet20 "* ]]; then
		stage hlo-jax 60 env JAX_PLATFORMS="$PEERS_DEVICE" XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_dump_to=$hlo/jax --xla_dump_hlo_as_text --xla_dump_hlo_module_re=jit_step" \
			"$JAX_PYTHON" scripts/peers/bench_jax.py --model resnet20 --image-size 32 --batch "$CIFAR_BENCH_BATCH" --steps 1
	fi
	if [[ -n "${OUT:-}" ]]; then
		(cd "$hlo" && find . -type f -name '*after_optimizations.txt' -print | tar czf "$OUT/hlo-gpu.tar.gz" -T -) &&
			say "packed $(tar tzf "$OUT/hlo-gpu.tar.gz" | wc -l) optimised programs into \$OUT/hlo-gpu.tar.gz"
	fi
	rm -rf "$hlo"
fi

# 4. The CIFAR-10 comparison, written locally and packed into one file.
cifar_archive="$GPU_DIR/cifar10-jpeg.tar.gz"
if [[ -z "$CIFAR_RULES" ]]; then
	summary+=("cifar10: skipped (CIFAR_RULES empty)")
elif [[ -f "$cifar_archive" ]]; then
	runs="$(mktemp -d "${TMPDIR:-/tmp}/nowt-cifar.XXXXXX")"
	export NOWT_CIFAR10_JPEG="$(cd "$(dirname "$cifar_archive")" && pwd)/$(basename "$cifar_archive")"
	stage cifar10 $(($(left) - 60)) "$bin/nowt" compare -backend "$SPEC" -progress=false -seed "$CIFAR_SEED" -model resnet20 \
		-dataset cifar10-jpeg -augment -batch 256 -eval-batch 1000 -lr 0.2 -momentum 0.9 -nesterov \
		-schedule cosine -warmup 1 -wd 5e-4 -kp-decay 5e-3 -epochs "$CIFAR_EPOCHS" -steps "$CIFAR_STEPS" \
		-log-every "$CIFAR_LOG_EVERY" \
		${CIFAR_SET:+-set "$CIFAR_SET"} -rules "$CIFAR_RULES" -out "$runs/cifar10-resnet20-gpu"
	# A stage stopped at its limit stops compare before it writes the table and plots: write them from the logs.
	if [[ ! -f "$runs/cifar10-resnet20-gpu/results.md" ]]; then
		timeout 30 "$bin/nowt" report -out "$runs/cifar10-resnet20-gpu" >>"$log" 2>&1 || say "nowt report failed"
	fi
	if [[ -n "${OUT:-}" ]]; then
		(cd "$runs" && find . \( -name checkpoints -prune \) -o -type f \( -name '*.md' -o -name '*.png' \
			-o -name config.json -o -name metrics.jsonl -o -name wall_time.json -o -name provenance.jsonl \) -print |
			tar czf "$OUT/cifar-gpu.tar.gz" -T -) &&
			say "packed $(tar tzf "$OUT/cifar-gpu.tar.gz" | wc -l) files into \$OUT/cifar-gpu.tar.gz"
	fi
	rm -rf "$runs"
else
	say "no $cifar_archive: the CIFAR stage is skipped"
	summary+=("cifar10: skipped (no archive)")
fi

# 5. The numerical tests on the GPU, with what is left. Test binaries run in their package folder, as go test would.
# TF32 off: NVIDIA_TF32_OVERRIDE=0 turns it off in cuBLAS and cuDNN, but not in the matrix products XLA emits
# through Triton (a float32 dot at default precision may run there in TF32 on Hopper), so those are switched off
# too and every product goes to cuBLAS.
if [[ -x "$bin/feedback.test" && "$RUN_TESTS" != 0 ]] && (($(left) > 60)); then
	export NOWT_TEST_BACKEND="$SPEC" NVIDIA_TF32_OVERRIDE=0
	export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_enable_triton_gemm=false"
	say "numerical tests: NVIDIA_TF32_OVERRIDE=$NVIDIA_TF32_OVERRIDE XLA_FLAGS=$XLA_FLAGS"
	stage feedback-tests 90 bash -c "set -o pipefail; cd feedback && $bin/feedback.test -test.v -test.run 'TestLayerGradients|TestBackpropMatchesAutodiff|TestConvBackpropFiniteDifferences' | grep -v '^=== RUN\|^    --- PASS'"
	stage models-tests 90 bash -c "set -o pipefail; cd models && $bin/models.test -test.v -test.run 'TestConvImplementationsAgree|TestBackpropFiniteDifferences' | grep -v '^=== RUN\|^    --- PASS'"
fi
