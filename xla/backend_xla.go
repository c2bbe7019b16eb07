//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	xlabackend "github.com/gomlx/gomlx/backends/xla" // Registers the "xla" backend.
	"github.com/pkg/errors"
	"golang.org/x/sys/cpu"
)

// xlaCompiledIn tells whether GoMLX's XLA backend is part of this binary.
const xlaCompiledIn = true

// Importing this package switches off GoMLX's implicit plugin auto-installer (which downloads plugins whenever
// an XLA backend is created or its plugins listed): installing is only done explicitly, by Install.
func init() {
	xlabackend.EnableAutoInstall(false)
}

// newXLA creates the XLA backend for config "xla:<plugin>[,<options>]" from the plugin path found; a CPU plugin
// without a "devices=<n>" option exposes devices host devices (AllDevices: the plugin's default), see NewFor.
func newXLA(config string, devices int) (backends.Backend, error) {
	xlabackend.EnableAutoInstall(false)
	_, rest, _ := strings.Cut(config, ":")
	name, opts, _ := strings.Cut(rest, ",")
	var optList []string
	if opts != "" {
		optList = strings.Split(opts, ",")
	}
	path := name
	if !filepath.IsAbs(name) {
		paths := SearchPaths()
		p, ok := findPlugin(findPlugins(paths), name)
		if !ok {
			return nil, errors.WithMessagef(notFoundError(name, paths), "creating backend %q", config)
		}
		path = p.Path
	}
	if err := prepareToLoad(path); err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q", config)
	}
	if isCPUPlugin(path) {
		_ = keepHostHeap() // a speed setting: where glibc refuses it, runs train as before
		keepLargeBlocks()
	}
	// GoMLX enables shared host/device buffers only for a plugin named "cpu"; keep that when loading by path.
	if isCPUPlugin(path) && !hasOption(optList, "shared_buffers") && !hasOption(optList, "noshared_buffers") {
		optList = append(optList, "shared_buffers")
	}
	optList, clientOptions, err := clientOptionsOf(optList)
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q", config)
	}
	if clientOptions == nil && isCPUPlugin(path) && devices != AllDevices {
		clientOptions = pjrt.NamedValuesMap{cpuDeviceCountOption: int64(devices)}
	}
	oneDevice := clientOptions != nil && clientOptions[cpuDeviceCountOption] == int64(1)
	optList, oneDNNAdded, err := withOneDNNConv(optList, isCPUPlugin(path), oneDevice)
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q", config)
	}
	optList, backwardWeightsAdded, err := withBackwardWeights(optList, path)
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q", config)
	}
	create := func(opts []string) (backends.Backend, error) {
		return newXLAWithOptions(strings.Join(append([]string{path}, opts...), ","), clientOptions)
	}
	b, err := create(optList)
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q from plugin %s%s", config, path, loadedButNoClient(err, path))
	}
	// Each probed option: the probe, the registry of the backends that pass it, what the plugin is found not to
	// run, and what a fallback drops (the backward weights need oneDNN's convolution).
	probed := []struct {
		option   string
		added    bool
		probe    func(backends.Backend) error
		registry *sync.Map
		runs     string
		drop     []string
	}{
		{OneDNNConvOption, oneDNNAdded, oneDNNProbe, &oneDNNBackends, "oneDNN's convolution",
			[]string{OneDNNConvOption, OneDNNBackwardWeightsOption}},
		{OneDNNBackwardWeightsOption, backwardWeightsAdded, oneDNNBackwardWeightsProbe, &backwardWeightsBackends,
			"the backward-weights handler", []string{OneDNNBackwardWeightsOption}},
	}
	for _, p := range probed {
		if !hasOption(optList, p.option) {
			continue
		}
		if probeErr := p.probe(b); probeErr != nil {
			b.Finalize()
			if !p.added {
				return nil, errors.WithMessagef(probeErr, "creating backend %q: option %q: the plugin %s does not run "+
					"%s (drop the option)", config, p.option, path, p.runs)
			}
			// The plugin lacks the call (a build without oneDNN) or refused the handler: as without the option.
			for _, opt := range p.drop {
				optList = withoutOption(optList, opt)
			}
			if b, err = create(optList); err != nil {
				return nil, errors.WithMessagef(err, "creating backend %q from plugin %s", config, path)
			}
		}
	}
	// The backend that stays is in the registry of every probed option it kept.
	for _, p := range probed {
		if hasOption(optList, p.option) {
			forgetFinalized(p.registry)
			p.registry.Store(b, struct{}{})
		}
	}
	forgetFinalized(&pluginPaths)
	pluginPaths.Store(b, path)
	return b, nil
}

