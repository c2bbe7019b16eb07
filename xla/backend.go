package xla

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // Registers the pure-Go backend "go".
	"github.com/pkg/errors"
)

// New creates the backend for spec: it calls Select, writes the notice (if any) as one line to w (if w is
// non-nil), and creates the backend.
//
// For the XLA backend the plugin is loaded from the path Plugins found (so what Select decided is what is
// loaded, even if $PJRT_PLUGIN_LIBRARY_PATH changed after the program started), and GoMLX's plugin
// auto-installer is never run. XLA on CPU exposes one host device unless spec's "devices=<n>" option asks for
// more: New is NewFor(spec, 1, w).
func New(spec string, w io.Writer) (backends.Backend, error) {
	return NewFor(spec, 1, w)
}

// AllDevices stands, as NewFor's devices, for every device the backend has (nowt's -devices -1).
const AllDevices = -1

// NewFor is New for a caller that will use devices devices of the backend (n ≥ 1, or AllDevices). XLA's CPU
// plugin exposes as many host devices as its client is created with; without a "devices=<n>" option in spec
// (which always wins) it is created with devices, and with AllDevices the plugin keeps its own default (4 in
// XLA's PJRT C API for CPU). Every host device shares the same cores, and the ones a run does not use still cost
// it: on 2 cores the 784-500-10 MLP's step ran about 7 % faster with 1 host device than with the plugin's 4
// (docs/perf-analysis.md §10). Other backends ignore devices: their hardware decides.
func NewFor(spec string, devices int, w io.Writer) (backends.Backend, error) {
	if devices < 1 && devices != AllDevices {
		return nil, errors.Errorf("creating backend %q for %d devices: want 1 or more, or %d for all", spec, devices,
			AllDevices)
	}
	config, notice, err := Select(spec)
	if err != nil {
		return nil, errors.WithMessage(err, "selecting the backend")
	}
	if notice != "" && w != nil {
		if _, err := fmt.Fprintln(w, notice); err != nil {
			return nil, errors.Wrap(err, "writing the backend notice")
		}
	}
	if config == "xla" || strings.HasPrefix(config, "xla:") {
		return newXLA(config, devices)
	}
	if config == SpecGo {
		config = DefaultGoConfig
	}
	return newWithConfig(config)
}

// DefaultGoConfig is the pure-Go backend configuration used for a plain "go" (or an "auto" that falls back to
// pure Go). The backend's default parallel op scheduler deadlocks on training graphs (its worker pool fills up
// with ops waiting for their own matmul sub-tasks; reproduced in nowt's tests on 2 cores), so nowt runs ops one
// at a time, each op still using every core. Pass "go:<options>" explicitly to choose otherwise.
const DefaultGoConfig = "go:ops_sequential"

// newWithConfig calls backends.NewWithConfig, turning its panics (unregistered backend) into errors.
func newWithConfig(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.Errorf("creating backend %q: %v", config, r)
		}
	}()
	b, err = backends.NewWithConfig(config)
	if err != nil {
		return nil, errors.WithMessagef(err, "creating backend %q", config)
	}
	return b, nil
}

// hasDistributedExecution reports whether b runs GoMLX's distributed (AutoSharding) programs: XLA, and the
// only XLA.
func hasDistributedExecution(b backends.Backend) bool {
	return b.Name() == "xla"
}

// pluginPaths remembers the plugin file of each XLA backend created by New, for Describe.
var pluginPaths sync.Map // backends.Backend -> string

// forgetFinalized drops the backends that have been finalized from registry (pluginPaths, oneDNNBackends): New
// calls it before it adds one, so that a process that creates and finalizes backends over and over (the tests, a
// notebook) keeps no more entries than it has live backends, plus those finalized since the last New.
func forgetFinalized(registry *sync.Map) {
	registry.Range(func(key, _ any) bool {
		if b, ok := key.(backends.Backend); !ok || b.IsFinalized() {
			registry.Delete(key)
		}
		return true
	})
}

// NumDevices returns the number of devices of the backend (0 for a nil backend).
// The pure-Go backend always has 1; XLA has one per addressable PJRT device (e.g. each GPU, each TPU core/chip).
func NumDevices(b backends.Backend) int {
	if b == nil || b.IsFinalized() {
		return 0
	}
	return b.NumDevices()
}

