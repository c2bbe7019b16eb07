package feedback

import (
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestAlignmentGraph checks the weight angle, norm ratio, weight norm and delta angle of every rule against plain
// Go, on a dense layer and a strided conv whose δ is known (loss = Σ y·R, so δ = R).
func TestAlignmentGraph(t *testing.T) {
	backend := testutil.Backend(t)
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
				x := testutil.RandomSlice(rng, ref.n*ref.h*ref.w*ref.c)
				delta := testutil.RandomSlice(rng, ref.n*ref.outH*ref.outW*ref.co)
				outErr := testutil.RandomSlice(rng, lc.n*testClasses)
				rule, err := RuleByName(ruleName)
				require.NoError(t, err)
				fromOutput := rule.Feedback().Source == FromOutputError
				ctx := context.New().Checked(false)
				ctx.SetParam(ParamRule, ruleName)
				ctx.SetParam(ParamOutputDim, testClasses)
				layerCtx := ctx.In("layer")
				outs := execOnceN(t, backend, ctx, func(ctx *context.Context, xNode *Node) []*Node {
					g := xNode.Graph()
					y := lc.build(layerCtx, xNode)
					eNode := ConstTensor(g, tensors.FromFlatDataAndDimensions(outErr, lc.n, testClasses))
					u := OutputError(ctx, Add(ZerosLike(eNode), MulScalar(ReduceAllSum(y), 0))) // e = E, δ = R
					loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(delta, yDims...))))
					_, _ = Gradients(ctx, Add(loss, ReduceAllSum(Mul(u, eNode))))
					al := AlignmentGraph(ctx, g)
					require.Len(t, al, 1)
					require.Equal(t, "/layer", al[0].Scope)
					require.NotNil(t, al[0].DeltaAngle)
					require.Equal(t, fromOutput && lc.out != testClasses, al[0].WeightAngle == nil, "weight angle defined where B has W's shape")
					require.Equal(t, al[0].WeightAngle == nil, al[0].NormRatio == nil,
						"‖B‖/‖W‖ defined where B has W's shape: not between dfa's B towards the classes and W")
					weightAngle, normRatio := al[0].WeightAngle, al[0].NormRatio
					if weightAngle == nil {
						weightAngle, normRatio = Scalar(g, al[0].WeightNorm.DType(), 0), Scalar(g, al[0].WeightNorm.DType(), 0)
					}
					var used *Node
					for _, c := range graphCaptures(ctx, g) {
						if c.scope == layerCtx.Scope() {
							used = c.fb()
						}
					}
					layer := Layers(ctx)[0]
					return []*Node{weightAngle, normRatio, al[0].DeltaAngle, layer.Weights.ValueGraph(g), used,
						al[0].WeightNorm}
				}, tensors.FromFlatDataAndDimensions(x, xDims...))
				w, b := testutil.Flat64(t, outs[3]), testutil.Flat64(t, outs[4])
				if len(b) == len(w) {
					wantAngle := angleBetween(b, w)
					if ruleName == "bp" {
						wantAngle = 0
					}
					require.InDelta(t, wantAngle, testutil.Flat64(t, outs[0])[0], 1e-3, "weight angle")
					require.InDelta(t, norm(b)/norm(w), testutil.Flat64(t, outs[1])[0], 1e-9, "norm ratio")
				}
				require.InEpsilon(t, norm(w), testutil.Flat64(t, outs[5])[0], 1e-6, "weight norm")
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
				require.InDelta(t, mean, testutil.Flat64(t, outs[2])[0], 1e-3, "delta angle")
				if ruleName == "fa" || ruleName == "kp" || ruleName == "wm" || ruleName == "dfa" {
					require.Greater(t, mean, 30.0, "random B: large delta angle")
				}
			})
		}
	}
}

