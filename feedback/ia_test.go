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

func init() {
	// ia: the stored B (learned by Gradients; see TestInformationAlignmentGradient).
	ruleReferences["ia"] = ruleReference{kernel: storedReference}
}

// iaLoss is information alignment's local loss in plain Go, for input rows p [rows, k], W and B [k, out]:
// −(α/n)·Σ (p·B)∘(p·W) + (β/n)·‖p·W·Bᵀ‖² (decay is the optimizer's, see Decays).
func iaLoss(p []float64, rows, k, out int, w, b []float64, alpha, beta float64) float64 {
	mm := denseRef(rows, k, out)
	pw, pb := mm.forward(p, w), mm.forward(p, b)
	rec := mm.inputGrad(pw, b) // (p·W)·Bᵀ
	var amp, null float64
	for i := range pw {
		amp += pb[i] * pw[i]
	}
	for _, v := range rec {
		null += v * v
	}
	n := float64(rows)
	return -alpha/n*amp + beta/n*null
}

// TestInformationAlignmentGradient: the gradient Gradients gives IA's B is the derivative of the local loss
// α·amp + β·null on the layer's input rows (x, or the convolution's patches, built here in plain Go; raw, and
// each centred and scaled to unit norm as ia_normalize_input does), checked
// by central finite differences of the plain-Go loss, for dense and convolution layers (both implementations),
// with no task-gradient term; and Decays gives B the decay γ.
func TestInformationAlignmentGradient(t *testing.T) {
	backend := testutil.Backend(t)
	const alpha, beta, gamma = 0.8, 0.3, 0.01
	for _, ci := range []int{0, 2, 3, 4} {
		lc := layerCases[ci]
		for _, convImpl := range []string{"patches", "native"} {
			if !lc.conv && convImpl == "native" {
				continue
			}
			for _, normalize := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/normalize=%v", lc.name, convImpl, normalize), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(ci)))
					geom := lc.ref()
					xDims, yDims := lc.dims()
					x := testutil.RandomSlice(rng, geom.n*geom.h*geom.w*geom.c)
					r := testutil.RandomSlice(rng, geom.n*geom.outH*geom.outW*geom.co)
					ctx := context.New()
					ctx.SetParam(ParamRule, "ia")
					ctx.SetParam(ParamConvImpl, convImpl)
					ctx.SetParam(ParamIAAmp, alpha)
					ctx.SetParam(ParamIANull, beta)
					ctx.SetParam(ParamIADecay, gamma)
					ctx.SetParam(ParamIANormalizeInput, normalize)
					require.NoError(t, ctx.SetRNGStateFromSeed(int64(ci)))
					var bGrad *Node
					outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, xNode *Node) []*Node {
						g := xNode.Graph()
						y := lc.build(ctx.In("layer"), xNode)
						loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(r, yDims...))))
						vars, grads := Gradients(ctx, loss)
						for i, v := range vars {
							if v.Name() == FeedbackName {
								bGrad = grads[i]
							}
						}
						require.NotNil(t, bGrad, "IA's B gets a gradient")
						return []*Node{bGrad}
					}, tensors.FromFlatDataAndDimensions(x, xDims...))
					layer := Layers(ctx)[0]
					require.Equal(t, gamma, Decays(ctx, 0.5)[layer.Feedback], "B's decay is γ")
					_, wDecayed := Decays(ctx, 0.5)[layer.Weights]
					require.False(t, wDecayed, "IA leaves W's decay to the optimizer")
					w := testutil.Flat64(t, layer.Weights.MustValue())
					b := testutil.Flat64(t, layer.Feedback.MustValue())

					// The input rows in plain Go: x itself, or the patch matrix.
					k := len(w) / lc.out
					rows := geom.n * geom.outH * geom.outW
					p := make([]float64, rows*k)
					geom.each(func(xi, ki, yi int) {
						if ki%geom.co == 0 {
							p[(yi/geom.co)*k+ki/geom.co] = x[xi]
						}
					})
					if normalize {
						normalizeRowsRef(p, k)
					}
					const eps = 1e-6
					want := make([]float64, len(b))
					moved := append([]float64(nil), b...)
					for i := range b {
						moved[i] = b[i] + eps
						up := iaLoss(p, rows, k, lc.out, w, moved, alpha, beta)
						moved[i] = b[i] - eps
						down := iaLoss(p, rows, k, lc.out, w, moved, alpha, beta)
						moved[i] = b[i]
						want[i] = (up - down) / (2 * eps)
					}
					testutil.RequireClose(t, want, testutil.Flat64(t, outs[0]), 1e-6, "∂(α·amp + β·null)/∂B")
				})
			}
		}
	}
}

// normalizeRowsRef centres each row of p (rows of k values) on its mean and scales it to unit L2 norm, in place.
func normalizeRowsRef(p []float64, k int) {
	for r := 0; r+k <= len(p); r += k {
		row := p[r : r+k]
		var mean float64
		for _, v := range row {
			mean += v / float64(k)
		}
		var sq float64
		for i := range row {
			row[i] -= mean
			sq += row[i] * row[i]
		}
		scale := 1 / math.Sqrt(math.Max(sq, 1e-12))
		for i := range row {
			row[i] *= scale
		}
	}
}