// newXLAWithOptions creates GoMLX's XLA backend with PJRT client create options, turning panics into errors. The
// client is created with asynchronous signals blocked, so that the plugin's threads never take one
// (withAsyncSignalsBlocked).
func newXLAWithOptions(config string, options pjrt.NamedValuesMap) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.Errorf("creating backend \"xla:%s\": %v", config, r)
		}
	}()
	var xb backends.Backend
	if blockErr := withAsyncSignalsBlocked(func() { xb, err = xlabackend.NewWithOptions(config, options) }); blockErr != nil {
		return nil, blockErr
	}
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend \"xla:%s\"", config)
	}
	return xb, nil
}

// loadedButNoClient tells, for an error creating a backend from the plugin at path, whether the plugin itself
// loaded (and which PJRT C API version it reports), so that a plugin this binary cannot load is told apart from a
// loaded one that found no device or refused its options: " (the plugin loads, PJRT C API v0.116; its client could
// not be created...)", or "" when the plugin did not load.
func loadedButNoClient(err error, path string) string {
	if strings.Contains(err.Error(), "failed to dynamically load") {
		return "" // dlopen failed: loading again would only repeat its warning.
	}
	plugin, loadErr := pjrt.GetPlugin(path)
	if loadErr != nil {
		return ""
	}
	major, minor := plugin.Version()
	hint := ""
	switch {
	case isCUDAPlugin(path):
		hint = ": is a GPU visible to this process (nvidia-smi, $CUDA_VISIBLE_DEVICES) and its driver loaded?"
	case isTPUPlugin(path):
		hint = ": is this a Cloud TPU VM, with no other process holding its TPU (libtpu's /tmp/libtpu_lockfile)?"
	}
	return fmt.Sprintf(" (the plugin loads, PJRT C API v%d.%d; its client could not be created%s)", major, minor, hint)
}

// clientOptionsOf takes nowt's own options out of a plugin option list and returns them as PJRT client create
// options: "devices=<n>" becomes the CPU plugin's "cpu_device_count" (how many host devices XLA on CPU exposes,
// e.g. "xla:cpu,devices=4" for data parallelism tests on one machine).
func clientOptionsOf(opts []string) (rest []string, client pjrt.NamedValuesMap, err error) {
	for _, o := range opts {
		key, value, _ := strings.Cut(strings.TrimSpace(o), "=")
		if key != DevicesOption {
			rest = append(rest, o)
			continue
		}
		n, err := parseDeviceCount(value)
		if err != nil {
			return nil, nil, err
		}
		client = pjrt.NamedValuesMap{cpuDeviceCountOption: int64(n)}
	}
	return rest, client, nil
}

// cpuDeviceCountOption is the CPU plugin's PJRT client create option for how many host devices it exposes.
const cpuDeviceCountOption = "cpu_device_count"

func hasOption(opts []string, opt string) bool {
	for _, o := range opts {
		if strings.TrimSpace(o) == opt {
			return true
		}
	}
	return false
}

// withoutOption returns opts less every entry hasOption would match to opt.
func withoutOption(opts []string, opt string) []string {
	return slices.DeleteFunc(slices.Clone(opts), func(o string) bool { return strings.TrimSpace(o) == opt })
}

// setCUDADataDir points XLA at the NVIDIA folder go-xla's installer puts beside the CUDA plugin
// (<dir>/nvidia/pjrt_c_api_cuda_plugin.so → <dir>/nvidia, holding bin/ptxas), unless XLA_FLAGS already sets
// --xla_gpu_cuda_data_dir. go-xla v0.1.4 sets this flag itself, but to a hard-coded developer path
// (pkg/pjrt/cuda_linux.go, cudaPluginCheckDrivers); setting it first makes go-xla leave it alone.
func setCUDADataDir(pluginPath string) {
	if xlaFlagGiven(cudaDataDirFlag) {
		return
	}
	dir := filepath.Join(filepath.Dir(filepath.Dir(pluginPath)), "nvidia")
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return
	}
	appendXLAFlag(cudaDataDirFlag, dir)
}

