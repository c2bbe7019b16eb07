//go:build linux && amd64

package xla

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gomlx/go-xla/pkg/installer"
	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/pkg/errors"
)

// InstallDir returns the user folder plugins are installed into: ~/.local/lib/go-xla (the first folder in
// SearchPaths when $PJRT_PLUGIN_LIBRARY_PATH is unset). The CUDA plugin goes into its "nvidia" subfolder.
func InstallDir() (string, error) {
	lib, err := installer.DefaultHomeLibPath()
	if err != nil {
		return "", errors.Wrap(err, "finding the user library folder")
	}
	return filepath.Join(lib, "go-xla"), nil
}

// Plugin sources for InstallOptions.Source.
const (
	// SourceAuto tries go-xla's own download first and, for the CPU plugin, the Python package index after it.
	SourceAuto = "auto"
	// SourceGitHub is go-xla's own installer only (GitHub releases for cpu, PyPI wheels for cuda and tpu).
	SourceGitHub = "github"
	// SourcePyPI takes the CPU plugin from the Python package index (CPUPluginPyPIPackage) with pip.
	SourcePyPI = "pypi"
)

// InstallOptions tunes Install.
type InstallOptions struct {
	// Source is where the plugin comes from: SourceAuto ("" too), SourceGitHub or SourcePyPI.
	Source string
	// Force reinstalls a plugin that is already installed and loads.
	Force bool
}

// Install installs a PJRT plugin into InstallDir and checks that it loads; it needs network access (package
// registries are enough for the CPU plugin). Used by `nowt setup` and .ci/run, never by tests.
//
// plugin is "cpu", "cuda" (JAX's CUDA 13 plugin and NVIDIA libraries from PyPI; refused without an NVIDIA GPU),
// "tpu" (libtpu from PyPI; refused without a TPU device, see hasHardware), or "auto"/"" (cpu, plus cuda/tpu when
// that hardware is detected).
// The CPU plugin comes from go-xla's installer (GitHub gomlx/pjrt-cpu-binaries, the version go-xla was tested
// with, pjrt.DefaultCPUVersion) and, where that download fails or its plugin does not load, from the Python
// package index (CPUPluginPyPIPackage, via `pip download --no-deps`; no Python import at run time), installed as
// pjrt_c_api_cpu_plugin.so. A plugin (cpu, cuda or tpu) that is already installed and loads is kept unless
// opts.Force. When $PJRT_PLUGIN_LIBRARY_PATH leaves out InstallDir, a warning on w says that the installed
// plugins will not be found.
//
// Progress lines go to w (if non-nil); go-xla's installer also prints its own progress to stdout.
// ctx is checked before starting and cancels pip; go-xla's own downloads cannot be cancelled.
func Install(ctx context.Context, plugin string, opts InstallOptions, w io.Writer) error {
	if w == nil {
		w = io.Discard
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "installing PJRT plugin %q", plugin)
	}
	dir, err := InstallDir()
	if err != nil {
		return errors.WithMessagef(err, "installing PJRT plugin %q", plugin)
	}
	plugin = strings.ToLower(strings.TrimSpace(plugin))
	source := strings.ToLower(strings.TrimSpace(opts.Source))
	switch source {
	case "":
		source = SourceAuto
	case SourceAuto, SourceGitHub, SourcePyPI:
	default:
		return &InstallArgError{"-source", errors.Errorf("installing PJRT plugin %q: unknown source %q, valid ones are %q, %q and %q",
			plugin, opts.Source, SourceAuto, SourceGitHub, SourcePyPI)}
	}
	switch plugin {
	case "", "auto", "cpu", "cuda", "cuda13", "cuda12", "tpu":
	default:
		return &InstallArgError{"-plugin", errors.Errorf("installing PJRT plugin %q: unknown plugin, valid ones are \"cpu\", \"cuda\", "+
			"\"tpu\" and \"auto\"", plugin)}
	}
	if source == SourcePyPI && plugin != "cpu" {
		return &InstallArgError{"-source", errors.Errorf("installing PJRT plugin %q: source %q only carries the \"cpu\" plugin (cuda and tpu "+
			"come from PyPI through go-xla's installer: use -source %s)", plugin, SourcePyPI, SourceGitHub)}
	}
	defer warnIfNotSearched(dir, w)
	const useCache = true
	verbosity := installer.Normal
	switch plugin {
	case "", "auto":
		_, _ = fmt.Fprintf(w, "nowt: installing PJRT plugins into %s\n", dir)
		if err = installer.AutoInstall(filepath.Dir(dir), useCache, verbosity); err != nil && source == SourceAuto {
			_, _ = fmt.Fprintf(w, "nowt: go-xla's installer failed (%v); installing the CPU plugin from the Python package index\n", err)
			err = installCPU(ctx, dir, SourcePyPI, opts.Force, w)
		}
	case "cpu":
		err = installCPU(ctx, dir, source, opts.Force, w)
	case "cuda", "cuda13", "cuda12":
		if !installer.HasNvidiaGPU() {
			return errors.Errorf("installing PJRT plugin %q: no NVIDIA GPU found (no /dev/nvidia*, nvidia-smi "+
				"failed); the CUDA plugin is only useful with one", plugin)
		}
		version := plugin
		if version == "cuda" {
			version = "cuda13"
		}
		// go-xla's CUDA installer first deletes <dir>/nvidia, a working plugin and its libraries included.
		if keepInstalled(filepath.Join(dir, "nvidia", PluginFileName("cuda")), "CUDA", opts.Force, w) {
			return nil
		}
		_, _ = fmt.Fprintf(w, "nowt: installing PJRT plugin %q into %s\n", plugin, dir)
		err = installer.CudaInstall(version, "latest", dir, useCache, verbosity)
	case "tpu":
		if !hasHardware("tpu") {
			return errors.Errorf("installing PJRT plugin %q: no TPU device found (no /dev/accel*, no /dev/vfio/<n>); "+
				"the TPU plugin (libtpu) is only useful on a Cloud TPU VM", plugin)
		}
		if keepInstalled(filepath.Join(dir, installer.TPUPJRTPluginName), "TPU", opts.Force, w) {
			return nil
		}
		_, _ = fmt.Fprintf(w, "nowt: installing PJRT plugin %q into %s\n", plugin, dir)
		err = installer.TPUInstall("tpu", "latest", dir, useCache, verbosity)
	default: // refused above
		return &InstallArgError{"-plugin", errors.Errorf("installing PJRT plugin %q: unknown plugin", plugin)}
	}
	if err != nil {
		return errors.WithMessagef(err, "installing PJRT plugin %q into %s", plugin, dir)
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "installing PJRT plugin %q", plugin)
	}
	for _, p := range Plugins() {
		_, _ = fmt.Fprintf(w, "nowt: PJRT plugin %q at %s\n", p.Name, p.Path)
	}
	return nil
}