func TestAngleDegrees(t *testing.T) {
	backend := testutil.Backend(t)
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
		// The angle with a zero vector is undefined, not 0° or 90°.
		{[]float64{0, 0}, []float64{0, 0}, math.NaN()},
		{[]float64{0, 0}, []float64{1, 2}, math.NaN()},
		{[]float64{1, 2}, []float64{0, 0}, math.NaN()},
		// Nor is the angle with a vector that overflowed or holds a NaN (a diverged W): it read 0° (W with an Inf).
		{[]float64{math.Inf(1), 1}, []float64{1, 1}, math.NaN()},
		{[]float64{1, 1}, []float64{math.Inf(-1), math.Inf(1)}, math.NaN()},
		{[]float64{math.NaN(), 1}, []float64{1, 1}, math.NaN()},
		// A vector whose squares overflow has a direction all the same (a run's W on its way to diverging).
		{[]float64{1e200, 1e200}, []float64{1, 1}, 0},
		{[]float64{1e200, 0}, []float64{1, 1}, 45},
	} {
		got := context.MustExecOnce(backend, nil, func(ctx *context.Context, a, b *Node) *Node {
			return AngleDegrees(a, b)
		}, tc.a, tc.b)
		if math.IsNaN(tc.want) {
			require.True(t, math.IsNaN(testutil.Flat64(t, got)[0]), "%v vs %v: got %v, want undefined (NaN)", tc.a, tc.b, testutil.Flat64(t, got)[0])
			continue
		}
		require.InDelta(t, tc.want, testutil.Flat64(t, got)[0], 1e-4, "%v vs %v", tc.a, tc.b)
	}
	// Per example: only the example with a zero vector is undefined.
	got := testutil.Flat64(t, context.MustExecOnce(backend, nil, func(ctx *context.Context, a, b *Node) *Node {
		return AngleDegrees(a, b, 0)
	}, [][]float64{{1, 0}, {0, 0}, {1, 1}}, [][]float64{{0, 1}, {1, 1}, {2, 2}}))
	require.InDelta(t, 90, got[0], 1e-4)
	require.True(t, math.IsNaN(got[1]), "zero example: got %v, want NaN", got[1])
	require.InDelta(t, 0, got[2], 1e-4)
}

// TestAlignmentUndefined: examples whose δ is zero are left out of the delta angle and counted; a layer no error
// reaches (dead ReLUs above it) has an undefined delta angle, not 0°; a zero W has an undefined weight angle.
func TestAlignmentUndefined(t *testing.T) {
	backend := testutil.Backend(t)
	const n, in, hidden, out = 6, 5, 32, 3
	rng := rand.New(rand.NewSource(2))
	x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, n*in), n, in)
	for _, tc := range []struct {
		name      string
		zeroRows  []bool // examples whose δ at the output layer is zero
		deadReLU  bool   // the hidden ReLUs are all off: no error reaches the first layer
		zeroW     bool   // the first layer's W (and B) start at zero: nothing passes through it either way
		undefined []int  // examples left out of each layer's delta angle (first, second)
	}{
		{name: "mixed batch", zeroRows: []bool{false, true, false, true, true, false}, undefined: []int{3, 3}},
		{name: "all zero δ", zeroRows: []bool{true, true, true, true, true, true}, undefined: []int{n, n}},
		{name: "dead layer", zeroRows: make([]bool, n), deadReLU: true, undefined: []int{n, 0}},
		{name: "zero weights", zeroRows: make([]bool, n), zeroW: true, undefined: []int{n, 0}},
	} {
		for _, ruleName := range []string{"bp", "fa", "kp"} {
			t.Run(tc.name+"/"+ruleName, func(t *testing.T) {
				r := testutil.RandomSlice(rng, n*out)
				for e, zero := range tc.zeroRows {
					if zero {
						for j := range out {
							r[e*out+j] = 0
						}
					}
				}
				ctx := context.New().Checked(false)
				ctx.SetParam(ParamRule, ruleName)
				require.NoError(t, ctx.SetRNGStateFromSeed(4))
				outs := execOnceN(t, backend, ctx, func(ctx *context.Context, x *Node) []*Node {
					g := x.Graph()
					first := NewDense(ctx.In("first"), x, hidden)
					if tc.zeroW {
						first = first.Initializer(initializers.Zero)
					}
					h := first.Done()
					if tc.deadReLU {
						h = AddScalar(h, -1e3)
					}
					y := Dense(ctx.In("second"), MaxScalar(h, 0), out, true)
					loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(r, n, out))))
					_, _ = Gradients(ctx, loss)
					var nodes []*Node
					for _, a := range AlignmentGraph(ctx, g) {
						nodes = append(nodes, a.WeightAngle, a.DeltaAngle, a.DeltaUndefined)
					}
					return nodes
				}, x)
				require.Len(t, outs, 6)
				for l := range 2 {
					weight, delta := testutil.Flat64(t, outs[3*l])[0], testutil.Flat64(t, outs[3*l+1])[0]
					undefined := int(tensors.MustCopyFlatData[int32](outs[3*l+2])[0])
					require.Equal(t, tc.undefined[l], undefined, "layer %d: examples left out of the delta angle", l)
					if undefined == n {
						require.True(t, math.IsNaN(delta), "layer %d: delta angle %v, want undefined (NaN)", l, delta)
					} else {
						require.False(t, math.IsNaN(delta), "layer %d: delta angle undefined", l)
						if ruleName == "bp" {
							require.InDelta(t, 0, delta, 1e-3, "layer %d", l)
						} else {
							require.Greater(t, delta, 1.0, "layer %d: a random B sends another signal", l)
						}
					}
					if tc.zeroW && l == 0 {
						require.True(t, math.IsNaN(weight), "zero W: weight angle %v, want undefined (NaN)", weight)
					} else {
						require.False(t, math.IsNaN(weight), "layer %d: weight angle undefined", l)
					}
				}
			})
		}
	}
}

