//go:build linux && amd64

package xla

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/gomlx/go-xla/pkg/installer"
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

// Install downloads and installs a PJRT plugin into InstallDir with go-xla's installer; it needs internet access.
// Used by `nowt setup`, never by tests.
//
// plugin is "cpu" (GitHub gomlx/pjrt-cpu-binaries, the version go-xla was tested with), "cuda" (JAX's CUDA 13
// plugin and NVIDIA libraries from PyPI; needs an NVIDIA GPU), "tpu" (libtpu from PyPI; for Cloud TPU VMs),
// or "auto"/"" (cpu, plus cuda/tpu when that hardware is detected).
//
// Progress lines go to w (if non-nil); go-xla's installer also prints its own progress to stdout.
// ctx is checked before starting; a download in progress cannot be cancelled (go-xla's API takes no context).
func Install(ctx context.Context, plugin string, w io.Writer) error {
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
	_, _ = fmt.Fprintf(w, "nowt: installing PJRT plugin %q into %s\n", plugin, dir)
	const useCache = true
	verbosity := installer.Normal
	switch plugin {
	case "", "auto":
		err = installer.AutoInstall(filepath.Dir(dir), useCache, verbosity)
	case "cpu":
		err = installer.CPUAutoInstall(dir, useCache, verbosity)
	case "cuda", "cuda13", "cuda12":
		if !installer.HasNvidiaGPU() {
			return errors.Errorf("installing PJRT plugin %q: no NVIDIA GPU found (no /dev/nvidia*, nvidia-smi "+
				"failed); the CUDA plugin is only useful with one", plugin)
		}
		version := plugin
		if version == "cuda" {
			version = "cuda13"
		}
		err = installer.CudaInstall(version, "latest", dir, useCache, verbosity)
	case "tpu":
		err = installer.TPUInstall("tpu", "latest", dir, useCache, verbosity)
	default:
		return errors.Errorf("installing PJRT plugin %q: unknown plugin, valid ones are \"cpu\", \"cuda\", "+
			"\"tpu\" and \"auto\"", plugin)
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
