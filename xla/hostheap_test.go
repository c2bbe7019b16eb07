//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKeepHostHeap: glibc accepts both thresholds (mallopt refuses an mmap threshold over 32 MiB on 64 bits,
// which would leave its moving defaults in place), once per process.
func TestKeepHostHeap(t *testing.T) {
	require.NoError(t, keepHostHeap())
	require.NoError(t, keepHostHeap(), "applied once, the same outcome after")
	require.LessOrEqual(t, hostHeapMmapThreshold, 32<<20, "glibc's largest mmap threshold")
}
