//go:build !(linux && amd64 && cgo && !noxla)

package xla

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/pkg/errors"
)

// xlaCompiledIn tells whether GoMLX's XLA backend is part of this binary.
const xlaCompiledIn = false

// newXLA fails: the XLA backend is not compiled in.
func newXLA(config string, _ int) (backends.Backend, error) {
	return nil, errors.Errorf("creating backend %q: the XLA backend is not compiled into this binary "+
		"(it needs cgo on linux/amd64)", config)
}

// checkLoads fails: without the XLA backend no plugin can be loaded.
func checkLoads(path string) (string, error) {
	return "", errors.Errorf("cannot load %s: the XLA backend is not compiled into this binary "+
		"(it needs cgo on linux/amd64)", path)
}

// OneDNNConvolutions reports whether b runs convolutions through the CPU plugin's oneDNN call: never without the
// XLA backend.
func OneDNNConvolutions(backends.Backend) bool { return false }

// OneDNNBackwardWeights reports whether b runs weight gradients through oneDNN's backward-weights primitive: never
// without the XLA backend.
func OneDNNBackwardWeights(backends.Backend) bool { return false }
