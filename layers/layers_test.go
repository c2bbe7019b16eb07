package layers

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestBatchNormRunningStatistics: training graphs update the running mean and variance (PyTorch's momentum
// rule, unbiased variance), inference graphs use them and leave them alone.
func TestBatchNormRunningStatistics(t *testing.T) {
	backend := testutil.Backend(t)
	x := tensors.FromFlatDataAndDimensions([]float32{1, 10, 3, 20, 5, 30, 7, 40}, 2, 2, 1, 2)
	ctx := context.New()
	ctx.SetParam(ParamBNMomentum, 0.75)
	run := func(training bool) []float32 {
		c := ctx
		if !training {
			c = ctx.Reuse()
		}
		out := context.MustExecOnce(backend, c, func(ctx *context.Context, x *Node) *Node {
			ctx.SetTraining(x.Graph(), training)
			return BatchNorm(ctx.In("bn"), x, false)
		}, x)
		return tensors.MustCopyFlatData[float32](out)
	}
	stats := func() (mean, variance []float32) {
		return tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName("/bn", BNMeanName).MustValue()),
			tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName("/bn", BNVarianceName).MustValue())
	}
	y := run(true)
	// Channel 0: 1,3,5,7 → mean 4, biased var 5, unbiased 20/3. Channel 1: 10..40 → mean 25, var 125, 500/3.
	require.InDelta(t, (1-4)/math.Sqrt(5+1e-5), y[0], 1e-5)
	mean, variance := stats()
	require.InDeltaSlice(t, []float64{0.25 * 4, 0.25 * 25}, toF64(mean), 1e-5)
	require.InDeltaSlice(t, []float64{0.75 + 0.25*20.0/3, 0.75 + 0.25*500.0/3}, toF64(variance), 1e-4)
	y = run(false)
	const x0, runningMean0 = 1.0, 0.25 * 4 // the first input of channel 0, and its running mean now
	require.InDelta(t, (x0-runningMean0)/math.Sqrt(0.75+0.25*20.0/3+1e-5), y[0], 1e-5)
	mean2, variance2 := stats()
	require.Equal(t, mean, mean2)
	require.Equal(t, variance, variance2)
}

// TestBatchNormGradient: batch norm's written-out backward (∂L/∂x, ∂L/∂γ, ∂L/∂β) and its output equal autodiff
// of the plain formula γ·(x − μ)/√(σ² + ε) + β, in training graphs (μ, σ² the batch's, differentiated through)
// and inference graphs (the running statistics), with its per-channel sums as products with ones and as
// reductions.
func TestBatchNormGradient(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(5))
	random := func(scale, shift float64, dims ...int) *tensors.Tensor {
		v := make([]float64, shapes.Make(dtypes.Float64, dims...).Size())
		for i := range v {
			v[i] = shift + scale*rng.NormFloat64()
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	}
	x, w := random(2, 1, 3, 2, 2, 4), random(1, 0, 3, 2, 2, 4)
	values := map[string]*tensors.Tensor{BNScaleName: random(0.5, 1, 4), BNOffsetName: random(1, 0, 4),
		BNMeanName: random(1, 0.5, 4), BNVarianceName: tensors.FromFlatDataAndDimensions([]float64{0.5, 2, 1, 3}, 4)}
	for _, training := range []bool{true, false} {
		for _, sums := range []string{"dot", "reduce"} {
			t.Run(fmt.Sprintf("training %v, sums %s", training, sums), func(t *testing.T) {
				ctx := context.New()
				ctx.SetParam(ParamBNSums, sums)
				for name, v := range values {
					ctx.In("bn").VariableWithValue(name, tensors.FromFlatDataAndDimensions(
						tensors.MustCopyFlatData[float64](v), v.Shape().Dimensions...))
				}
				outs := context.MustExecOnceN(backend, ctx.Reuse(), func(ctx *context.Context, x, w *Node) []*Node {
					g := x.Graph()
					ctx.SetTraining(g, training)
					bn := ctx.In("bn")
					gamma, beta := bn.GetVariable(BNScaleName).ValueGraph(g), bn.GetVariable(BNOffsetName).ValueGraph(g)
					mean, variance := bn.GetVariable(BNMeanName).ValueGraph(g), bn.GetVariable(BNVarianceName).ValueGraph(g)
					if training {
						mean = ReduceMean(x, 0, 1, 2)
						variance = ReduceMean(Square(Sub(x, ExpandLeftToRank(mean, 4))), 0, 1, 2)
					}
					ref := Add(Mul(Div(Sub(x, ExpandLeftToRank(mean, 4)), ExpandLeftToRank(Sqrt(AddScalar(variance, 1e-5)), 4)),
						ExpandLeftToRank(gamma, 4)), ExpandLeftToRank(beta, 4))
					refGrads := Gradient(ReduceAllSum(Mul(ref, w)), x, gamma, beta)
					y := BatchNorm(bn, x, false)
					grads := Gradient(ReduceAllSum(Mul(y, w)), x, gamma, beta)
					return append([]*Node{y, ref}, append(grads, refGrads...)...)
				}, x, w)
				// outs: y, the reference, our three gradients, the reference's three.
				for i, name := range []string{"y", "∂L/∂x", "∂L/∂γ", "∂L/∂β"} {
					got, want := outs[0], outs[1]
					if i > 0 {
						got, want = outs[1+i], outs[4+i]
					}
					require.InDeltaSlice(t, tensors.MustCopyFlatData[float64](want), tensors.MustCopyFlatData[float64](got), 1e-9, name)
				}
			})
		}
	}
}

