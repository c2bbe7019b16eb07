#!/usr/bin/env bash
# The full CIFAR-10 comparison of docs/results.md on one NVIDIA GPU through the CUDA PJRT plugin: ResNet-20
# (width 16, He et al.), all five rules, 20 epochs each, cosine schedule, batch 256. Budget: about 10 minutes
# on an H100 (2 minutes per rule). Needs bin/nowt built on the host (make build) and JAX's CUDA PJRT plugin in
# the machine's Python (jax-cuda13-pjrt); see scripts/gpu-check.sh for how the plugin is exposed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
out=${OUT:-runs/results}/cifar10-resnet20-gpu
bin/nowt compare -backend xla:cuda -progress=false -seed 1 -model resnet20 -dataset cifar10-jpeg \
	-data "${CIFAR_DIR:-}" -augment -workers 0 -batch 256 -eval-batch 1000 -lr 0.2 -momentum 0.9 -nesterov \
	-schedule cosine -warmup 1 -wd 5e-4 -kp-decay 5e-3 -epochs 20 -log-every 49 \
	-rules bp,fa,ss,wm,kp -out "$out" 2>&1 | tee "${OUT_LOG:-/dev/null}"
