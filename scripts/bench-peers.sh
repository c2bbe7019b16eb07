#!/usr/bin/env bash
# Speed side by side, in one run on one machine: nowt on XLA on CPU (every rule), nowt on pure Go, JAX on CPU and
# PyTorch on CPU, on the same models and shapes (scripts/peers/models_spec.md), then docs/perf.md from the rows.
#
#   scripts/bench-peers.sh            # everything (about 45 minutes on 2 cores)
#   QUICK=1 scripts/bench-peers.sh    # MLPs only (a few minutes), to try the script
#
# It installs what it needs: the XLA CPU plugin (`nowt setup`), oneDNN's headers for nowt's backward-weights
# handler (libdnnl-dev, as root), JAX into .peers-venv (pip), PyTorch from Debian (python3-torch, as root) or,
# failing that, pip. A system that cannot be installed gets "not run" rows.
# Rows land in $RUNDIR/rows.csv (default runs/bench-peers) as they are measured; at the end they and the log are
# copied beside the page (docs/perf/rows.csv, log.txt) and the page is written from them.
#
# The goal "nowt's BP within 1.2x of JAX's step" compares two steps of a few milliseconds that drift by a third
# between minutes on a shared machine, so each model also gets PAIR_ROUNDS (default 3) paired rounds: nowt's BP,
# JAX's step (on nowt's plugin, fed a device batch and a host batch, and on jaxlib's XLA) and PyTorch's (at its
# faster thread count in the table's rows) one right after the other, the order reversed every other round
# (pairs.csv: model,batch,round,system,step_s). The page reads the goals from the ratios within each round.
# nowt's rules are compared with its BP the same way, inside one process: `nowt bench -rounds XLA_ROUNDS`
# (default 4: an even count gives every rule the same mean place in the order) keeps every rule set up and times
# each in turn, round after round, and gives each rule's ratio to BP as the median of the rounds' ratios, with
# their range (rows.csv: ratio_to_bp, ratio_min, ratio_max, rounds). With `-control` BP is timed a second time in
# the same rounds (row bp-again): its ratio to BP is the machine's noise, what a rule's ratio has to exceed before
# it says anything.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
RUNDIR=${RUNDIR:-runs/bench-peers}
OUTMD=${OUTMD:-docs/perf.md}
mkdir -p "$RUNDIR" bin
ROWS="$RUNDIR/rows.csv"
LOG="$RUNDIR/log.txt"
: >"$LOG"
echo "system,model,rule,batch,first_step_s,step_s,images_per_s,mirror_share,ratio_to_bp,ratio_min,ratio_max,rounds" >"$ROWS"
PAIRS="$RUNDIR/pairs.csv"
echo "model,batch,round,system,step_s" >"$PAIRS"
PAIR_ROUNDS=${PAIR_ROUNDS:-3}
XLA_ROUNDS=${XLA_ROUNDS:-4}
say() { echo "bench-peers: $*" | tee -a "$LOG" >&2; }

# nowt is built as make builds it where oneDNN's headers are installed: with its backward-weights convolution
# (xla/onednnbw). As root with apt, libdnnl-dev is installed first (as .ci/run does), so that the page measures it.
if [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdnnl-dev) >>"$LOG" 2>&1 ||
		say "libdnnl-dev could not be installed: nowt's weight gradients stay oneDNN's forward convolution"
fi
TAGS=
[ -f /usr/include/oneapi/dnnl/dnnl.hpp ] && TAGS=-tags=onednn
$GO build $TAGS -o bin/nowt ./cmd/nowt || exit 1
say "nowt built ${TAGS:-without the onednn tag}"
bin/nowt setup -plugin cpu >>"$LOG" 2>&1 || say "XLA CPU plugin not installed: nowt xla:cpu rows will be missing"
# The plugin nowt's xla:cpu rows run on: JAX runs on it too (jax@nowt-plugin rows), the same compiler.
PLUGIN=$(sed -n 's/^nowt: PJRT plugin "cpu" at //p' "$LOG" | tail -1)

# JAX (CPU) in a virtual environment of its own.
PYJAX=.peers-venv/bin/python
if [ ! -x "$PYJAX" ] || ! "$PYJAX" -c 'import jax' 2>/dev/null; then
	say "installing JAX into .peers-venv"
	python3 -m venv .peers-venv >>"$LOG" 2>&1 && .peers-venv/bin/pip install -q jax >>"$LOG" 2>&1 || say "JAX could not be installed"
fi
# PyTorch (CPU): Debian's python3-torch for the system python, else pip's into the venv.
PYTORCH=""
for py in /usr/bin/python3 "$PYJAX"; do
	if [ -x "$py" ] && "$py" -c 'import torch' 2>/dev/null; then PYTORCH=$py; break; fi
