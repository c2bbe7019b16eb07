//go:build !(linux && amd64)

package xla

import (
	"context"
	"io"

	"github.com/pkg/errors"
)

// InstallDir returns the user folder plugins are installed into; only supported on linux/amd64.
func InstallDir() (string, error) {
	return "", errors.New("installing PJRT plugins is only supported on linux/amd64")
}

// InstallOptions tunes Install (see the linux/amd64 documentation).
type InstallOptions struct {
	// Source is where the plugin comes from.
	Source string
	// Force reinstalls a plugin that is already installed.
	Force bool
}

// Install installs a PJRT plugin; only supported on linux/amd64 (see the linux/amd64 documentation).
func Install(ctx context.Context, plugin string, opts InstallOptions, w io.Writer) error {
	return errors.Errorf("installing PJRT plugin %q: only supported on linux/amd64", plugin)
}
