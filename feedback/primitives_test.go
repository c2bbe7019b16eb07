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
	// ia, aa: the stored B (learned by Gradients; see TestPrimitiveRulesGradient).
	ruleReferences["ia"] = ruleReference{kernel: storedReference}
	ruleReferences["aa"] = ruleReference{kernel: storedReference}
}

// primitivesLoss is the local loss of a rule that learns B on its input's primitives, in plain Go, for input
// rows p [rows, k], W and B [k, out]: amp·(−(1/n)·Σ (p·B)∘(p·W)) + null·(1/n)·‖p·W·Bᵀ‖² + sparse·(1/n)·‖p·B‖²
// (decay is the optimizer's, see Decays).
func primitivesLoss(p []float64, rows, k, out int, w, b []float64, amp, null, sparse float64) float64 {
	mm := denseRef(rows, k, out)
	pw, pb := mm.forward(p, w), mm.forward(p, b)
	rec := mm.inputGrad(pw, b) // (p·W)·Bᵀ
	var ampSum, nullSum, sparseSum float64
	for i := range pw {
		ampSum += pb[i] * pw[i]
		sparseSum += pb[i] * pb[i]
	}
	for _, v := range rec {
		nullSum += v * v
	}
	n := float64(rows)
	return (-amp*ampSum + null*nullSum + sparse*sparseSum) / n
}

// TestPrimitiveRulesGradient: the gradient Gradients gives the B of ia (α·amp + β·null) and of aa (amp +
// sparse) is the derivative of the rule's local loss on the layer's input rows (x, or the convolution's
// patches, built here in plain Go; raw, and each centred and scaled to unit norm as the rules'
// normalize_input does), checked by central finite differences of the plain-Go loss, for dense and
// convolution layers (both implementations), with no task-gradient term; and Decays gives B the rule's decay.
func TestPrimitiveRulesGradient(t *testing.T) {
	backend := testutil.Backend(t)
	const gamma = 0.01
	for _, rc := range []struct {
		rule                                          string
		amp, null, sparse                             float64
		ampParam, otherParam, decayParam, normalParam string
	}{
		{rule: "ia", amp: 0.8, null: 0.3, ampParam: ParamIAAmp, otherParam: ParamIANull, decayParam: ParamIADecay,
			normalParam: ParamIANormalizeInput},
		{rule: "aa", amp: 0.7, sparse: 0.4, ampParam: ParamAAAmp, otherParam: ParamAASparse,
			decayParam: ParamAADecay, normalParam: ParamAANormalizeInput},
	} {
		for _, ci := range []int{0, 2, 3, 4} {
			lc := layerCases[ci]
			for _, convImpl := range []string{"patches", "native"} {
				if !lc.conv && convImpl == "native" {
					continue
				}
				for _, normalize := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%s/%s/normalize=%v", rc.rule, lc.name, convImpl, normalize), func(t *testing.T) {
						rng := rand.New(rand.NewSource(int64(ci)))
						geom := lc.ref()
						xDims, yDims := lc.dims()
						x := testutil.RandomSlice(rng, geom.n*geom.h*geom.w*geom.c)
						r := testutil.RandomSlice(rng, geom.n*geom.outH*geom.outW*geom.co)
						ctx := context.New().Checked(false)
						ctx.SetParam(ParamRule, rc.rule)
						ctx.SetParam(ParamConvImpl, convImpl)
						ctx.SetParam(rc.ampParam, rc.amp)
						ctx.SetParam(rc.otherParam, rc.null+rc.sparse) // one of them is 0
						ctx.SetParam(rc.decayParam, gamma)
						ctx.SetParam(rc.normalParam, normalize)
						require.NoError(t, ctx.SetRNGStateFromSeed(int64(ci)))
						var bGrad *Node
						outs := execOnceN(t, backend, ctx, func(ctx *context.Context, xNode *Node) []*Node {
							g := xNode.Graph()
							y := lc.build(ctx.In("layer"), xNode)
							loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(r, yDims...))))
							vars, grads := Gradients(ctx, loss)
							for i, v := range vars {
								if v.Name() == FeedbackName {
									bGrad = grads[i]
								}
							}
							require.NotNil(t, bGrad, "%s's B gets a gradient", rc.rule)
							return []*Node{bGrad}
						}, tensors.FromFlatDataAndDimensions(x, xDims...))
						layer := Layers(ctx)[0]
						require.Equal(t, gamma, Decays(ctx, 0.5)[layer.Feedback], "B's decay is γ")
						_, wDecayed := Decays(ctx, 0.5)[layer.Weights]
						require.False(t, wDecayed, "%s leaves W's decay to the optimizer", rc.rule)
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
							up := primitivesLoss(p, rows, k, lc.out, w, moved, rc.amp, rc.null, rc.sparse)
							moved[i] = b[i] - eps
							down := primitivesLoss(p, rows, k, lc.out, w, moved, rc.amp, rc.null, rc.sparse)
							moved[i] = b[i]
							want[i] = (up - down) / (2 * eps)
						}
						testutil.RequireClose(t, want, testutil.Flat64(t, outs[0]), 1e-6, "∂(local loss)/∂B")
					})
				}
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
