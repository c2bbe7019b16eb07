//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDisableXNNPACK(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"", "--xla_cpu_use_xnnpack=false"},
		{"--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d --xla_cpu_use_xnnpack=false"},
		{"--xla_cpu_use_xnnpack=true", "--xla_cpu_use_xnnpack=true"}, // The user's choice stands.
		{"--xla_cpu_use_xnnpack=false", "--xla_cpu_use_xnnpack=false"},
	} {
		t.Setenv("XLA_FLAGS", tc.before)
		disableXNNPACK("/lib/pjrt_c_api_cpu_plugin.so")
		assert.Equal(t, tc.after, os.Getenv("XLA_FLAGS"), "XLA_FLAGS=%q before", tc.before)
	}
	t.Setenv("XLA_FLAGS", "")
	disableXNNPACK("/lib/pjrt_c_api_cuda_plugin.so")
	assert.Empty(t, os.Getenv("XLA_FLAGS"), "only the CPU plugin")
}
