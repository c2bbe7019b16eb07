package xla

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDotWithFreshOperands multiplies by a new weight matrix forty times, each freed before the next is made (so
// that it may land at the freed one's address, as GoMLX's weight buffers do from one training step to the next),
// and checks the products against plain Go (every 5th row, every 7th column). The shapes are the demo MLP's first
// layer at batch 128. The XLA CPU plugin with its XNNPACK kernels on used the packed copy of a freed matrix for 25
// of the 40 (smaller matrices, 128×128 up to 512×128, were right); see disableXNNPACK.
func TestDotWithFreshOperands(t *testing.T) {
	b, err := TestBackend()
	require.NoError(t, err)
	const m, k, n, rounds = 128, 784, 500, 40
	exec, err := graph.NewExec(b, func(x, w *graph.Node) *graph.Node { return graph.Dot(x, w) })
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float32, m*k)
	for i := range xs {
		xs[i] = rng.Float32()
	}
	x := tensors.FromFlatDataAndDimensions(xs, m, k)
	wrong := 0
	for round := range rounds {
		ws := make([]float32, k*n)
		for i := range ws {
			ws[i] = rng.Float32() - 0.5
		}
		w := tensors.FromFlatDataAndDimensions(ws, k, n)
		outs, err := exec.Exec(x, w)
		require.NoError(t, err)
		worst := 0.0
		tensors.MustConstFlatData(outs[0], func(got []float32) {
			for r := 0; r < m; r += 5 {
				for c := 0; c < n; c += 7 {
					var want float64
					for j := range k {
						want += float64(xs[r*k+j]) * float64(ws[j*n+c])
					}
					worst = math.Max(worst, math.Abs(want-float64(got[r*n+c])))
				}
			}
		})
		if worst > 1e-3 {
			wrong++
			t.Logf("round %d: largest error %.3g", round, worst)
		}
		require.NoError(t, outs[0].FinalizeAll())
		require.NoError(t, w.FinalizeAll())
	}
	assert.Zero(t, wrong, "%d of %d products by a fresh matrix are wrong on %s (XLA_FLAGS=%q)",
		wrong, rounds, b.Name(), os.Getenv("XLA_FLAGS"))
}
