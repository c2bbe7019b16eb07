package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestActivationAlignmentConverges: with W fixed, gradient steps on aa's local loss (no decay) take B where the
// theory says: on the span of the layer's (normalised) input rows to (amp/2·sparse)·W, and off it nowhere —
// there B keeps its random start. So B_∞ = P·W·(amp/2·sparse) + (I − P)·B₀, P the projection onto the rows'
// span, computed here in plain Go. The cases: more rows than inputs (the span is every direction but the
// all-ones one, which centring removes), fewer rows than inputs (a 3-dimensional span), raw rows (the whole
// space), and a sparse coefficient that halves the limit.
func TestActivationAlignmentConverges(t *testing.T) {
	backend := testutil.Backend(t)
	const in, out = 6, 3
	for _, tc := range []struct {
		name        string
		rows        int
		normalize   bool
		amp, sparse float64
	}{
		{"many rows, normalised", 32, true, 1, 0.5},
		{"few rows, normalised", 3, true, 1, 0.5},
		{"many rows, raw", 32, false, 1, 0.5},
		{"sparse=amp: half of W", 32, true, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(7))
			x := testutil.RandomSlice(rng, tc.rows*in)
			ctx := context.New()
			ctx.SetParam(ParamRule, "aa")
			ctx.SetParam(ParamAAAmp, tc.amp)
			ctx.SetParam(ParamAASparse, tc.sparse)
			ctx.SetParam(ParamAADecay, 0.0)
			ctx.SetParam(ParamAANormalizeInput, tc.normalize)
			require.NoError(t, ctx.SetRNGStateFromSeed(3))

			// The rows as the rule sees them, their span's projection, and the largest curvature of the loss
			// (2·sparse·λmax(Σ), bounded by the trace), which sets a stable step.
			p := append([]float64(nil), x...)
			if tc.normalize {
				normalizeRowsRef(p, in)
			}
			basis := orthonormalRows(p, in)
			var trace float64
			for _, v := range p {
				trace += v * v / float64(tc.rows)
			}
			eta := 0.5 / (2 * tc.sparse * trace)

			forward := func(ctx *context.Context, xNode *Node) *Node { return Dense(ctx.In("layer"), xNode, out, false) }
			step := func(ctx *context.Context, xNode *Node) *Node {
				loss := ReduceAllSum(forward(ctx, xNode))
				vars, grads := Gradients(ctx, loss)
				for i, v := range vars {
					if v.Name() == FeedbackName {
						v.SetValueGraph(Sub(v.ValueGraph(xNode.Graph()), MulScalar(grads[i], eta)))
					}
				}
				return loss
			}
			xt := tensors.FromFlatDataAndDimensions(x, tc.rows, in)
			context.MustExecOnce(backend, ctx, forward, xt) // creates W and B
			layer := Layers(ctx)[0]
			w := testutil.Flat64(t, layer.Weights.MustValue())
			b0 := testutil.Flat64(t, layer.Feedback.MustValue())
			exec := context.MustNewExec(backend, ctx.Reuse(), step)
			for range 600 {
				exec.MustExec(xt)
			}
			b := testutil.Flat64(t, layer.Feedback.MustValue())

			want := make([]float64, in*out)
			scale := tc.amp / (2 * tc.sparse)
			pw, pb0 := project(basis, w, in, out), project(basis, b0, in, out)
			for i := range want {
				want[i] = scale*pw[i] + b0[i] - pb0[i]
			}
			testutil.RequireClose(t, want, b, 1e-4, fmt.Sprintf("B after 600 steps (span of %d dimensions)", len(basis)))
		})
	}
}

// orthonormalRows returns an orthonormal basis of the span of p's rows (rows of k values), by Gram-Schmidt.
func orthonormalRows(p []float64, k int) [][]float64 {
	var basis [][]float64
	for r := 0; r+k <= len(p); r += k {
		v := append([]float64(nil), p[r:r+k]...)
		for _, q := range basis {
			var dot float64
			for i := range v {
				dot += v[i] * q[i]
			}
			for i := range v {
				v[i] -= dot * q[i]
			}
		}
		var norm float64
		for _, e := range v {
			norm += e * e
		}
		if norm = math.Sqrt(norm); norm > 1e-9 {
			for i := range v {
				v[i] /= norm
			}
			basis = append(basis, v)
		}
	}
	return basis
}

// project returns P·M for M [k, out] (row-major), P the projection onto the span of the basis vectors of
// length k.
func project(basis [][]float64, m []float64, k, out int) []float64 {
	pm := make([]float64, k*out)
	for _, q := range basis {
		for j := range out {
			var dot float64
			for i := range k {
				dot += q[i] * m[i*out+j]
			}
			for i := range k {
				pm[i*out+j] += dot * q[i]
			}
		}
	}
	return pm
}