func toF64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// TestMaxPool2D: every max-pool implementation the backend runs (gather and taps everywhere; native where the
// backend can differentiate it) gives the same output and routes the gradient to the same element of each
// window, the first maximum, also where a window's values tie (half of x is zeros, as after a ReLU); the gather
// form's gradient matches central finite differences.
func TestMaxPool2D(t *testing.T) {
	backend := testutil.Backend(t)
	ops := backend.Capabilities().Operations
	impls := []string{"gather", "taps"}
	if ops[backends.OpTypeSelectAndScatterMax] {
		impls = append(impls, "native")
	}
	rng := rand.New(rand.NewSource(2))
	for _, tc := range []struct{ h, w, k, s, p int }{
		{7, 6, 3, 2, 1}, {8, 8, 3, 2, 1}, {6, 6, 2, 2, 0}, {5, 6, 3, 1, 1}, {7, 8, 2, 3, 0}, {9, 9, 3, 3, 1},
	} {
		for _, ties := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/ties=%v", tc, ties), func(t *testing.T) {
				dims := []int{2, tc.h, tc.w, 3}
				values := testutil.RandomSlice(rng, 2*tc.h*tc.w*3)
				if ties {
					for i := range values {
						values[i] = max(values[i], 0)
					}
				}
				x := tensors.FromFlatDataAndDimensions(values, dims...)
				oh, ow := (tc.h+2*tc.p-tc.k)/tc.s+1, (tc.w+2*tc.p-tc.k)/tc.s+1
				r := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 2*oh*ow*3), 2, oh, ow, 3)
				loss := func(ctx *context.Context, x, r *Node) *Node {
					return ReduceAllSum(Mul(MaxPool2D(ctx, x, tc.k, tc.s, tc.p), r))
				}
				run := func(impl string) (pooled, grad []float64) {
					ctx := context.New()
					ctx.SetParam(ParamPoolImpl, impl)
					outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, x, r *Node) []*Node {
						pooled := MaxPool2D(ctx, x, tc.k, tc.s, tc.p)
						return []*Node{pooled, Gradient(ReduceAllSum(Mul(pooled, r)), x)[0]}
					}, x, r)
					require.Equal(t, []int{2, oh, ow, 3}, outs[0].Shape().Dimensions, impl)
					return testutil.Flat64(t, outs[0]), testutil.Flat64(t, outs[1])
				}
				wantPooled, wantGrad := run("gather")
				for _, impl := range impls[1:] {
					pooled, grad := run(impl)
					require.Equal(t, wantPooled, pooled, "%s against gather: output", impl)
					// The same elements receive the same δs; a position in two windows may sum them in another order.
					require.InDeltaSlice(t, wantGrad, grad, 1e-12, "%s against gather: gradient", impl)
				}

				// Gradient along a random direction u of x, for loss = Σ r·pool(x).
				if ties {
					return // a tie is where the loss has no derivative
				}
				ctx := context.New()
				ctx.SetParam(ParamPoolImpl, "gather")
				u := testutil.RandomSlice(rng, x.Shape().Size())
				var analytic float64
				for i, g := range wantGrad {
					analytic += g * u[i]
				}
				at := func(eps float64) float64 {
					xv := testutil.Flat64(t, x)
					for i := range xv {
						xv[i] += eps * u[i]
					}
					return testutil.Flat64(t, context.MustExecOnce(backend, ctx, loss, tensors.FromFlatDataAndDimensions(xv, dims...), r))[0]
				}
				const eps = 1e-6
				require.InDelta(t, (at(eps)-at(-eps))/(2*eps), analytic, 1e-6)
			})
		}
	}
}