// PluginPath returns the PJRT plugin file an XLA backend was created from, or "" if b is not an XLA backend
// (or its plugin path is unknown, or b has been finalized).
func PluginPath(b backends.Backend) string {
	if b == nil || b.IsFinalized() {
		return ""
	}
	if p, ok := pluginPaths.Load(b); ok {
		return p.(string)
	}
	if b.Name() != "xla" {
		return ""
	}
	// Backends created elsewhere: GoMLX's description reads "xla:<plugin> - ...".
	desc := strings.TrimPrefix(b.Description(), "xla:")
	name, _, _ := strings.Cut(desc, " ")
	name, _, _ = strings.Cut(name, ",")
	if strings.HasPrefix(name, "/") {
		return name
	}
	if p, ok := findPlugin(Plugins(), name); ok {
		return p.Path
	}
	return ""
}

// xlaFlagsEnv is the environment variable XLA reads its flags from.
const xlaFlagsEnv = "XLA_FLAGS"

// Describe writes the backend's name, description, number of devices with each device's description, and,
// for XLA, the PJRT plugin file and the XLA flags its compiler runs with ($XLA_FLAGS with the flags nowt adds
// for the plugin: see prepareToLoad).
func Describe(w io.Writer, b backends.Backend) error {
	if b == nil {
		return errors.New("describing backend: nil backend")
	}
	if b.IsFinalized() {
		return errors.Errorf("describing backend %q: it has been finalized", b.Name())
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "backend:     %s\n", b.Name())
	fmt.Fprintf(&sb, "description: %s\n", b.Description())
	if p := PluginPath(b); p != "" {
		fmt.Fprintf(&sb, "plugin:      %s\n", p)
		flags := strings.TrimSpace(os.Getenv(xlaFlagsEnv))
		if flags == "" {
			flags = "(none)"
		}
		fmt.Fprintf(&sb, "xla flags:   %s\n", flags)
	}
	n := b.NumDevices()
	fmt.Fprintf(&sb, "devices:     %d\n", n)
	for i := range n {
		fmt.Fprintf(&sb, "  #%d: %s\n", i, b.DeviceDescription(backends.DeviceNum(i)))
	}
	if n > 1 && hasDistributedExecution(b) {
		fmt.Fprintf(&sb, "data parallelism: -devices -1 splits each batch over all %d devices\n", n)
	} else {
		sb.WriteString("data parallelism: not available (one device, or a backend without distributed execution)\n")
	}
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return errors.Wrapf(err, "describing backend %q", b.Name())
	}
	return nil
}

// Engine is a one-line description of the engine a run uses, e.g. "xla:cpu (PJRT plugin
// /root/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so v0.81, 4 devices, oneDNN convolutions)" or "go (pure Go, 1
// device)".
func Engine(b backends.Backend) string {
	if b == nil || b.IsFinalized() {
		return "(no backend)"
	}
	n := b.NumDevices()
	devices := fmt.Sprintf("%d device", n)
	if n != 1 {
		devices += "s"
	}
	if p := PluginPath(b); p != "" {
		name := pluginNameFromPath(p)
		if name == "" {
			name = p
		}
		version := ""
		for _, f := range strings.Fields(b.Description()) {
			if len(f) > 1 && f[0] == 'v' && f[1] >= '0' && f[1] <= '9' {
				version = " " + f
			}
		}
		convolutions := ""
		if OneDNNConvolutions(b) {
			convolutions = ", oneDNN convolutions"
			if OneDNNBackwardWeights(b) {
				convolutions += " and backward weights"
			}
		}
		return fmt.Sprintf("xla:%s (PJRT plugin %s%s, %s%s)", name, p, version, devices, convolutions)
	}
	if b.Name() == "go" || strings.HasSuffix(b.Name(), "(go)") {
		return fmt.Sprintf("go (pure Go, %s)", devices)
	}
	return fmt.Sprintf("%s (%s)", b.Name(), devices)
}

// CompiledIn reports whether GoMLX's XLA backend is part of this binary (it needs cgo on linux/amd64); without
// it only the pure-Go backend runs.
func CompiledIn() bool { return xlaCompiledIn }

// IsCPU reports whether b is an XLA backend on the CPU PJRT plugin (xla:cpu).
func IsCPU(b backends.Backend) bool {
	p := PluginPath(b)
	return p != "" && isCPUPlugin(p)
}
