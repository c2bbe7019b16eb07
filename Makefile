# nowt: learning without weight transport, on GoMLX.
GO       ?= go
PKGS     ?= ./...
# Fuzz targets run briefly inside `make test` (seed corpora always run as ordinary tests).
FUZZTIME ?= 3s
BENCHTIME ?= 3x

# oneDNN's backward-weights convolution for XLA's CPU plugin (package xla/onednnbw) is built in, with the onednn
# build tag, where oneDNN's headers are installed (Debian: apt-get install libdnnl-dev); every go command below
# gets the tag through GOFLAGS. Without them the weight gradients stay oneDNN's forward convolution.
ONEDNN_TAG := $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.hpp),onednn)
ifneq ($(ONEDNN_TAG),)
export GOFLAGS := $(strip $(GOFLAGS) -tags=$(ONEDNN_TAG))
endif

.PHONY: all build gpu-build gpu-rehearsal test test-xla lint vet fmt bench demo fuzz notebooks clean

all: build

build:
	$(GO) build -buildvcs=auto -o bin/nowt ./cmd/nowt

# What scripts/gpu-check.sh needs on a GPU machine that has no Go, in .gpu/ (ignored; carry it with the device
# tool, 64 MiB at most): nowt and the feedback and models test binaries, stripped and gzipped, and a copy of the
# CIFAR-10 JPEG archive for the CIFAR stage, and this machine's libjpeg-turbo (lib/libturbojpeg.so.0, 0.7 MB; the
# GPU image has none, and without it nowt decodes JPEGs in pure Go, 2.4x slower a core). cgo is forced on (the XLA
# backend needs it) and the binary is checked to have it; it is built without the onednn tag (the GPU image has no
# libdnnl, and its convolutions are cuDNN's). The archive comes from CIFAR10_JPEG (default: ../shared/data or shared/data); without one, a
# copy an earlier gpu-build put in .gpu/ is kept (so that `make gpu-rehearsal`, which rebuilds .gpu/, keeps it).
CIFAR10_JPEG ?= $(firstword $(wildcard ../shared/data/cifar10-jpeg.tar.gz shared/data/cifar10-jpeg.tar.gz))
gpu-build:
	mkdir -p .gpu && find .gpu -mindepth 1 ! -name cifar10-jpeg.tar.gz -exec rm -rf {} +
	GOFLAGS= CGO_ENABLED=1 $(GO) build -buildvcs=auto -ldflags "-s -w" -o .gpu/nowt ./cmd/nowt
	./.gpu/nowt version | grep -q "xla backend: compiled in" || { echo "gpu-build: .gpu/nowt lacks the XLA backend"; exit 1; }
	GOFLAGS= CGO_ENABLED=1 $(GO) test -c -ldflags "-s -w" -o .gpu/feedback.test ./feedback
	GOFLAGS= CGO_ENABLED=1 $(GO) test -c -ldflags "-s -w" -o .gpu/models.test ./models
	gzip -9 .gpu/nowt .gpu/feedback.test .gpu/models.test
	@if [ -n "$(CIFAR10_JPEG)" ]; then cp -f "$(CIFAR10_JPEG)" .gpu/cifar10-jpeg.tar.gz; \
	elif [ -f .gpu/cifar10-jpeg.tar.gz ]; then echo "gpu-build: keeping .gpu/cifar10-jpeg.tar.gz from an earlier gpu-build"; \
	else echo "gpu-build: no cifar10-jpeg.tar.gz found (set CIFAR10_JPEG): the CIFAR stage will be skipped"; fi
	@lib=$$(ldconfig -p 2>/dev/null | awk '$$1 == "libturbojpeg.so.0" && /x86-64/ {print $$NF; exit}'); \
	if [ -n "$$lib" ]; then mkdir -p .gpu/lib && cp -L "$$lib" .gpu/lib/libturbojpeg.so.0; \
	else echo "gpu-build: no libturbojpeg.so.0 here (apt-get install libturbojpeg0): nowt will decode JPEGs in pure Go there"; fi
	@du -ch .gpu/* | tail -1

# scripts/gpu-check.sh run here on the CPU plugin loaded as the CUDA one, every stage shrunk, its output checked
# (about 6 minutes): run it before carrying .gpu to a GPU machine.
gpu-rehearsal:
	scripts/rehearse-gpu-check.sh

vet:
	$(GO) vet $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

# The test suite: go vet; every package's tests on the pure-Go backend (the XLA plugin hidden from "auto");
# the numerical and training tests again on XLA on CPU where its plugin is installed (scripts/test-xla.sh says
# what runs there); each fuzz target briefly.
test: vet
	PJRT_PLUGIN_LIBRARY_PATH= NOWT_TEST_BACKEND= GOMLX_BACKEND= $(GO) test -count=1 -timeout 15m $(PKGS)
	$(MAKE) test-xla
	$(MAKE) fuzz

# The XLA-on-CPU pass of `make test` alone (skipped, with a note, without the plugin unless NOWT_REQUIRE_XLA=1).
test-xla:
	GO=$(GO) scripts/test-xla.sh

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./feedback ./input ./models

# The paper in miniature: BP, FA, WM and KP train the 784-500-10 ReLU MLP on MNIST for one epoch each (same seed,
# same initial network), then the table of test accuracy and per-layer angles, and the plots, in runs/demo/.
# KP's decay is 0.02 on its layers' W and B: B → Wᵀ at rate ηλ/(1−μ) ≈ 0.01 per step (mean lr 0.05, momentum
# 0.9), ≈ 5 over the epoch's 468 steps; at the default 1e-4 it would be 0.02, and B would stay near random.
# WM's warm-up is 200 mirror steps (B reaches ~12° of Wᵀ from noise; the default, one epoch's worth, costs more).
# DEMO_BACKEND=go forces the pure-Go backend (auto picks xla:cpu when its plugin is installed).
DEMO_BACKEND ?= auto
demo: build
	rm -rf runs/demo
	./bin/nowt compare -backend $(DEMO_BACKEND) -progress=false -seed 1 -model mlp -hidden 500 -activation relu \
		-dataset mnist -lr 0.1 -momentum 0.9 -schedule cosine -wd 1e-4 -kp-decay 0.02 -batch 128 -epochs 1 \
		-eval-every 156 -log-every 39 -wm-warmup 200 -rules bp,fa,wm,kp -out runs/demo

# The GoNB notebooks run headless, each into runs/notebooks/ with its outputs (about a minute each on xla:cpu);
# needs Jupyter, the GoNB kernel and goimports (scripts/run-notebooks.sh names what is missing). `make test` only
# compiles them.
notebooks:
	scripts/run-notebooks.sh

clean:
	rm -rf bin runs .gpu notebooks/runs
