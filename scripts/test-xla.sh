#!/usr/bin/env bash
# make test's second pass: the numerical and training tests again, on XLA on CPU (the PJRT plugin `nowt setup`
# installs). Without the plugin it says so and passes, unless NOWT_REQUIRE_XLA is set (as .ci/run sets it once a
# plugin installed and loaded there), so that the XLA path cannot silently stop being tested.
#
# What runs on XLA (the pure-Go pass runs everything):
#   feedback   every test: layer gradients of every rule, dense and conv geometries, both conv implementations
#              (native XLA convolution with Reverse included), bp against autodiff, finite differences, rule dynamics
#   models     every test but TestConvImplementationsAgree/resnet20 (XLA compiles the patches form slowly: ~2.5 min
#              for one ResNet-20 graph; its resnet8 case, ResNet-20's layers with one block a stage, and ResNet-18,
#              which adds the stem, max-pool and strided 1×1 shortcuts, run on XLA, and ResNet-20's agreement is
#              held on pure Go) and TestPairedInitialisation's CNN and ResNet-20 cases (the MLP case checks
#              XLA's random generator; the rest is backend-free);
#              every rule's fit of a small ResNet runs on a ResNet-8 (ResNet-20's layers, one block a stage),
#              which XLA compiles in under half ResNet-20's time (each rule's fit there is mostly compilation)
#   trainer    every test, data parallelism on 2 and 4 XLA host devices (XLA's SPMD partitioner, an MLP and a
#              ResNet-8 with batch norm) and a bfloat16 CIFAR-10 ResNet-8 run against float32 among them, but
#              the fourteen whose subject is the same on every backend and skip themselves on XLA (a comparison's,
#              the run folder's and the overflow guard's bookkeeping, storage errors, unreadable checkpoints, a
#              damaged config.json, checkpoint sizes, the result after a failed step)
#   layers     every test: batch norm's running statistics, the gather max-pool against XLA's own MaxPool and
#              its gradient against finite differences, the shortcut subsampling
#   xla        TestDotWithFreshOperands: products by freshly allocated weights (the plugin's XNNPACK kernels
#              reused stale packed weights; nowt switches them off); TestClientErrorSaysThePluginLoads: a backend
#              error names the loaded plugin's PJRT C API version; TestInitializeOnHost: values drawn on the host
#              run on XLA (trainer's TestOneSeedOneNetworkOnEveryEngine: a run starts from pure Go's network)
#   cmd/nowt   the end-to-end train + exact resume of every rule, the compare run, bench on 2 host devices, devices
#              listing and errors
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
mkdir -p bin
$GO build -o bin/nowt ./cmd/nowt
if ! probe=$(GOMLX_BACKEND= bin/nowt devices -backend xla:cpu 2>&1); then
	if [ -n "${NOWT_REQUIRE_XLA:-}" ]; then
		echo "test-xla: NOWT_REQUIRE_XLA is set but the XLA CPU plugin does not load:" >&2
		echo "$probe" >&2
		exit 1
	fi
	echo "test-xla: no XLA CPU plugin (run \`bin/nowt setup\`): skipping the XLA pass; the tests ran on pure Go only"
	exit 0
fi
echo "test-xla: $(echo "$probe" | grep '^description:' | sed 's/^description: *//')"
export NOWT_TEST_BACKEND=xla:cpu GOMLX_BACKEND=
# One go test for the four packages, so that two of them always run side by side (go test's -p is the core
# count), instead of models waiting for the slower of feedback and trainer.
$GO test -count=1 -timeout 20m ./feedback ./trainer ./models ./layers -skip 'TestConvImplementationsAgree/resnet20'
$GO test -count=1 -timeout 5m ./xla -run 'TestDotWithFreshOperands|TestClientErrorSaysThePluginLoads|TestInitializeOnHost'
$GO test -count=1 -timeout 20m ./cmd/nowt -run 'TestTrainResumeEveryRule|TestResumeExtends|TestCompareTiny|TestBenchTable|TestHelpAndListings|TestCommandErrors'