done
# Debian's torch runs on the reference BLAS unless an optimised one is installed (100× slower matmuls).
if [ "$PYTORCH" = /usr/bin/python3 ] && ! ldconfig -p | grep -q libopenblas && [ "$(id -u)" = 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >>"$LOG" 2>&1 || say "OpenBLAS could not be installed: PyTorch runs on the reference BLAS"
fi
if [ -z "$PYTORCH" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	say "installing Debian's python3-torch (with OpenBLAS: its default BLAS is the slow reference one)"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread) >>"$LOG" 2>&1 &&
		/usr/bin/python3 -c 'import torch' 2>/dev/null && PYTORCH=/usr/bin/python3
fi
[ -n "$PYTORCH" ] || say "PyTorch not available: its rows will say so"

# name | nowt flags | peer model | batch | timed steps (per round for nowt's xla:cpu rules) | pure-Go rules and steps
# [| timed steps of each system in a paired round, if not the same: the MLPs' 1.5 s, against the machine's slow
# phases of a second or more (perf-analysis.md §16: 200 steps of 1 ms read 1.0-1.3 ms in one)]. The MLPs' rules
# are timed over about 1 s a round too (BP against itself on the small MLP read 0.59-1.09 at 200 steps in the run
# at 7bd420d, 0.84-1.02 at these counts at 594cab9; perf-analysis.md §17).
CONFIGS=(
	"mlp500|-model mlp -hidden 500 -activation relu -dataset mnist|mlp500|128|1000|bp,fa,ss,wm,kp:10|1500"
	"mlp1000|-model mlp -hidden 1000,1000 -activation relu -dataset mnist|mlp1000|128|250|bp,fa,ss,wm,kp:5|300"
	"resnet20|-model resnet20 -dataset synthetic -data examples=256,size=32,channels=3,classes=10|resnet20|64|12|bp:2"
	"resnet20|-model resnet20 -dataset synthetic -data examples=256,size=32,channels=3,classes=10|resnet20|128|8|bp:2"
	"resnet18|-model resnet18 -dataset synthetic -data examples=16,size=224,channels=3,classes=1000 -image-size 224|resnet18|8|6|bp:2"
)
# The paper's five rules, then the rest of the family (issue 14's cost goals: within 1.1× of bp, dfa 1.2×).
XLA_RULES=${XLA_RULES:-bp,fa,ss,wm,kp,usf,frsf,brsf,dfa}
[ -n "${QUICK:-}" ] && CONFIGS=("${CONFIGS[@]:0:2}")

nowt_rows() { # system name flags batch steps rules backend rounds [more bench flags]
	local system=$1 name=$2 flags=$3 batch=$4 steps=$5 rules=$6 backend=$7 rounds=$8
	shift 8
	# shellcheck disable=SC2086
	bin/nowt bench -csv -backend "$backend" $flags -batch "$batch" -rule "$rules" -steps "$steps" -rounds "$rounds" \
		-warmup-steps 2 "$@" 2>>"$LOG" | tail -n +2 | while IFS=, read -r _ rule b _ first step ips ratio mirror n lowest highest; do
		echo "$system,$name,$rule,$b,$first,$step,$ips,$mirror,$ratio,$lowest,$highest,$n"
	done >>"$ROWS"
}
peer_row() { # python script name batch steps [extra arguments]
	local py=$1 script=$2 name=$3 batch=$4 steps=$5
	shift 5
	if [ -z "$py" ]; then return; fi
	"$py" "$script" --model "$name" --batch "$batch" --steps "$steps" "$@" 2>>"$LOG" | tail -1 | sed 's/$/,0,,,,/' >>"$ROWS" ||
		say "$script $name $batch failed (see $LOG)"
}

# JAX on the plugin nowt's xla:cpu rows use, with the XLA flags nowt runs it with, as `nowt devices` prints them:
# $XLA_FLAGS and nowt's own (xla/backend_xla.go: XNNPACK off, it multiplies by stale weights, docs/upstream.md;
# on a CPU with AVX-512, 512-bit vectors). The same compiler with the same options, so that a gap between the two
# is the graph's.
PLUGIN_XLA_FLAGS=
if [ -n "$PLUGIN" ]; then
	PLUGIN_XLA_FLAGS=$(bin/nowt devices -backend xla:cpu 2>>"$LOG" | sed -n 's/^xla flags: *//p')
	[ "$PLUGIN_XLA_FLAGS" = "(none)" ] && PLUGIN_XLA_FLAGS=
	say "XLA flags for nowt's plugin and JAX on it: ${PLUGIN_XLA_FLAGS:-(none)}"
fi
plugin_peer_row() { # name batch steps [extra arguments]
	[ -n "$PLUGIN" ] || return 0
	(export XLA_FLAGS="$PLUGIN_XLA_FLAGS"
		peer_row "$PYJAX" scripts/peers/bench_jax.py "$@" --plugin "$PLUGIN")
}
# torch_threads peer batch: PyTorch's faster thread count for the model, from the table's rows (1 if none ran).
torch_threads() {
	awk -F, -v m="$1" -v b="$2" '$1 ~ /^torch-/ && $2 == m && $4 == b && (best == "" || $6 < best) {
		best = $6; n = $1; sub(/threads$/, "", n); sub(/.*-/, "", n) } END { print (n == "" ? 1 : n) }' "$ROWS"
}
paired_round() { # name flags peer batch steps round: nowt's BP, JAX's and PyTorch's steps, one after the other
	local name=$1 flags=$2 peer=$3 batch=$4 steps=$5 round=$6 systems=(nowt jax-plugin jax-plugin-host jax torch) sys row
	local one
	one=$(mktemp)
	((round % 2 == 0)) && systems=(torch jax jax-plugin-host jax-plugin nowt)
	for sys in "${systems[@]}"; do
		: >"$one" # the same functions as the table's rows, writing the one row into $one instead
		case $sys in
		nowt) ROWS=$one nowt_rows "nowt-xla:cpu" "$name" "$flags" "$batch" "$steps" bp "xla:cpu" 1 ;;
		jax) ROWS=$one peer_row "$PYJAX" scripts/peers/bench_jax.py "$peer" "$batch" "$steps" ;;
		jax-plugin) ROWS=$one plugin_peer_row "$peer" "$batch" "$steps" --feed device ;;
		jax-plugin-host) ROWS=$one plugin_peer_row "$peer" "$batch" "$steps" --feed host ;;
		torch) [ -n "$PYTORCH" ] && ROWS=$one peer_row "$PYTORCH" scripts/peers/bench_torch.py "$peer" "$batch" "$steps" \
			--threads "$(torch_threads "$peer" "$batch")" ;;
		esac
		row=$(tail -1 "$one")
		if [ -n "$row" ]; then # system,model,rule,batch,first_step_s,step_s,...
			echo "$name,$batch,$round,$(cut -d, -f1 <<<"$row"),$(cut -d, -f6 <<<"$row")" >>"$PAIRS"
		else
			say "paired round $round: $sys $name $batch gave no step time"
		fi
	done
	rm -f "$one"
}

