# nowt: learning without weight transport, on GoMLX.
GO       ?= go
PKGS     ?= ./...
# Fuzz targets run briefly inside `make test` (seed corpora always run as ordinary tests).
FUZZTIME ?= 3s
BENCHTIME ?= 3x

.PHONY: all build gpu-build test test-xla lint vet fmt bench demo fuzz clean

all: build

build:
	$(GO) build -o bin/nowt ./cmd/nowt

# What scripts/gpu-check.sh runs on a GPU machine that has no Go: nowt and the feedback and models test
# binaries, stripped (~60 MB in bin/).
gpu-build:
	$(GO) build -ldflags "-s -w" -o bin/nowt ./cmd/nowt
	$(GO) test -c -ldflags "-s -w" -o bin/feedback.test ./feedback
	$(GO) test -c -ldflags "-s -w" -o bin/models.test ./models

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
	@for t in $$(grep -rhoE '^func (Fuzz[A-Za-z0-9_]+)' --include='*_test.go' input | sed 's/func //'); do \
		echo "fuzz $$t ($(FUZZTIME))"; \
		$(GO) test ./input -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./feedback ./input ./models

demo: build
	rm -rf runs/demo
	./bin/nowt train -model mlp -hidden 500 -activation relu -rule kp -dataset mnist -epochs 3 -out runs/demo

clean:
	rm -rf bin runs
