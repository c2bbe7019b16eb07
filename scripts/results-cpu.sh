#!/usr/bin/env bash
# Runs the CPU comparisons of docs/results.md on the pure-Go backend (2 cores), each into runs/results/<name>.
# Re-running reuses finished rules (nowt compare resumes unfinished ones).
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/nowt ./cmd/nowt
out=${OUT:-runs/results}
common=(-progress=false -seed 1)

# 1. The authors' released MNIST network: 784-500-10 sigmoid, per-class sigmoid cross-entropy, plain SGD, batch 128.
bin/nowt compare "${common[@]}" -model mlp -hidden 500 -activation sigmoid -loss sigmoid -dataset mnist \
	-momentum 0 -lr 0.2 -schedule constant -wd 1e-4 -kp-decay 0.01 -batch 128 -epochs 3 \
	-rules bp,fa,wm,kp -out "$out/mnist-sigmoid"

# 2. A ReLU MLP (784-500-10) with SGD + momentum, all five rules.
bin/nowt compare "${common[@]}" -model mlp -hidden 500 -activation relu -dataset mnist \
	-lr 0.05 -momentum 0.9 -schedule cosine -wd 1e-4 -kp-decay 0.01 -batch 128 -epochs 3 \
	-rules bp,fa,ss,wm,kp -out "$out/mnist-relu"

# 3. Fashion-MNIST, the small CNN, all five rules.
bin/nowt compare "${common[@]}" -model cnn -dataset fashion-mnist \
	-lr 0.05 -momentum 0.9 -schedule cosine -wd 1e-4 -kp-decay 0.01 -batch 128 -epochs 1 -log-every 50 \
	-rules bp,fa,ss,wm,kp -out "$out/fashion-cnn"

# 4. CIFAR-10 (JPEG copy), ResNet-20 reduced to fit 2 cores: width 8 (stages 8/16/32), the first 1280 training
#    and 1000 test images, 2 epochs.
bin/nowt compare "${common[@]}" -model resnet20 -width 8 -dataset cifar10-jpeg -augment \
	-train-limit 1280 -test-limit 1000 -lr 0.1 -momentum 0.9 -schedule cosine -wd 5e-4 -kp-decay 0.01 \
	-batch 64 -epochs 2 -log-every 5 -rules bp,fa,ss,wm,kp -out "$out/cifar10-resnet20-cpu"

# 5. Weight mirror follow-ups: the CIFAR run with 300 warm-up mirror steps (the default one epoch = 20 steps
#    leaves B at ~50°), and the Fashion-MNIST CNN with 4 mirror steps per training step (1 diverged).
bin/nowt compare "${common[@]}" -model resnet20 -width 8 -dataset cifar10-jpeg -augment \
	-train-limit 1280 -test-limit 1000 -lr 0.1 -momentum 0.9 -schedule cosine -wd 5e-4 -kp-decay 0.01 \
	-batch 64 -epochs 2 -log-every 5 -wm-warmup 300 -rules wm -out "$out/cifar10-resnet20-cpu-wm-warmup"
bin/nowt compare "${common[@]}" -model cnn -dataset fashion-mnist \
	-lr 0.05 -momentum 0.9 -schedule cosine -wd 1e-4 -kp-decay 0.01 -batch 128 -epochs 1 -log-every 50 \
	-wm-steps 4 -rules wm -out "$out/fashion-cnn-wm-steps4"
# A weight mirror fast enough to keep up with this CNN's weights (see docs/results.md): it trains like BP.
bin/nowt compare "${common[@]}" -model cnn -dataset fashion-mnist \
	-lr 0.05 -momentum 0.9 -schedule cosine -wd 1e-4 -kp-decay 0.01 -batch 128 -epochs 1 -log-every 50 \
	-wm-lr 0.5 -wm-decay 0.5 -wm-batch 4096 -wm-steps 2 -rules wm -out "$out/fashion-cnn-wm-fast"
