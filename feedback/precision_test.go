package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// bfloat16Tolerance is the relative error (of a whole tensor) accepted between a bfloat16 and a float32
// computation: ten units of bfloat16's spacing (2⁻⁸, 8 significant bits), for sums of products of rounded inputs
// and weights. Measured: 0.8–1.0 % for the output and W's gradient; up to 2.4 % for the signal of the sign-based
// kernels (ss, brsf), whose sums of ±δ cancel.
const bfloat16Tolerance = 10.0 / 256

// float16Tolerance is the same for float16 (11 significant bits).
const float16Tolerance = 10.0 / 2048

// relativeError is ‖got − want‖/‖want‖.
func relativeError(t testing.TB, want, got []float64) float64 {
	t.Helper()
	require.Len(t, got, len(want))
	var diff, norm float64
	for i := range want {
		diff += (got[i] - want[i]) * (got[i] - want[i])
		norm += want[i] * want[i]
	}
	require.Greater(t, norm, 0.0, "the reference is all zeros: the test checks nothing")
	return math.Sqrt(diff / norm)
}

// TestMixedPrecisionGradients: for every rule, on a dense layer and convolutions (both implementations), a layer
// computing in bfloat16 (or float16) keeps its variables in float32 (W, B, bias, the rule's scales), and its output, the signal
// it sends down, W's gradient and (for rules whose B learns in training) B's gradient agree with the float32
// computation from the same variables within bfloat16's precision; the gradients reach the float32 master copies
// as float32, and KP's B gets exactly W's gradient.
func TestMixedPrecisionGradients(t *testing.T) {
	backend := testutil.Backend(t)
	cases := []layerCase{layerCases[0], layerCases[3]} // dense, conv3 stride 2 "same"
	for _, ruleName := range RuleNames() {
		for ci, lc := range cases {
			convImpls := []string{"patches", "native"}
			if xla.TestBackendIsXLA() {
				convImpls = []string{"native"} // XLA's own (the pure-Go pass covers patches): half the compilations
			}
			if !lc.conv {
				convImpls = []string{"-"}
			}
			for _, convImpl := range convImpls {
				t.Run(fmt.Sprintf("%s/%s/%s", ruleName, lc.name, convImpl), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(ci + 7)))
					geom := lc.ref()
					xDims, yDims := lc.dims()
					x := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, geom.n*geom.h*geom.w*geom.c)), xDims...)
					r := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, geom.n*geom.outH*geom.outW*geom.co)), yDims...)
					e := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, lc.n*testClasses)), lc.n, testClasses)
					run := func(dtype dtypes.DType) (outs [][]float64, learned bool) {
						ctx := context.New().Checked(false)
						ctx.SetParam(ParamRule, ruleName)
						ctx.SetParam(ParamOutputDim, testClasses)
						if lc.conv {
							ctx.SetParam(ParamConvImpl, convImpl)
						}
						require.NoError(t, ctx.SetRNGStateFromSeed(int64(ci)))
						layerCtx := ctx.In("layer")
						nodes := execOnceN(t, backend, ctx, func(ctx *context.Context, xNode, rNode, eNode *Node) []*Node {
							xc := ConvertDType(xNode, dtype)
							y := lc.build(layerCtx, xc)
							require.Equal(t, dtype, y.DType())
							u := OutputError(ctx, Add(ZerosLike(ConvertDType(eNode, dtype)), MulScalar(ReduceAllSum(y), 0)))
							loss := Add(ReduceAllSum(Mul(ConvertDType(y, dtypes.Float32), rNode)),
								ReduceAllSum(Mul(ConvertDType(u, dtypes.Float32), eNode)))
							vars, grads := Gradients(ctx, loss)
							for v := range ctx.IterVariables() {
								if v.Scope() == layerCtx.Scope() {
									require.Equal(t, dtypes.Float32, v.Shape().DType, "variable %s", v.ScopeAndName())
								}
							}
							result := []*Node{ConvertDType(y, dtypes.Float32), Gradient(loss, xNode)[0]}
							var wGrad, bGrad *Node
							for i, v := range vars {
								require.Equal(t, dtypes.Float32, grads[i].DType(), "gradient of %s", v.ScopeAndName())
								switch v.Name() {
								case WeightsName:
									wGrad = grads[i]
								case FeedbackName:
									bGrad = grads[i]
								}
							}
							require.NotNil(t, wGrad)
							result = append(result, wGrad)
							if bGrad != nil {
								learned = true
								result = append(result, bGrad)
								if ruleName == "kp" {
									result = append(result, Sub(bGrad, wGrad))
								}
							}
							for i := range result {
								result[i] = ConvertDType(result[i], dtypes.Float64) // for testutil.Flat64
							}
							return result
						}, x, r, e)
						for _, n := range nodes {
							outs = append(outs, testutil.Flat64(t, n))
						}
						return outs, learned
					}
					want, learned := run(dtypes.Float32)
					for _, low := range []struct {
						dtype     dtypes.DType
						tolerance float64
					}{{dtypes.BFloat16, bfloat16Tolerance}, {dtypes.Float16, float16Tolerance}} {
						if !backend.Capabilities().DTypes[low.dtype] {
							continue // the pure-Go backend has bfloat16 but no float16
						}
						got, learnedLow := run(low.dtype)
						require.Equal(t, learned, learnedLow)
						for i, what := range []string{"output", "signal sent down", "W's gradient", "B's gradient"}[:len(want)-boolToInt(ruleName == "kp")] {
							err := relativeError(t, want[i], got[i])
							require.LessOrEqual(t, err, low.tolerance, "%s in %s: relative error %.2g", what, low.dtype, err)
							require.Greater(t, err, 0.0, "%s: %s and float32 agree exactly: %s was not used", what, low.dtype, low.dtype)
						}
						if ruleName == "kp" {
							require.Equal(t, make([]float64, len(got[len(got)-1])), got[len(got)-1], "KP: B's gradient is W's")
						}
					}
				})
			}
		}
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMixedPrecisionAlignment: under bfloat16 the alignment metrics measure the rule, not the rounding: backprop's
// weight and delta angles are 0 (they read ~0.1° when B's bfloat16 kernel was set against float32 W and its
// bfloat16 signal against a float32 one), and other rules' angles stay within a fraction of a degree of their
// float32 values.
func TestMixedPrecisionAlignment(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(5))
	const n, in, out = 64, 256, 128
	x := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, n*in)), n, in)
	r := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, n*out)), n, out)
	angles := func(rule string, dtype dtypes.DType) (weight, delta float64) {
		ctx := context.New().Checked(false)
		ctx.SetParam(ParamRule, rule)
		require.NoError(t, ctx.SetRNGStateFromSeed(3))
		outs := execOnceN(t, backend, ctx, func(ctx *context.Context, xNode, rNode *Node) []*Node {
			y := NewDense(ctx.In("layer"), ConvertDType(xNode, dtype), out).Done()
			loss := ReduceAllSum(Mul(ConvertDType(y, dtypes.Float32), rNode))
			_, _ = Gradients(ctx, loss)
			a := AlignmentGraph(ctx, xNode.Graph())
			require.Len(t, a, 1)
			return []*Node{ConvertDType(a[0].WeightAngle, dtypes.Float64), ConvertDType(a[0].DeltaAngle, dtypes.Float64)}
		}, x, r)
		return testutil.Flat64(t, outs[0])[0], testutil.Flat64(t, outs[1])[0]
	}
	for _, rule := range []string{"bp", "kp", "fa", "ss"} {
		w32, d32 := angles(rule, dtypes.Float32)
		w16, d16 := angles(rule, dtypes.BFloat16)
		t.Logf("%s: weight angle %.4f° (float32) %.4f° (bfloat16), delta angle %.4f° / %.4f°", rule, w32, w16, d32, d16)
		if rule == "bp" {
			require.InDelta(t, 0, w16, 1e-3)
			require.InDelta(t, 0, d16, 1e-3)
			continue
		}
		require.InDelta(t, w32, w16, 0.5, "%s weight angle", rule)
		require.InDelta(t, d32, d16, 0.5, "%s delta angle", rule)
	}
}