// TestMaxPoolImplChoice: auto picks taps on XLA's CPU plugin, native where the backend differentiates MaxPool,
// else gather; an explicit choice is taken, but native runs as gather where the backend cannot differentiate it
// (the pure-Go backend, on which every run's initialisation graph is built).
func TestMaxPoolImplChoice(t *testing.T) {
	backend := testutil.Backend(t)
	g := NewGraph(backend, "choice")
	defer g.Finalize()
	want := "gather"
	switch {
	case xla.IsCPU(backend):
		want = "taps"
	case backend.Capabilities().Operations[backends.OpTypeSelectAndScatterMax]:
		want = "native"
	}
	ctx := context.New()
	require.Equal(t, want, maxPoolImpl(ctx, g))
	differentiable := backend.Capabilities().Operations[backends.OpTypeSelectAndScatterMax]
	for impl, want := range map[string]string{"gather": "gather", "taps": "taps",
		"native": map[bool]string{true: "native", false: "gather"}[differentiable]} {
		ctx.SetParam(ParamPoolImpl, impl)
		require.Equal(t, want, maxPoolImpl(ctx, g), impl)
	}
}

// TestSubsample: x[:, ::s, ::s, :] for strides 1 to 3, even and odd sizes, and its gradient scatters back to the
// sampled pixels.
func TestSubsample(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct{ h, w, s int }{{4, 4, 1}, {5, 4, 2}, {7, 7, 3}} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			s := shapes.Make(dtypes.Float64, 2, tc.h, tc.w, 3)
			data := make([]float64, s.Size())
			for i := range data {
				data[i] = float64(i)
			}
			outs := MustExecOnceN(backend, func(x *Node) []*Node {
				y := Subsample(x, tc.s)
				return []*Node{y, Gradient(ReduceAllSum(y), x)[0]}
			}, tensors.FromFlatDataAndDimensions(data, s.Dimensions...))
			oh, ow := (tc.h-1)/tc.s+1, (tc.w-1)/tc.s+1
			require.Equal(t, []int{2, oh, ow, 3}, outs[0].Shape().Dimensions)
			y, grad := testutil.Flat64(t, outs[0]), testutil.Flat64(t, outs[1])
			for b := 0; b < 2; b++ {
				for i := 0; i < tc.h; i++ {
					for j := 0; j < tc.w; j++ {
						for c := 0; c < 3; c++ {
							sampled := i%tc.s == 0 && j%tc.s == 0
							want := 0.0
							if sampled {
								want = 1
								got := y[((b*oh+i/tc.s)*ow+j/tc.s)*3+c]
								require.Equal(t, data[((b*tc.h+i)*tc.w+j)*3+c], got)
							}
							require.Equal(t, want, grad[((b*tc.h+i)*tc.w+j)*3+c])
						}
					}
				}
			}
		})
	}
}

