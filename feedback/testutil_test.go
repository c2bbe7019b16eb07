package feedback

import (
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// testBackend returns the backend the package's tests run on: the pure-Go backend in sequential mode, or the
// one $NOWT_TEST_BACKEND names (xla.TestBackend).
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := xla.TestBackend()
	if err != nil {
		t.Fatalf("test backend: %v", err)
	}
	return b
}

func randomSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	return s
}

func flat64(t testing.TB, x *tensors.Tensor) []float64 {
	t.Helper()
	switch v := x.Value().(type) {
	default:
		return tensors.MustCopyFlatData[float64](x)
	case float64:
		return []float64{v}
	}
}

// requireClose asserts ‖got − want‖ ≤ tol·‖want‖ (relative error of the whole tensor) and, element-wise,
// |got − want| ≤ tol·(|want| + max|want|·1e-3).
func requireClose(t testing.TB, want, got []float64, tol float64, what string) {
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