// TestAngleDegreesSmallInFloat32: parallel float32 vectors read as 0°, not the ~0.02° that float32 rounding of
// the cosine would give.
func TestAngleDegreesSmallInFloat32(t *testing.T) {
	backend := testutil.Backend(t)
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

// TestGradientAngles: the angle between a rule's weight gradient and the true one is 0 for backprop and at the
// output layer, and for other rules it is the angle between their weight gradients and those of the same network
// (paired initialisation: the same W under one seed) trained by backprop in a separate graph — on a small CNN,
// so that convolutions and a dense output layer are covered.
func TestGradientAngles(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(4))
	const n, h, classes = 6, 6, 5
	x := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, n*h*h*2)), n, h, h, 2)
	r := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, n*classes)), n, classes)
	model := func(ctx *context.Context, x *Node) *Node {
		y := Tanh(NewConv2D(ctx.In("conv1"), x, 4, 3).PadSame().Done())
		y = Tanh(NewConv2D(ctx.In("conv2"), y, 3, 3).Stride(2).PadSame().Done())
		return OutputError(ctx, NewDense(ctx.In("fc"), Reshape(y, n, -1), classes).Done())
	}
	// weightGrads returns each layer's weight gradient under rule (flattened, by scope) and, with angles, the
	// layers' gradient angles.
	weightGrads := func(rule string, angles bool) (map[string][]float64, map[string]float64) {
		ctx := context.New().Checked(false) // the model is built twice in one graph
		ctx.SetParam(ParamRule, rule)
		ctx.SetParam(ParamOutputDim, classes)
		require.NoError(t, ctx.SetRNGStateFromSeed(11))
		var scopes, angleScopes []string
		outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, xNode, rNode *Node) []*Node {
			loss := func() *Node { return ReduceAllSum(Mul(model(ctx, xNode), rNode)) }
			vars, grads := Gradients(ctx, loss())
			byVar := map[*context.Variable]*Node{}
			var out []*Node
			for i, v := range vars {
				if v.Name() == WeightsName {
					byVar[v] = grads[i]
					scopes = append(scopes, v.Scope())
					out = append(out, ConvertDType(grads[i], dtypes.Float64))
				}
			}
			if angles {
				for scope, a := range GradientAngles(ctx, xNode.Graph(), byVar, loss) {
					angleScopes = append(angleScopes, scope)
					out = append(out, ConvertDType(a, dtypes.Float64))
				}
			}
			return out
		}, x, r)
		grads, gotAngles := map[string][]float64{}, map[string]float64{}
		for i, scope := range scopes {
			grads[scope] = testutil.Flat64(t, outs[i])
		}
		for i, scope := range angleScopes {
			gotAngles[scope] = testutil.Flat64(t, outs[len(scopes)+i])[0]
		}
		return grads, gotAngles
	}
	trueGrads, _ := weightGrads("bp", false)
	require.Len(t, trueGrads, 3)
	rules := []string{"bp", "fa", "kp", "ss", "dfa"}
	if xla.TestBackendIsXLA() {
		rules = []string{"bp", "fa", "dfa"} // the others send the same way (their B differs): fewer compilations
	}
	for _, rule := range rules {
		grads, angles := weightGrads(rule, true)
		require.Len(t, angles, 3, rule)
		for scope, angle := range angles {
			want := angleBetween(grads[scope], trueGrads[scope])
			t.Logf("%s %s: %.3f° (want %.3f°)", rule, scope, angle, want)
			require.InDelta(t, want, angle, 0.01, "%s %s", rule, scope)
			if rule == "bp" || scope == "/fc" {
				require.InDelta(t, 0, angle, 0.01, "%s %s: backprop's own gradient", rule, scope)
			} else {
				require.Greater(t, angle, 1.0, "%s %s: a random B bends the gradient", rule, scope)
			}
		}
	}
}