// TestPoolArgumentsRefused: GlobalAvgPool and Subsample refuse an input that is not [batch, height, width,
// channels] and a stride < 1 with a panic naming the function and the argument. GlobalAvgPool used to reduce a
// [2, 8] input to a scalar without a word, and Subsample failed with a division by zero or an index out of range.
func TestPoolArgumentsRefused(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct {
		what  string
		input shapes.Shape
		build func(x *Node)
		want  string
	}{
		{"average rank 2", shapes.Make(dtypes.Float32, 2, 8), func(x *Node) { GlobalAvgPool(x) },
			"layers.GlobalAvgPool: input must be [batch, height, width, channels], got (Float32)[2 8]"},
		{"average nil", shapes.Make(dtypes.Float32, 2, 8), func(*Node) { GlobalAvgPool(nil) },
			"layers.GlobalAvgPool: input must be [batch, height, width, channels], got nil"},
		{"subsample rank 2", shapes.Make(dtypes.Float32, 2, 8), func(x *Node) { Subsample(x, 2) },
			"layers.Subsample: input must be [batch, height, width, channels], got (Float32)[2 8]"},
		{"subsample stride 0", shapes.Make(dtypes.Float32, 1, 4, 4, 2), func(x *Node) { Subsample(x, 0) },
			"layers.Subsample: stride must be ≥ 1, got 0"},
		{"subsample stride -2", shapes.Make(dtypes.Float32, 1, 4, 4, 2), func(x *Node) { Subsample(x, -2) },
			"layers.Subsample: stride must be ≥ 1, got -2"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			x := Parameter(NewGraph(backend, tc.what), "x", tc.input)
			require.PanicsWithValue(t, tc.want, func() { tc.build(x) })
		})
	}
}

// TestWindowIndexTable: every tap of every output position reads the input pixel at (o·s + k − pad), or the fill
// row where that falls outside the image, and tables are shared per geometry.
func TestWindowIndexTable(t *testing.T) {
	g := NewWindow(2, 5, 4, 3, 2, 2, 1, 1, 0, 1)
	require.Equal(t, 3, g.OutH)
	require.Equal(t, 2, g.OutW)
	table := tensors.MustCopyFlatData[int32](WindowIndexTable(g))
	require.Len(t, table, 2*3*2*3*2)
	i := 0
	for b := 0; b < 2; b++ {
		for oy := 0; oy < 3; oy++ {
			for ox := 0; ox < 2; ox++ {
				for ky := 0; ky < 3; ky++ {
					for kx := 0; kx < 2; kx++ {
						iy, ix := oy*2+ky-1, ox*2+kx
						want := int32(2 * 5 * 4)
						if iy >= 0 && iy < 5 && ix >= 0 && ix < 4 {
							want = int32((b*5+iy)*4 + ix)
						}
						require.Equal(t, want, table[i], "b %d out (%d,%d) tap (%d,%d)", b, oy, ox, ky, kx)
						i++
					}
				}
			}
		}
	}
	require.Same(t, WindowIndexTable(g), WindowIndexTable(g))
}