// installCPU installs the CPU plugin into dir from source and checks that it loads.
func installCPU(ctx context.Context, dir, source string, force bool, w io.Writer) error {
	target := filepath.Join(dir, PluginFileName("cpu"))
	if keepInstalled(target, "CPU", force, w) {
		return nil
	}
	var githubErr error
	if source == SourceAuto || source == SourceGitHub {
		// The version go-xla was tested with, as its own auto-installer uses, not the newest release: a newer
		// runtime can change results and speed (docs/perf-analysis.md §1 measured two newer ones slower).
		_, _ = fmt.Fprintf(w, "nowt: installing the CPU PJRT plugin %s into %s with go-xla's installer\n",
			pjrt.DefaultCPUVersion, dir)
		githubErr = installer.CPUInstall(runtime.GOOS+"_"+runtime.GOARCH, pjrt.DefaultCPUVersion, dir, true, installer.Normal)
		if githubErr == nil {
			githubErr = reportLoads(target, "go-xla's installer", w)
			if githubErr == nil {
				return nil
			}
		}
		if source == SourceGitHub {
			return githubErr
		}
		_, _ = fmt.Fprintf(w, "nowt: go-xla's download failed (%v); trying the Python package index\n", githubErr)
	}
	installed, wheel, err := installFromPyPI(ctx, CPUPluginPyPIPackage, dir, PluginFileName("cpu"), w)
	if err != nil {
		if githubErr != nil {
			return errors.WithMessagef(err, "go-xla's download failed (%v), and from the Python package index", githubErr)
		}
		return err
	}
	return reportLoads(installed, "wheel "+wheel, w)
}

// keepInstalled reports whether the plugin file at target is installed, loads and is to be kept (force unset),
// saying so on w.
func keepInstalled(target, kind string, force bool, w io.Writer) bool {
	if force {
		return false
	}
	desc, err := checkLoads(target)
	if err != nil {
		return false
	}
	_, _ = fmt.Fprintf(w, "nowt: the %s plugin is already installed at %s and loads: %s (-force reinstalls it)\n",
		kind, target, desc)
	return true
}

// warnIfNotSearched says on w when $PJRT_PLUGIN_LIBRARY_PATH is set without the install folder dir: go-xla and
// nowt then search only its folders, and would not find what Install put into dir.
func warnIfNotSearched(dir string, w io.Writer) {
	env, set := os.LookupEnv(PluginPathsEnv)
	if !set {
		return
	}
	for _, p := range SearchPaths() {
		if filepath.Clean(p) == dir || filepath.Clean(p) == filepath.Join(dir, "nvidia") {
			return
		}
	}
	_, _ = fmt.Fprintf(w, "nowt: warning: $%s is set (%q), so only its folders are searched for plugins and the "+
		"ones in %s will not be found: add %s (and %s for CUDA) to it, or unset it\n",
		PluginPathsEnv, env, dir, dir, filepath.Join(dir, "nvidia"))
}

// reportLoads loads the plugin at p, prints what was installed from where, and returns an error if it does not load.
func reportLoads(p, from string, w io.Writer) error {
	desc, err := checkLoads(p)
	if err != nil {
		return errors.WithMessagef(err, "the plugin installed at %s (from %s) does not load", p, from)
	}
	_, _ = fmt.Fprintf(w, "nowt: installed %s from %s; it loads: %s\n", p, from, desc)
	return nil
}