// cudaDataDirFlag is the XLA flag naming the CUDA folder (holding nvvm/libdevice and bin/ptxas).
const cudaDataDirFlag = "--xla_gpu_cuda_data_dir"

// XNNPACKFlag is the XLA flag that turns the CPU plugin's XNNPACK kernels on or off.
const XNNPACKFlag = "--xla_cpu_use_xnnpack"

// disableXNNPACK switches off the CPU plugin's XNNPACK kernels (adding --xla_cpu_use_xnnpack=false to XLA_FLAGS)
// when pluginPath is the CPU plugin, unless XLA_FLAGS already says what to do with them. With XNNPACK on, the
// plugin (v0.81, jax 0.8's XLA) can multiply by stale weights: a dot whose right-hand side is a new buffer at the
// address of a freed one may use the packed copy of the freed buffer's values. GoMLX frees weight buffers every
// training step, so evaluations and other forward-only programs came out wrong at random (an in-run test
// evaluation a few tenths of a point off its checkpoint's); see docs/upstream.md and TestDotWithFreshOperands.
// XLA reads XLA_FLAGS once, when the first client is created, so this must run before it.
func disableXNNPACK(pluginPath string) {
	if !isCPUPlugin(pluginPath) || xlaFlagGiven(XNNPACKFlag) {
		return
	}
	appendXLAFlag(XNNPACKFlag, "false")
}

// VectorWidthFlag is the XLA flag that sets the vector width, in bits, the CPU plugin compiles its loops for.
const VectorWidthFlag = "--xla_cpu_prefer_vector_width"

// hostHasAVX512 tells whether this machine's CPU has AVX-512 (a variable for tests).
var hostHasAVX512 = cpu.X86.HasAVX512F

// preferWideVectors makes the CPU plugin compile its loops for 512-bit vectors (adding
// --xla_cpu_prefer_vector_width=512 to XLA_FLAGS) on a CPU with AVX-512, unless XLA_FLAGS already sets a width.
// XLA's default there is 256 bits, against the clock slowdown of older Intel cores under 512-bit instructions.
// On the ResNets the elementwise loops and batch norm's sums are the part of the step that XLA compiles itself:
// with 512 bits the stage-1 sums' kernel took 2.1 % of ResNet-20's step instead of 5.9 %, and the step 0.95 of
// its time (median of six alternated rounds on an AMD EPYC, docs/perf-analysis.md §22). It must run before the
// first client is created, as disableXNNPACK.
func preferWideVectors(pluginPath string) {
	if !isCPUPlugin(pluginPath) || !hostHasAVX512 || xlaFlagGiven(VectorWidthFlag) {
		return
	}
	appendXLAFlag(VectorWidthFlag, "512")
}

// xlaFlagGiven reports whether $XLA_FLAGS already names flag ("--name"), with any value.
func xlaFlagGiven(flag string) bool {
	return strings.Contains(os.Getenv(xlaFlagsEnv), strings.TrimPrefix(flag, "--"))
}

// appendXLAFlag adds flag=value to $XLA_FLAGS.
func appendXLAFlag(flag, value string) {
	_ = os.Setenv(xlaFlagsEnv, strings.TrimSpace(os.Getenv(xlaFlagsEnv)+" "+flag+"="+value))
}

// prepareToLoad does what must come before the plugin file at path is loaded, for newXLA and checkLoads alike:
// refuses a TPU plugin where no TPU is (checkTPUPresent) and a library cut short (checkPluginFile), then sets the
// XLA flags that XLA reads once, when the first client is created (setCUDADataDir, disableXNNPACK,
// preferWideVectors).
func prepareToLoad(path string) error {
	if err := checkTPUPresent(path); err != nil {
		return err
	}
	if err := checkPluginFile(path); err != nil {
		return err
	}
	if isCUDAPlugin(path) {
		setCUDADataDir(path)
	}
	disableXNNPACK(path)
	preferWideVectors(path)
	return nil
}

// checkLoads loads the PJRT plugin file at path (absolute), creates a client and returns GoMLX's description of
// it (plugin, PJRT API version, devices).
func checkLoads(path string) (string, error) {
	if err := prepareToLoad(path); err != nil {
		return "", err
	}
	b, err := newWithConfig("xla:" + path)
	if err != nil {
		return "", err
	}
	defer b.Finalize()
	desc := b.Description()
	if _, after, ok := strings.Cut(desc, " - "); ok {
		desc = after
	}
	return desc, nil
}