// TestWeightAngleOnlyWhereBStandsForW: under dfa the weight angle and ‖B‖/‖W‖ are measured at the classifier (the
// last layer, whose δ is the output error), not at a hidden layer, also one with as many outputs as classes, whose
// B towards the classes has W's shape by chance (they compared B with a W it does not stand for); rules that send
// B δ measure both at every layer. In bfloat16 such a layer's delta angle stays the float32 one (it was recomputed
// from B δ instead of dfa's B e).
func TestWeightAngleOnlyWhereBStandsForW(t *testing.T) {
	backend := testutil.Backend(t)
	const n, in, classes = 16, 24, 10
	rng := rand.New(rand.NewSource(5))
	x := tensors.FromFlatDataAndDimensions(toF32(testutil.RandomSlice(rng, n*in)), n, in)
	measure := func(rule string, dtype dtypes.DType) (defined []bool, deltaAngles []float64) {
		ctx := context.New().Checked(false)
		ctx.SetParam(ParamRule, rule)
		ctx.SetParam(ParamOutputDim, classes)
		require.NoError(t, ctx.SetRNGStateFromSeed(3))
		outs := execOnceN(t, backend, ctx, func(ctx *context.Context, x *Node) []*Node {
			defined = nil // the function may be built more than once
			// As wide as the classes: the hidden layer's B towards the classes has W's shape.
			h := Dense(ctx.In("hidden"), ConvertDType(x, dtype), classes, true)
			logits := OutputError(ctx, Dense(ctx.In("out"), MaxScalar(h, 0), classes, true))
			logits = ConvertDType(logits, dtypes.Float32)
			_, _ = Gradients(ctx, ReduceAllSum(Mul(logits, logits)))
			al := AlignmentGraph(ctx, x.Graph())
			require.Len(t, al, 2)
			var nodes []*Node
			for _, a := range al {
				require.Equal(t, a.WeightAngle == nil, a.NormRatio == nil, a.Scope)
				defined = append(defined, a.WeightAngle != nil)
				require.NotNil(t, a.DeltaAngle, a.Scope)
				nodes = append(nodes, ConvertDType(a.DeltaAngle, dtypes.Float64))
			}
			return nodes
		}, x)
		for _, o := range outs {
			deltaAngles = append(deltaAngles, testutil.Flat64(t, o)[0])
		}
		return defined, deltaAngles
	}
	for _, tc := range []struct {
		rule    string
		defined []bool // hidden, classifier
	}{
		{"dfa", []bool{false, true}},
		{"fa", []bool{true, true}},
		{"kp", []bool{true, true}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			defined, d32 := measure(tc.rule, dtypes.Float32)
			require.Equal(t, tc.defined, defined)
			_, d16 := measure(tc.rule, dtypes.BFloat16)
			t.Logf("%s delta angles: float32 %.2f°, bfloat16 %.2f°", tc.rule, d32, d16)
			for i := range d32 {
				require.InDelta(t, d32[i], d16[i], 1, "layer %d's delta angle in bfloat16", i)
			}
		})
	}
}