dirty=""
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=" with uncommitted changes"
say "run: commit $(git rev-parse --short HEAD 2>/dev/null)$dirty, started $(date -u '+%Y-%m-%d %H:%M UTC')"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in "${CONFIGS[@]}"; do
	IFS='|' read -r name flags peer batch steps gospec pairsteps <<<"$c"
	say "$name batch $batch"
	control=()
	[[ ",$XLA_RULES," == *,bp,* ]] && control=(-control)
	nowt_rows "nowt-xla:cpu" "$name" "$flags" "$batch" "$steps" "$XLA_RULES" "xla:cpu" "$XLA_ROUNDS" "${control[@]}"
	nowt_rows "nowt-go" "$name" "$flags" "$batch" "${gospec#*:}" "${gospec%%:*}" "go" 1
	peer_row "$PYJAX" scripts/peers/bench_jax.py "$peer" "$batch" "$steps"
	plugin_peer_row "$peer" "$batch" "$steps"
	# On the MLPs, JAX's own sign symmetry against its BP on the same plugin, in rounds as nowt's rules are timed:
	# what the rule costs on this compiler, beside nowt's ss÷bp (perf-analysis.md §24).
	if [[ $peer == mlp* ]] && [ -n "$PLUGIN" ] && [ -x "$PYJAX" ]; then
		(export XLA_FLAGS="$PLUGIN_XLA_FLAGS"
			"$PYJAX" scripts/peers/jax_rule_rounds.py --model "$peer" --batch "$batch" --steps "$steps" \
				--rounds "$XLA_ROUNDS" --plugin "$PLUGIN" 2>>"$LOG" | tail -1 >>"$ROWS") ||
			say "jax_rule_rounds.py $peer $batch failed (see $LOG)"
	fi
	peer_row "$PYTORCH" scripts/peers/bench_torch.py "$peer" "$batch" "$steps" --threads 1
	[ "$(nproc)" -gt 1 ] && peer_row "$PYTORCH" scripts/peers/bench_torch.py "$peer" "$batch" "$steps" --threads "$(nproc)"
	if [ -n "$PYJAX" ] && [ -x "$PYJAX" ] && [ "$PAIR_ROUNDS" -gt 0 ]; then
		say "$name batch $batch: $PAIR_ROUNDS paired rounds of nowt's BP, JAX and PyTorch"
		for round in $(seq 1 "$PAIR_ROUNDS"); do paired_round "$name" "$flags" "$peer" "$batch" "${pairsteps:-$steps}" "$round"; done
	fi
done
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# The page keeps its rows and log beside it (docs/perf/), without the XLA runtime's own log lines.
PERFDIR=${PERFDIR:-$(dirname "$OUTMD")/perf}
mkdir -p "$PERFDIR" && cp "$ROWS" "$PERFDIR/rows.csv" && cp "$PAIRS" "$PERFDIR/pairs.csv" && grep -v '^[WIE][0-9]\{4\} ' "$LOG" >"$PERFDIR/log.txt"
python3 scripts/peers/perf_table.py "$PERFDIR/rows.csv" "$PERFDIR/log.txt" >"$OUTMD" && say "wrote $OUTMD"
