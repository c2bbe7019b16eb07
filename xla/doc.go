// Package xla chooses the GoMLX backend nowt runs on — XLA through a PJRT plugin, or GoMLX's pure-Go
// backend — finds and installs PJRT plugins, lists devices, and sets up multi-device data parallelism.
//
// # Choosing a backend
//
// One spec string chooses the backend (the -backend flag of nowt):
//
//	auto       XLA with the best PJRT plugin found (tpu, then cuda, then cpu; tpu and cuda only when their
//	           hardware is present), else the pure-Go backend, with a one-line notice naming `nowt setup`.
//	go         GoMLX's pure-Go backend (SimpleGo); "go:<options>" passes GoMLX's options, e.g.
//	           "go:ops_sequential" or "go:parallelism=4".
//	xla:cpu    XLA with the CPU plugin (pjrt_c_api_cpu_plugin.so).
//	xla:cuda   XLA with the CUDA plugin (pjrt_c_api_cuda_plugin.so), for NVIDIA GPUs.
//	xla:tpu    XLA with the TPU plugin (pjrt_c_api_tpu_plugin.so), on Cloud TPU VMs.
//
// "xla" alone takes the best plugin found, "xla:<name>" any other plugin found by name, "xla:/abs/path.so"
// a plugin file by path, and PJRT options may follow a comma ("xla:cuda,tf32"). XLA on CPU exposes as many host
// devices as the caller asks NewFor for (nowt's -devices: 1 unless a run splits its batches, the plugin's own 4
// for -devices -1), or n with "xla:cpu,devices=<n>" (the plugin's cpu_device_count), to run or try the
// data-parallel path on one machine; host devices a run does not use slow it down (NewFor). On the CPU plugin with
// one device, float32 convolutions run through the plugin's oneDNN convolution (OneDNNConvOption, with the GoMLX of
// third_party/; Engine's line says "oneDNN convolutions"; feedback's layers then fold their weight gradients for
// it, OneDNNConvolutions), once a probe shows the plugin runs it;
// "xla:cpu,noonednn_conv" keeps XLA's own. In a binary built with the onednn tag (make adds it where
// libdnnl-dev is installed), the weight gradients run through oneDNN's backward-weights primitive, which nowt
// registers with the plugin as an FFI handler (OneDNNBackwardWeightsOption, package onednnbw; Engine's line says
// "oneDNN convolutions and backward weights"), once a probe shows the plugin runs it;
// "xla:cpu,noonednn_bwd_weights" keeps oneDNN's forward convolution for them. An empty spec means
// $GOMLX_BACKEND, then "auto". Select resolves a spec without loading anything; New creates the backend.
// Asking for "xla:<plugin>" when the plugin is not found is an error naming the folders searched and
// `nowt setup`.
//
// Plugins are found by file name (pjrt_c_api_<name>_plugin.so, pjrt-plugin-<name>.so, pjrt_plugin_<name>.so) in
// the folders go-xla searches (see SearchPaths): $PJRT_PLUGIN_LIBRARY_PATH if set, else ~/.local/lib/go-xla
// (and its nvidia/ subfolder), /usr/local/lib/go-xla, the older gomlx/pjrt folders, $LD_LIBRARY_PATH and
// /etc/ld.so.conf. Finding a plugin does not load it; New loads the very file found.
//
// Importing this package switches GoMLX's plugin auto-installer off (xla.EnableAutoInstall(false) in GoMLX's
// backends/xla): GoMLX would otherwise try to download plugins whenever an XLA backend is created.
// Plugins are installed only by Install (`nowt setup`), into ~/.local/lib/go-xla, with go-xla's installer.
// The XLA backend needs cgo and is compiled in on linux/amd64; elsewhere "auto" gives the pure-Go backend.
//
// New runs the CPU plugin with its XNNPACK kernels off (--xla_cpu_use_xnnpack=false appended to $XLA_FLAGS,
// unless $XLA_FLAGS already names that flag): with them on, a dot by a weight buffer allocated where a freed one
// was can use the freed one's values, and GoMLX frees weight buffers every training step (docs/upstream.md). On a
// CPU with AVX-512 it also has the plugin compile for 512-bit vectors (--xla_cpu_prefer_vector_width=512, XLA's
// default being 256, unless $XLA_FLAGS sets a width): the loops XLA writes itself run faster.
//
// New creates every PJRT client with the asynchronous signals (SIGINT, SIGTERM, SIGPROF, ...) blocked on the
// creating thread, so that the plugin's thread pools inherit that mask and such signals reach only Go's threads:
// the CPU plugin corrupts its heap when a signal interrupts one of its matrix products, which made Go's CPU
// profiler (`go test -cpuprofile`) abort every XLA run within a second (docs/upstream.md). Profiles of an XLA run
// show Go's threads only.
//
// # Initial values: drawn on the host
//
// InitializeOnHost (and InitializeOnHostFor, for a context.Exec function) gives a context's variables their
// initial values with the pure-Go backend, in host memory, before any engine runs a graph on them; nowt's trainer
// does so for every run. A seed then names the same initial network on pure Go, XLA on CPU, CUDA and TPU (GoMLX's
// default, initialising on the engine that first runs a graph, draws from that engine's generator: Go's PCG on
// pure Go, XLA's own elsewhere), and XLA compiles no initialisation graph, whose random draws made it a large
// share of the compilation of small runs and tests.
//
// # Running on NVIDIA GPUs
//
// `nowt setup -plugin cuda` (or `-plugin auto` on a machine with an NVIDIA GPU) installs the CUDA plugin with the NVIDIA libraries it needs into
// ~/.local/lib/go-xla/nvidia (from JAX's PyPI packages); then `-backend xla:cuda` (or "auto"). A JAX
// installation's plugin can be used instead: scripts/gpu-check.sh shows how (link its xla_cuda_plugin.so as
// pjrt_c_api_cuda_plugin.so in a folder on $PJRT_PLUGIN_LIBRARY_PATH and put the pip NVIDIA libraries on
// $LD_LIBRARY_PATH).
//
// The GPU check, for a machine without Go: `make gpu-build` here (.gpu/: gzipped nowt and feedback/models test
// binaries and the CIFAR-10 archive), carry .gpu/ and scripts/ there, run scripts/gpu-check.sh. It loads the
// plugin (`nowt devices`), runs the numerical tests on the GPU ($NOWT_TEST_BACKEND=xla:cuda, see TestBackend: every rule's layer gradients
// against the plain-Go reference, both convolution implementations through a ResNet-18, finite differences)
// benchmarks ResNet-18/50 under bp and kp, and runs a CIFAR-10 comparison, each stage within its own time limit.
//
// # Running on a Cloud TPU VM
//
//  1. On the TPU VM (single host, e.g. v4-8, v5e-8, v6e-8), build nowt (Go and gcc; cgo on), then install the
//     TPU plugin: `nowt setup -plugin tpu` (Install(ctx, "tpu", opts, w)) downloads libtpu from PyPI and
//     installs it as ~/.local/lib/go-xla/pjrt_c_api_tpu_plugin.so. Without internet, link an existing
//     libtpu.so (from `pip install libtpu` or jax[tpu]) as pjrt_c_api_tpu_plugin.so into a folder on
//     $PJRT_PLUGIN_LIBRARY_PATH.
//  2. Run with `-backend xla:tpu` ("auto" also picks it when /dev/accel* or /dev/vfio/<n> exist).
//     `nowt devices` (Describe) should list one device per TPU chip (as PJRT reports them). Where neither
//     exists, a TPU plugin is refused at once, without loading it: libtpu would first ask the Google Cloud
//     metadata server for the TPU topology, about 30 s a key for many keys (libtpu 0.0.52 off a TPU VM had not
//     returned after 10 minutes), which looks like a hang; TPU_SKIP_MDS_QUERY=1 (with libtpu's topology
//     variables) loads it anyway.
//  3. Only one process may hold the TPU: stop any other JAX/PyTorch process first (libtpu's lock is
//     /tmp/libtpu_lockfile).
//
// Multi-host TPU slices (v4-16 and up, several VMs) are not supported: GoMLX v0.26 uses the devices addressable
// from one process and has no multi-process (multi-host) set-up.
//
// # Several devices: data parallelism
//
// A backend may have several devices (NumDevices): XLA has one per GPU or TPU chip; the pure-Go backend has
// one. By default GoMLX compiles and runs everything on device 0 only; using more takes distributed execution,
// which GoMLX v0.26 offers (package github.com/gomlx/gomlx/pkg/core/distributed) with two strategies:
//
//   - distributed.AutoSharding (recommended): the model is written as for one device; inputs carry a
//     distributed.ShardingSpec on a distributed.DeviceMesh, and XLA's Shardy partitions the program and adds
//     the collective operations. Only the XLA backend supports it.
//   - distributed.SPMD (experimental in GoMLX): the same program runs on every device on its own slice, and the
//     model must add cross-device operations itself (g.Distributed().AllReduceOne(x, backends.ReduceOpSum))
//     where it needs them.
//
// For splitting a batch over devices (data parallelism), NewDataParallel returns the AutoSharding set-up:
// a 1-D mesh with axis "batch" over the devices, the ShardingSpec that splits axis 0 of inputs and labels,
// and the device assignment. nowt's trainer uses it when asked for several devices (trainer.Config.Devices,
// the -devices flag of `nowt train`, `compare` and `bench`: -1 all devices, n the first n), as GoMLX's
// examples/adult/demo/main.go does:
//
//	dp, err := xla.NewDataParallel(backend, 0) // 0: all devices; fails with fewer than 2 or without XLA
//	perDevice, err := dp.PerDeviceBatch(globalBatch)
//	source := ... // a train.Dataset yielding batches of perDevice examples
//	specs := []*distributed.ShardingSpec{dp.BatchSharding}
//	ds, err := datasets.NewDistributedAccumulator(backend, source, dp.Strategy, specs, specs, dp.DeviceAssignment)
//	metrics, err := train.NewLoop(trainer).RunSteps(ds, steps) // ds is a train.DistributedDataset: runs distributed
//
// datasets.NewDistributedAccumulator gathers NumDevices consecutive batches from the source into one global
// batch, one slice per device, and prefetches it onto the devices; nowt's input pipeline makes those
// consecutive per-device batches exactly the one-device run's global batch (tested), so a run sees the same
// examples in the same order whatever the number of devices (results differ only by floating-point summation
// order), and a run may resume on another number of devices.
//
// With AutoSharding the variables (weights, optimizer state, feedback matrices, batch-norm moving averages) are
// replicated on every device, the loss and its gradients are over the whole global batch, and batch normalization's
// batch mean and variance are computed over the whole global batch (XLA inserts the all-reduce), so training
// matches one device with the global batch ("synchronized" batch norm). Under the SPMD strategy GoMLX's batch
// norm would instead use per-device statistics, since it does not reduce across devices.
//
// In nowt's trainer the training step and the weight-mirror steps are distributed: a mirror step runs
// replicated on every device (each draws the same noise from the replicated RNG state and updates its own copy
// of B), so that W and B never leave the devices. The alignment metrics and the test-set evaluation, every few
// hundred steps, run on device 0: a variable whose value lives on all devices is read from its first replica
// (GoMLX merges replicated values, through the host), which is correct but leaves the other devices idle then.
//
// Launching on a Cloud TPU VM (single host): build nowt there (Go, gcc, cgo), `nowt setup -plugin tpu` (or link
// libtpu.so as described above), `nowt devices -backend xla:tpu` to see the chips, then for instance
//
//	nowt train -backend xla:tpu -devices -1 -model resnet18 -rule kp -dataset imagefolder -data /mnt/imagenet \
//	    -augment -batch 1024 -epochs 90 -lr 0.4 -schedule step -milestones 30,60,80 -wd 1e-4 -out runs/r18-kp
//
// Limits, as of GoMLX v0.26: the pure-Go backend has no distributed execution (one device); multi-host slices
// are not supported.
//
// What is tested without accelerators: on XLA on CPU with 4 host devices ("xla:cpu,devices=4", make test's XLA
// pass) the whole data-parallel path of nowt's trainer runs through XLA's own SPMD partitioner, and a run on 2
// or 4 devices, or resumed after a crash on another number of devices, logs the same losses, accuracy and
// angles as on one device (trainer's TestDataParallelTrainsLikeOneDevice); the per-device batches join into
// the one-device global batches (TestDataParallelFeedsGlobalBatches). Not tested here: speed on several
// accelerators; no machine with several accelerators has been available to nowt's developers.
package xla
