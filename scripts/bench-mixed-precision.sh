#!/usr/bin/env bash
# bfloat16 against float32 on one machine, in paired rounds: for each model, `nowt bench` in float32 and in
# bfloat16 one right after the other, the order reversed every other round (a drift of the machine's speed reaches
# both alike), ROUNDS rounds (default 3). Each round's ratio is bfloat16's median step ÷ float32's; the summary is
# the median of the rounds' ratios with their range. Rows, log and the commit land in $OUTDIR (default
# docs/perf/mixed-precision), beside docs/perf-mixed-precision.md, which cites them.
#
#   scripts/bench-mixed-precision.sh                 # ResNet-20 (CIFAR, batch 64) and ResNet-18 (224², batch 8), xla:cpu
#   BACKEND=xla:cuda ROUNDS=5 scripts/bench-mixed-precision.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BACKEND=${BACKEND:-xla:cpu}
ROUNDS=${ROUNDS:-3}
OUTDIR=${OUTDIR:-docs/perf/mixed-precision}
mkdir -p "$OUTDIR" bin
$GO build -buildvcs=auto -o bin/nowt ./cmd/nowt
ROWS="$OUTDIR/rows.csv"
LOG="$OUTDIR/log.txt"
{
	echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') x $(nproc)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	bin/nowt version
} >"$LOG"
echo "round,dtype,model,rule,batch,devices,first_step_s,step_s,images_per_s,ratio_to_bp,mirror_share,rounds,ratio_min,ratio_max" >"$ROWS"

# model|flags: the shapes of docs/perf.md's ResNet rows.
MODELS=(
	"resnet20|-dataset synthetic -data examples=1024,size=32,channels=3,classes=10 -batch 64 -steps 10"
	"resnet18|-dataset synthetic -image-size 224 -data examples=128,size=224,channels=3,classes=1000 -batch 8 -steps 6"
)
for spec in "${MODELS[@]}"; do
	model=${spec%%|*}
	flags=${spec#*|}
	for round in $(seq 1 "$ROUNDS"); do
		order="float32 bfloat16"
		if ((round % 2 == 0)); then order="bfloat16 float32"; fi
		for dtype in $order; do
			cmd="bin/nowt bench -backend $BACKEND -model $model -rule bp -dtype $dtype $flags -csv"
			echo "# round $round: $cmd" >>"$LOG"
			out=$($cmd 2>>"$LOG")
			echo "$out" >>"$LOG"
			echo "$out" | grep "^$model," | sed "s/^/$round,$dtype,/" >>"$ROWS"
		done
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOG"

# The summary: per model, each round's bfloat16 ÷ float32 step, then their median and range.
python3 - "$ROWS" <<'EOF' | tee -a "$LOG"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for model in dict.fromkeys(r["model"] for r in rows):
    steps = {}
    for r in rows:
        if r["model"] == model:
            steps.setdefault(r["round"], {})[r["dtype"]] = float(r["step_s"])
    ratios = [s["bfloat16"] / s["float32"] for s in steps.values() if "bfloat16" in s and "float32" in s]
    f32 = statistics.median(s["float32"] for s in steps.values())
    bf16 = statistics.median(s["bfloat16"] for s in steps.values())
    print(f"{model}: bfloat16 ÷ float32 step {statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f} over "
          f"{len(ratios)} rounds); median steps float32 {f32*1000:.1f} ms, bfloat16 {bf16*1000:.1f} ms")
EOF
