#!/usr/bin/env bash
# collect-gpu.sh DIR [NAME]: files what scripts/gpu-check.sh sent back from a GPU machine (the device tool's
# files_at folder: gpu-check.log, cifar-gpu.tar.gz, gpu-util.csv) into the docs, the way the first GPU run was:
#   - the CIFAR-10 comparison into docs/results/NAME/ (default cifar10-resnet20-gpu; give another for another
#     seed or schedule, e.g. cifar10-resnet20-gpu-seed2), through scripts/collect-results.sh, with provenance.json
#     naming the commit of the nowt binary that ran (its version line in the log); a rule whose wall_time.json the pack
#     lacks (packs before commit 567f3e3) gets one rebuilt from the log's "N steps (E epochs) in Ts" line
#   - the log and the utilisation samples into docs/perf/gpu/NAME-COMMIT.log and .csv
#   - on standard output, the benchmark rows (nowt's, PyTorch's and JAX's) as a Markdown table for docs/perf-gpu.md,
#     and what to add to docs/results.md
# An existing docs/results/NAME is refused unless FORCE=1. DOCS (default docs) is where it writes.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "collect-gpu: $*" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || die "usage: scripts/collect-gpu.sh DIR [NAME] (DIR: the folder the GPU run's files came back to)"
src=$1
name=${2:-cifar10-resnet20-gpu}
docs=${DOCS:-docs}
log="$src/gpu-check.log"
[[ -f "$log" ]] || die "$log not found: DIR must hold gpu-check.sh's files (gpu-check.log, cifar-gpu.tar.gz)"
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "NAME $name: letters, digits, '.', '_' and '-' only"
commit=$(grep -m 1 '^nowt ' "$log" | grep -o 'commit [0-9a-f]\{40\}' | cut -d' ' -f2 || true)
[[ -n "$commit" ]] || die "$log: its nowt version line names no commit (a nowt binary built without VCS information: make gpu-build records it)"
short=${commit:0:7}

if [[ -f "$src/cifar-gpu.tar.gz" ]]; then
	[[ ! -e "$docs/results/$name" || "${FORCE:-}" == 1 ]] ||
		die "$docs/results/$name exists: give another NAME (e.g. $name-seed2), or FORCE=1 to replace it"
	runs=$(mktemp -d)
	trap 'rm -rf "$runs"' EXIT
	tar xzf "$src/cifar-gpu.tar.gz" -C "$runs"
	[[ -d "$runs/cifar10-resnet20-gpu" ]] || die "$src/cifar-gpu.tar.gz holds no cifar10-resnet20-gpu/ folder"
	[[ "$name" == cifar10-resnet20-gpu ]] || mv "$runs/cifar10-resnet20-gpu" "$runs/$name"
	# Wall times the pack lacks, from the log: "resnet20 on cifar10-jpeg under rule bp: 1950 steps (10.00 epochs) in 35.5s".
	for run in "$runs/$name"/*/; do
		rule=$(basename "$run")
		[[ -f "$run/config.json" && ! -f "$run/wall_time.json" ]] || continue
		seconds=$(grep -o "under rule $rule: [0-9]* steps ([0-9.]* epochs) in [0-9.]*s" "$log" | tail -n 1 | grep -o '[0-9.]*s$' | tr -d s || true)
		[[ -n "$seconds" ]] && echo "{\"seconds\":$seconds}" >"$run/wall_time.json"
	done
	mkdir -p "$docs/results"
	OUT="$runs" NAMES="$name" COMMIT="$commit" DOCS_RESULTS="$docs/results" scripts/collect-results.sh >/dev/null
	echo "collect-gpu: $docs/results/$name: $(find "$docs/results/$name" -name metrics.jsonl | wc -l) runs, provenance.json at $short"
else
	echo "collect-gpu: no cifar-gpu.tar.gz in $src: no comparison to file"
fi

mkdir -p "$docs/perf/gpu"
cp "$log" "$docs/perf/gpu/$name-$short.log"
[[ -f "$src/gpu-util.csv" ]] && cp "$src/gpu-util.csv" "$docs/perf/gpu/$name-$short.csv"
echo "collect-gpu: $docs/perf/gpu/$name-$short.log$([[ -f "$src/gpu-util.csv" ]] && echo " and .csv")"

# The benchmark rows: each stage's header names the model and precision ([bench-resnet50-bfloat16],
# [peer-torch-resnet50-bfloat16]; [bench-resnet20], the CIFAR stage's bare step, is float32; [bench-resnet20-feed-host]
# names its feed); nowt's CSV rows follow its header line, PyTorch's start with torch-, JAX's with jax-.
echo
echo "| system | model | batch | precision | rule | first step | step | images/s | ÷ BP's step (range over rounds) |"
echo "| :--- | :--- | ---: | :--- | :--- | ---: | ---: | ---: | ---: |"
awk -F, '
	/^gpu-check: \[(bench|peer-torch|peer-jax)-[a-z0-9-]+\] running/ {
		match($0, /\[[a-z0-9-]+\]/); n = split(substr($0, RSTART + 1, RLENGTH - 2), p, "-")
		precision = (p[n] ~ /^(float32|bfloat16|float16)$/) ? p[n] : "float32"
		feed = (n >= 3 && p[n - 1] == "feed") ? " (-feed " p[n] ")" : ""
	}
	/^[a-z0-9]+,[a-z0-9-]+,[0-9]+,[0-9]+,[0-9.]+,[0-9.]+,[0-9.]+,/ && $1 != "model" {
		range = ($10 > 1) ? sprintf(" (%s–%s)", $11, $12) : ""
		printf "| nowt | %s | %s | %s | %s%s | %.1f s | %.1f ms | %s | %s%s |\n", $1, $3, precision, $2, feed, $5, $6 * 1000, $7, $8, range
	}
	/^torch-/ {
		printf "| PyTorch %s | %s | %s | %s | %s | %.1f s | %.1f ms | %s | |\n", $1, $2, $4, precision, $3, $5, $6 * 1000, $7
	}
	/^jax-/ {
		printf "| JAX %s | %s | %s | %s | %s | %.1f s | %.1f ms | %s | |\n", $1, $2, $4, precision, $3, $5, $6 * 1000, $7
	}' "$log"
echo
if [[ -d "$docs/results/$name" ]]; then
	echo "collect-gpu: next: add to docs/results.md, where the GPU section says, the two lines"
	echo "  <!-- table rules results/$name -->"
	echo "  <!-- end table -->"
	echo "then: go test ./report -run TestResultsPage -update"
fi