// TestCheckParams: the layers' settings are checked by name and kind before any graph is built, at the scope
// given and at every scope below it where one is set (a setting aimed at one layer); building a graph with a bad
// one panics with the same error.
func TestCheckParams(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value any
		scope string // "" for the root
		err   string
	}{
		{ParamBNSums, "dot", "", ""}, {ParamBNSums, "reduce", "", ""}, {ParamBNSums, "auto", "", ""},
		{ParamBNSums, "sum", "", `-set bn_sums="sum" is not valid: use auto, dot, reduce`},
		{ParamPoolImpl, "gather", "", ""}, {ParamPoolImpl, "fast", "", `-set pool_impl="fast" is not valid: use auto, native, gather, taps`},
		{ParamPoolImpl, 1, "", `-set pool_impl=1 is a number: want a string, as its default "auto" (use auto, native, gather, taps)`},
		{ParamBNMomentum, 0.99, "", ""}, {ParamBNMomentum, 0, "", ""}, {ParamBNMomentum, 1, "", ""},
		{ParamBNMomentum, 1.5, "", "-set bn_momentum=1.5 is not valid: want a number in [0, 1]"},
		{ParamBNMomentum, -0.1, "", "-set bn_momentum=-0.1 is not valid"},
		{ParamBNMomentum, math.NaN(), "", "-set bn_momentum=NaN is not valid"},
		{ParamBNMomentum, "0.9", "", `-set bn_momentum="0.9" is a string: want a number, as its default 0.9`},
		{ParamBNEpsilon, 1e-3, "", ""}, {ParamBNEpsilon, float32(1e-5), "", ""},
		{ParamBNEpsilon, 0.0, "", "-set bn_epsilon=0 is not valid: want a finite number > 0"},
		{ParamBNEpsilon, math.Inf(1), "", "-set bn_epsilon=+Inf is not valid"},
		{ParamBNEpsilon, "1e-5", "", `-set bn_epsilon="1e-5" is a string: want a number`},
		{ParamBNMomentum, 0.5, "stage1/block0/bn1", ""},
		{ParamBNMomentum, 7, "stage1/block0/bn1", "-set bn_momentum=7 is not valid: want a number in [0, 1], the old running " +
			"average's weight (PyTorch's momentum m is 1−m here) (at scope /stage1/block0/bn1)"},
		{ParamBNSums, "sum", "bn", `-set bn_sums="sum" is not valid: use auto, dot, reduce (at scope /bn)`},
	} {
		t.Run(fmt.Sprintf("%s=%v@%s", tc.name, tc.value, tc.scope), func(t *testing.T) {
			ctx := context.New()
			scoped := ctx
			if tc.scope != "" {
				scoped = ctx.InAbsPath("/" + tc.scope)
			}
			scoped.SetParam(tc.name, tc.value)
			err := CheckParams(ctx)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.err)
			if tc.name == ParamBNMomentum || tc.name == ParamBNEpsilon {
				// The graph reads the setting where the layer lives, and panics with CheckParams' error.
				backend := testutil.Backend(t)
				bnCtx := ctx.InAbsPath("/" + tc.scope)
				if tc.scope == "" {
					bnCtx = ctx.In("bn")
				}
				var panicked any
				func() {
					defer func() { panicked = recover() }()
					context.MustExecOnce(backend, bnCtx.Checked(false), func(ctx *context.Context, x *Node) *Node {
						ctx.SetTraining(x.Graph(), true)
						return BatchNorm(ctx, x, false)
					}, tensors.FromValue([][]float32{{1, 2}, {3, 5}}))
				}()
				require.NotNil(t, panicked, "building batch norm with %s=%v", tc.name, tc.value)
				require.Contains(t, fmt.Sprint(panicked), "layers: "+checkParamsAt(bnCtx).Error())
			}
		})
	}
	require.NoError(t, CheckParams(context.New()), "the defaults")
	// Settings of other scopes than ctx's and those below it are not ctx's to check.
	ctx := context.New()
	ctx.InAbsPath("/other").SetParam(ParamBNMomentum, 7)
	require.NoError(t, CheckParams(ctx.InAbsPath("/model")))
	require.Error(t, CheckParams(ctx))
}

// TestGradientPath: GradientPath is a zero of x's dtype, also where Σx overflows x's dtype (float16: the sum is
// taken in float32), and it carries autodiff to x's custom gradient, which only it connects to the output.
func TestGradientPath(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct {
		name  string
		dtype dtypes.DType
		dims  []int
		value float64
	}{
		{"small-float32", dtypes.Float32, []int{4, 3}, 1.5},
		{"large-float32", dtypes.Float32, []int{64, 32, 32}, 1.5},
		{"large-float64", dtypes.Float64, []int{256, 256}, -2},
		{"float16-sum-overflows", dtypes.Float16, []int{256, 256}, 1000}, // Σx = 6.6e7 > 65504
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dtype == dtypes.Float16 && !xla.TestBackendIsXLA() {
				t.Skip("the pure-Go backend has no float16: this case runs in make test's XLA pass")
			}
			outs := MustExecOnceN(backend, func(g *Graph) []*Node {
				x := MulScalar(Ones(g, shapes.Make(tc.dtype, tc.dims...)), tc.value)
				// x's custom gradient is 3 everywhere whatever reaches it: only the path can deliver it.
				xc := IdentityWithCustomGradient(x, func(_, _ *Node) *Node { return MulScalar(OnesLike(x), 3) })
				path := GradientPath(xc)
				y := Add(MulScalar(StopGradient(xc), 2), path)
				return []*Node{path, ConvertDType(path, dtypes.Float64), ConvertDType(Gradient(ReduceAllSum(y), x)[0], dtypes.Float64)}
			})
			require.Equal(t, shapes.Make(tc.dtype), outs[0].Shape())
			require.Equal(t, []float64{0}, testutil.Flat64(t, outs[1]))
			grad := testutil.Flat64(t, outs[2])
			require.Len(t, grad, shapes.Make(tc.dtype, tc.dims...).Size())
			for i, v := range grad {
				require.Equal(t, 3.0, v, "gradient at %d", i)
			}
		})
	}
}
