#!/usr/bin/env bash
# Two nowt binaries and PyTorch timed in alternation on one model: BP's step, the order reversed every other round,
# so that the machine's drift between minutes falls on all three alike (perf-analysis §17, §18).
#
#   scripts/peers/alternate.sh OLD_BINARY NEW_BINARY MODEL BATCH IMAGE_SIZE STEPS [ROUNDS]
#   scripts/peers/alternate.sh /tmp/nowt-old bin/nowt resnet18 8 224 6 4
#
# Prints "round system step" lines (nowt's step as `nowt bench` prints it, PyTorch's in ms over twice the steps,
# two threads, Debian's /usr/bin/python3 unless $TORCH_PYTHON says otherwise).
set -euo pipefail
if [ $# -lt 6 ]; then
  sed -n 2,9p "$0" >&2
  exit 2
fi
old=$1 new=$2 model=$3 batch=$4 size=$5 steps=$6 rounds=${7:-4}
python=${TORCH_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
for bin in "$old" "$new"; do
  [ -x "$bin" ] || { echo "alternate.sh: $bin is not an executable nowt binary (build one: go build -o $bin ./cmd/nowt)" >&2; exit 2; }
done
for i in $(seq 1 "$rounds"); do
  order="old new torch"
  [ $((i % 2)) = 0 ] && order="torch new old"
  for v in $order; do
    case $v in
    torch)
      s=$("$python" "$here/bench_torch.py" --model "$model" --batch "$batch" --image-size "$size" \
        --steps $((steps * 2)) --threads 2 | tail -1 | cut -d, -f6)
      echo "$i torch $(awk -v s="$s" 'BEGIN{printf "%.1fms", s*1000}')" ;;
    *)
      bin=$old
      [ "$v" = new ] && bin=$new
      echo "$i $v $("$bin" bench -backend xla:cpu -model "$model" -batch "$batch" -dataset synthetic \
        -image-size "$size" -rule bp -steps "$steps" 2>&1 | awk '$2=="bp"{print $6}')" ;;
    esac
  done
done
