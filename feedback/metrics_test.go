package feedback

import (
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/stretchr/testify/require"
)

// TestAlignmentGraph checks the weight angle, norm ratio and delta angle of every rule against plain Go,
// on a dense layer and a strided conv whose δ is known (loss = Σ y·R, so δ = R).
func TestAlignmentGraph(t *testing.T) {
	backend := testBackend(t)
	cases := []layerCase{layerCases[0], layerCases[3]}
	for _, ruleName := range RuleNames() {
		for _, lc := range cases {
			t.Run(ruleName+"/"+lc.name, func(t *testing.T) {
				rng := rand.New(rand.NewSource(9))
				ref := lc.ref()
				xDims := []int{lc.n, lc.in}
				yDims := []int{lc.n, lc.out}
				if lc.conv {
					xDims = []int{lc.n, lc.h, lc.h, lc.in}
					yDims = []int{lc.n, ref.outH, ref.outW, lc.out}
				}
				x := randomSlice(rng, ref.n*ref.h*ref.w*ref.c)
				delta := randomSlice(rng, ref.n*ref.outH*ref.outW*ref.co)
				outErr := randomSlice(rng, lc.n*testClasses)
				rule, err := RuleByName(ruleName)
				require.NoError(t, err)
				fromOutput := rule.Feedback().Source == FromOutputError
				ctx := context.New()
				ctx.SetParam(ParamRule, ruleName)
				ctx.SetParam(ParamOutputDim, testClasses)
				layerCtx := ctx.In("layer")
				outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, xNode *Node) []*Node {
					g := xNode.Graph()
					y := lc.build(layerCtx, xNode)
					eNode := ConstTensor(g, tensors.FromFlatDataAndDimensions(outErr, lc.n, testClasses))
					u := OutputError(Add(ZerosLike(eNode), MulScalar(ReduceAllSum(y), 0))) // e = E, δ = R
					loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(delta, yDims...))))
					_, _ = Gradients(ctx, Add(loss, ReduceAllSum(Mul(u, eNode))))
					al := AlignmentGraph(ctx, g)
					require.Len(t, al, 1)
					require.Equal(t, "/layer", al[0].Scope)
					require.NotNil(t, al[0].DeltaAngle)
					require.Equal(t, fromOutput && lc.out != testClasses, al[0].WeightAngle == nil, "weight angle defined where B has W's shape")
					weightAngle := al[0].WeightAngle
					if weightAngle == nil {
						weightAngle = Scalar(g, al[0].NormRatio.DType(), 0)
					}
					var used *Node
					for _, c := range graphCaptures(g) {
						if c.scope == layerCtx.Scope() {
							used = c.fb()
						}
					}
					layer := Layers(ctx)[0]
					return []*Node{weightAngle, al[0].NormRatio, al[0].DeltaAngle, layer.Weights.ValueGraph(g), used}
				}, tensors.FromFlatDataAndDimensions(x, xDims...))
				w, b := flat64(t, outs[3]), flat64(t, outs[4])
				if len(b) == len(w) {
					wantAngle := angleBetween(b, w)
					if ruleName == "bp" {
						wantAngle = 0
					}
					require.InDelta(t, wantAngle, flat64(t, outs[0])[0], 1e-3, "weight angle")
				}
				require.InDelta(t, norm(b)/norm(w), flat64(t, outs[1])[0], 1e-9, "norm ratio")
				// Delta angle: per example, between the transposed convs of δ (dfa: of e) with B and of δ with W.
				bp := ref.inputGrad(delta, w)
				var sent []float64
				if !fromOutput {
					sent = ref.inputGrad(delta, b)
				} else {
					toClasses := ref
					toClasses.co = testClasses
					e := make([]float64, ref.n*ref.outH*ref.outW*testClasses)
					for i := range e {
						e[i] = outErr[(i/(ref.outH*ref.outW*testClasses))*testClasses+i%testClasses]
					}
					sent = toClasses.inputGrad(e, b)
				}
				per := len(sent) / lc.n
				var mean float64
				for e := range lc.n {
					mean += angleBetween(sent[e*per:(e+1)*per], bp[e*per:(e+1)*per]) / float64(lc.n)
				}
				if ruleName == "bp" {
					mean = 0
				}
				require.InDelta(t, mean, flat64(t, outs[2])[0], 1e-3, "delta angle")
				if ruleName == "fa" || ruleName == "kp" || ruleName == "wm" || ruleName == "dfa" {
					require.Greater(t, mean, 30.0, "random B: large delta angle")
				}
			})
		}
	}
}

func TestAngleDegrees(t *testing.T) {
	backend := testBackend(t)
	for _, tc := range []struct {
		a, b []float64
		want float64
	}{
		{[]float64{1, 0}, []float64{0, 1}, 90},
		{[]float64{1, 0}, []float64{1, 1}, 45},
		{[]float64{1, 2}, []float64{2, 4}, 0},
		{[]float64{1, 0}, []float64{-1, 0.0001}, 180 - 0.0057296},
		{[]float64{1, 0}, []float64{-1, 1}, 135},
		{[]float64{0.3, -0.2}, []float64{0.25, 0.9}, angleBetween([]float64{0.3, -0.2}, []float64{0.25, 0.9})},
	} {
		got := context.MustExecOnce(backend, nil, func(ctx *context.Context, a, b *Node) *Node {
			return AngleDegrees(a, b)
		}, tc.a, tc.b)
		require.InDelta(t, tc.want, flat64(t, got)[0], 1e-4, "%v vs %v", tc.a, tc.b)
	}
}

// TestAngleDegreesSmallInFloat32: parallel float32 vectors read as 0°, not the ~0.02° that float32 rounding of
// the cosine would give.
func TestAngleDegreesSmallInFloat32(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewSource(1))
	a := make([]float32, 4096)
	b := make([]float32, len(a))
	for i := range a {
		a[i] = float32(rng.NormFloat64())
		b[i] = 3 * a[i]
	}
	got := context.MustExecOnce(backend, nil, func(ctx *context.Context, a, b *Node) *Node {
		return AngleDegrees(a, b)
	}, a, b)
	require.Less(t, float64(tensors.MustCopyFlatData[float32](got)[0]), 1e-3)
}
