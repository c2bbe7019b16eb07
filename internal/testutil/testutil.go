// Package testutil holds the helpers that nowt's numerical tests share: the backend they run on, random
// inputs, a tensor read back as float64s and a relative-error assertion. It is internal: only nowt's own
// tests import it.
package testutil

import (
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// Backend returns the backend a package's tests run on: the pure-Go backend in sequential mode, or the one
// $NOWT_TEST_BACKEND names (see xla.TestBackend). It fails the test if that backend cannot be made.
func Backend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := xla.TestBackend()
	if err != nil {
		t.Fatalf("test backend: %v", err)
	}
	return b
}

// RandomSlice returns n standard normal samples from rng.
func RandomSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	return s
}

// Flat64 returns x's values as a flat []float64 (x a float64 tensor, a scalar one included).
func Flat64(t testing.TB, x *tensors.Tensor) []float64 {
	t.Helper()
	if v, ok := x.Value().(float64); ok {
		return []float64{v}
	}
	return tensors.MustCopyFlatData[float64](x)
}

// RequireClose asserts ‖got − want‖ ≤ tol·‖want‖ (relative error of the whole tensor) and, element-wise,
// |got − want| ≤ tol·(|want| + max|want|·1e-3). A reference of all zeros fails: the comparison would check
// nothing.
func RequireClose(t testing.TB, want, got []float64, tol float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	var diff, norm, maxAbs float64
	for i := range want {
		d := got[i] - want[i]
		diff += d * d
		norm += want[i] * want[i]
		maxAbs = math.Max(maxAbs, math.Abs(want[i]))
	}
	require.Greater(t, norm, 0.0, "%s: reference is all zeros, the test checks nothing", what)
	require.LessOrEqual(t, math.Sqrt(diff/norm), tol, "%s: relative error too large", what)
	for i := range want {
		require.InDelta(t, want[i], got[i], tol*(math.Abs(want[i])+maxAbs*1e-3)+1e-12, "%s[%d]", what, i)
	}
}
