package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

func TestRuleByName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"bp", "bp"}, {"FA", "fa"}, {" ss ", "ss"}, {"wm", "wm"}, {"kp", "kp"},
		{"dfa", "dfa"}, {"USF", "usf"}, {"frsf", "frsf"}, {"brsf", "brsf"}, {"ia", "ia"}, {"AA", "aa"},
	} {
		r, err := RuleByName(tc.name)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, r.Name())
		require.NotEmpty(t, r.Description())
	}
	_, err := RuleByName("dfa2")
	require.ErrorContains(t, err, `unknown feedback rule "dfa2"`)
	require.ErrorContains(t, err, "valid rules are bp, fa, ss, wm, kp, usf, frsf, brsf, dfa, ia, aa", "in Order")
	require.Equal(t, []string{"bp", "fa", "ss", "wm", "kp", "usf", "frsf", "brsf", "dfa", "ia", "aa"}, RuleNames())
}

// namedRule is a rule of any name, for TestRegisterRefuses.
type namedRule struct {
	RuleBase
	name string
}

func (r namedRule) Name() string             { return r.name }
func (namedRule) Description() string        { return "a test rule" }
func (namedRule) Kernel(l *LayerGraph) *Node { return l.W }

// settingRule is a namedRule that declares settings.
type settingRule struct {
	namedRule
	settings []Setting
}

func (r settingRule) Settings() []Setting { return r.settings }

// TestRegisterRefuses: Register panics, naming the problem, for a nil rule and for a name that RuleByName could
// not find again or that lists and -set strings could not carry (it used to register " sa", after which Rules,
// AllSettings, DefaultParams and ValidateParams dereferenced a nil rule), and registers nothing then.
func TestRegisterRefuses(t *testing.T) {
	for _, tc := range []struct {
		what string
		rule Rule
		want string
	}{
		{"nil", nil, "feedback.Register: nil rule"},
		{"empty name", namedRule{name: ""}, `feedback.Register: rule name "" is not valid: use letters, digits, '-' and '_' only`},
		{"leading space", namedRule{name: " sa"}, `feedback.Register: rule name " sa" is not valid: use letters, digits, '-' and '_' only`},
		{"inner space", namedRule{name: "s a"}, `feedback.Register: rule name "s a" is not valid: use letters, digits, '-' and '_' only`},
		{"comma", namedRule{name: "sa,sb"}, `feedback.Register: rule name "sa,sb" is not valid: use letters, digits, '-' and '_' only`},
		{"slash", namedRule{name: "../sa"}, `feedback.Register: rule name "../sa" is not valid: use letters, digits, '-' and '_' only`},
		{"semicolon", namedRule{name: "sa;x=1"}, `feedback.Register: rule name "sa;x=1" is not valid: use letters, digits, '-' and '_' only`},
		{"twice", Backprop{}, `feedback: rule "bp" registered twice`},
		{"upper case", namedRule{name: "UP"}, `feedback.Register: rule name "UP" is not valid: rule names are lower case ("up")`},
		{"a setting's other default", settingRule{namedRule{name: "kd"}, []Setting{{Name: ParamKPDecay, Default: 0.5}}},
			`feedback.Register: rule "kd" declares setting "kp_decay" with default 0.5, but it is already declared with ` +
				`default -1: give the rule's setting a name of its own (e.g. kd_kp_decay)`},
	} {
		t.Run(tc.what, func(t *testing.T) {
			before := RuleNames()
			require.PanicsWithValue(t, tc.want, func() { Register(tc.rule) })
			require.Equal(t, before, RuleNames(), "nothing registered")
			require.NotPanics(t, func() { _ = AllSettings() })
		})
	}
}

// TestLayerArgumentsRefused: Dense and Conv2D refuse what they cannot build with a panic naming the layer's scope
// and the argument (GoMLX's graph-building convention); a size ≤ 0 used to fail deep in GoMLX ("index out of
// range [0] with length 0" for a kernel of size 0), and a nil input was reported as a scalar.
func TestLayerArgumentsRefused(t *testing.T) {
	backend := testutil.Backend(t)
	f32 := func(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
	for _, tc := range []struct {
		what  string
		input shapes.Shape
		build func(ctx *context.Context, x *Node)
		want  string
	}{
		{"dense nil context", f32(2, 3), func(_ *context.Context, x *Node) { Dense(nil, x, 4, true) },
			"feedback.Dense: nil context"},
		{"dense nil input", f32(2, 3), func(ctx *context.Context, _ *Node) { Dense(ctx.In("d"), nil, 4, true) },
			"feedback.Dense(/d): nil input"},
		{"dense scalar", f32(), func(ctx *context.Context, x *Node) { Dense(ctx.In("d"), x, 4, true) },
			"feedback.Dense(/d): input must have rank ≥ 1, got a scalar"},
		{"dense output 0", f32(2, 3), func(ctx *context.Context, x *Node) { Dense(ctx.In("d"), x, 0, true) },
			"feedback.Dense(/d): output dimension must be ≥ 1, got 0"},
		{"dense output -1", f32(2, 3), func(ctx *context.Context, x *Node) { Dense(ctx.In("d"), x, -1, true) },
			"feedback.Dense(/d): output dimension must be ≥ 1, got -1"},
		{"dense int32", shapes.Make(dtypes.Int32, 2, 3), func(ctx *context.Context, x *Node) { Dense(ctx.In("d"), x, 4, true) },
			"feedback.Dense(/d): input must be of a float type, got Int32: convert it first (ConvertDType)"},
		{"conv uint8", shapes.Make(dtypes.Uint8, 1, 4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 3, 3).Done() },
			"feedback.Conv2D(/c): input must be of a float type, got Uint8: convert it first (ConvertDType)"},
		{"conv nil context", f32(1, 4, 4, 2), func(_ *context.Context, x *Node) { NewConv2D(nil, x, 3, 3).Done() },
			"feedback.Conv2D: nil context"},
		{"conv nil input", f32(1, 4, 4, 2), func(ctx *context.Context, _ *Node) { NewConv2D(ctx.In("c"), nil, 3, 3).Done() },
			"feedback.Conv2D(/c): nil input"},
		{"conv rank 3", f32(4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 3, 3).Done() },
			"feedback.Conv2D(/c): input must be [batch, height, width, channels], got shape (Float32)[4 4 2]"},
		{"conv channels 0", f32(1, 4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 0, 3).Done() },
			"feedback.Conv2D(/c): output channels must be ≥ 1, got 0"},
		{"conv kernel 0", f32(1, 4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 3, 0).Done() },
			"feedback.Conv2D(/c): kernel size must be ≥ 1, got 0x0"},
		{"conv kernel -1", f32(1, 4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 3, -1).Done() },
			"feedback.Conv2D(/c): kernel size must be ≥ 1, got -1x-1"},
		{"conv stride 0", f32(1, 4, 4, 2), func(ctx *context.Context, x *Node) { NewConv2D(ctx.In("c"), x, 3, 3).Stride(0).Done() },
			"feedback.Conv2D(/c): stride must be ≥ 1, got 0"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			g := NewGraph(backend, tc.what)
			x := Parameter(g, "x", tc.input)
			require.PanicsWithValue(t, tc.want, func() { tc.build(context.New(), x) })
		})
	}
}

// TestSortNames: listings, tables and plots put the paper's five in their conventional order, then the rules
// beyond them in theirs, then any other rule by name; every rule nowt registers has its place in Order.
func TestSortNames(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rules     []string
		wantOrder []string
	}{
		{"paper's five", []string{"kp", "wm", "fa", "bp", "ss"}, []string{"bp", "fa", "ss", "wm", "kp"}},
		{"beyond the paper", []string{"brsf", "aa", "dfa", "frsf", "ia", "usf", "bp"}, []string{"bp", "usf", "frsf", "brsf", "dfa", "ia", "aa"}},
		{"unregistered last, by name", []string{"zeta", "alpha", "ia", "fa"}, []string{"fa", "ia", "alpha", "zeta"}},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := slices.Clone(tc.rules)
			require.Equal(t, tc.wantOrder, SortNames(tc.rules))
			require.Equal(t, input, tc.rules, "SortNames sorts a copy")
		})
	}
	for _, name := range RuleNames() {
		require.Contains(t, Order, name, "rule %s has no place in Order: comparisons would list it by name, after the rest", name)
	}
}

// TestBackpropMatchesAutodiff: rule bp on a dense stack gives exactly GoMLX's own autodiff of the same stack.
func TestBackpropMatchesAutodiff(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(3))
	x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 6*5), 6, 5)
	r := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 6*3), 6, 3)
	ctx := context.New()
	ctx.SetParam(ParamRule, "bp")
	stack := func(ctx *context.Context, x *Node, plain bool) *Node {
		layer := func(scope string, x *Node, out int) *Node {
			if !plain {
				return Dense(ctx.In(scope), x, out, true)
			}
			s := ctx.In(scope)
			w := s.GetVariableByScopeAndName(s.Scope(), WeightsName).ValueGraph(x.Graph())
			b := s.GetVariableByScopeAndName(s.Scope(), BiasesName).ValueGraph(x.Graph())
			return Add(Dot(x, w), ExpandLeftToRank(b, 2))
		}
		h := Tanh(layer("d1", x, 8))
		h = Tanh(layer("d2", h, 4))
		return layer("d3", h, 3)
	}
	grads := func(plain bool) [][]float64 {
		outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, x, r *Node) []*Node {
			loss := ReduceAllSum(Mul(stack(ctx, x, plain), r))
			var nodes []*Node
			for v := range ctx.IterVariables() {
				if v.Trainable {
					nodes = append(nodes, v.ValueGraph(x.Graph()))
				}
			}
			return Gradient(loss, append([]*Node{x}, nodes...)...)
		}, x, r)
		var all [][]float64
		for _, o := range outs {
			all = append(all, testutil.Flat64(t, o))
		}
		return all
	}
	custom := grads(false) // creates the variables
	plain := grads(true)
	require.Len(t, custom, 7) // x + 3×(W, b)
	for i := range custom {
		testutil.RequireClose(t, plain[i], custom[i], 1e-9, "gradient")
	}
}

// TestConvBackpropFiniteDifferences: rule bp through a conv stack (both strides, both paddings) matches a
// central finite difference of the loss along a random direction of all parameters and the input.
func TestConvBackpropFiniteDifferences(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(5))
	x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 2*7*7*3), 2, 7, 7, 3)
	ctx := context.New()
	ctx.SetParam(ParamRule, "bp")
	model := func(ctx *context.Context, x *Node) *Node {
		h := Tanh(NewConv2D(ctx.In("c1"), x, 4, 3).Stride(2).Done())
		h = Tanh(NewConv2D(ctx.In("c2"), h, 3, 3).NoPadding().Bias(false).Done())
		h = Tanh(NewConv2D(ctx.In("c3"), h, 2, 1).Done())
		return ReduceAllSum(Square(Dense(ctx.In("d"), Reshape(h, 2, -1), 2, true)))
	}
	var vars []*context.Variable
	outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, x *Node) []*Node {
		loss := model(ctx, x)
		nodes := []*Node{x}
		for v := range ctx.IterVariables() {
			if v.Trainable {
				vars = append(vars, v)
				nodes = append(nodes, v.ValueGraph(x.Graph()))
			}
		}
		return Gradient(loss, nodes...)
	}, x)
	// A random direction: the directional derivative from the gradients ...
	dirs := make([][]float64, len(outs))
	var analytic float64
	for i, o := range outs {
		g := testutil.Flat64(t, o)
		dirs[i] = testutil.RandomSlice(rng, len(g))
		for j := range g {
			analytic += g[j] * dirs[i][j]
		}
	}
	// ... and from the loss at θ ± εu.
	originals := make([][]float64, len(vars))
	for i, v := range vars {
		originals[i] = testutil.Flat64(t, v.MustValue())
	}
	lossAt := func(eps float64) float64 {
		for i, v := range vars {
			moved := make([]float64, len(originals[i]))
			for j := range moved {
				moved[j] = originals[i][j] + eps*dirs[i+1][j]
			}
			require.NoError(t, v.SetValue(tensors.FromFlatDataAndDimensions(moved, v.Shape().Dimensions...)))
		}
		xv := testutil.Flat64(t, x)
		for j := range xv {
			xv[j] += eps * dirs[0][j]
		}
		out := context.MustExecOnce(backend, ctx.Reuse(), model, tensors.FromFlatDataAndDimensions(xv, x.Shape().Dimensions...))
		return testutil.Flat64(t, out)[0]
	}
	const eps = 1e-5
	numeric := (lossAt(eps) - lossAt(-eps)) / (2 * eps)
	require.InDelta(t, numeric, analytic, 1e-6*math.Max(1, math.Abs(numeric)), "directional derivative")
}

// trainSteps runs steps of plain SGD (learning rate lr, weight decay decay) on a two-layer dense net under
// the given rule, updating every pair returned by Gradients. It returns the context.
func trainSteps(t *testing.T, rule string, steps int, lr, decay float64, onStep func(ctx *context.Context, step int)) *context.Context {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(7))
	x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 16*6), 16, 6)
	target := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 16*3), 16, 3)
	ctx := context.New()
	ctx.SetParam(ParamRule, rule)
	require.NoError(t, ctx.SetRNGStateFromSeed(1))
	exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, x, target *Node) *Node {
		h := Tanh(Dense(ctx.In("d1"), x, 5, true))
		y := Dense(ctx.In("d2"), h, 3, true)
		loss := ReduceAllMean(Square(Sub(y, target)))
		vars, grads := Gradients(ctx, loss)
		for i, v := range vars {
			value := v.ValueGraph(x.Graph())
			v.SetValueGraph(Sub(value, MulScalar(Add(grads[i], MulScalar(value, decay)), lr)))
		}
		return loss
	})
	// Build the graph and initialise the variables, so that onStep sees them before the first step.
	require.NoError(t, exec.PreCompile(x, target))
	require.NoError(t, ctx.InitializeVariables(backend, nil))
	for step := 0; step < steps; step++ {
		if onStep != nil {
			onStep(ctx, step)
		}
		exec.MustExec(x, target)
	}
	if onStep != nil {
		onStep(ctx, steps)
	}
	return ctx
}

// TestKolenPollackDecay: with plain SGD (rate η) and weight decay λ applied by the optimizer to W and to B
// through Gradients, W − B shrinks by exactly (1 − ηλ) per step: ‖W(t) − B(t)‖ = (1 − ηλ)^t ‖W(0) − B(0)‖.
func TestKolenPollackDecay(t *testing.T) {
	const lr, decay, steps = 0.1, 0.5, 50 // per-step decay factor ηλ = 0.05
	initial := map[string]float64{}
	trainSteps(t, "kp", steps, lr, decay, func(ctx *context.Context, step int) {
		for _, layer := range Layers(ctx) {
			require.NotNil(t, layer.Feedback)
			dist := distance(testutil.Flat64(t, layer.Weights.MustValue()), testutil.Flat64(t, layer.Feedback.MustValue()))
			if step == 0 {
				initial[layer.Scope] = dist
				continue
			}
			want := initial[layer.Scope] * math.Pow(1-lr*decay, float64(step))
			require.InEpsilon(t, want, dist, 1e-3, "layer %s step %d", layer.Scope, step)
		}
	})
	require.Len(t, initial, 2)
}

func distance(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s)
}

// TestFeedbackAlignmentKeepsB: FA's B does not change in training, while W does and the loss falls.
func TestFeedbackAlignmentKeepsB(t *testing.T) {
	var b0, w0 [][]float64
	trainSteps(t, "fa", 20, 0.1, 1e-3, func(ctx *context.Context, step int) {
		layers := Layers(ctx)
		require.Len(t, layers, 2)
		for i, layer := range layers {
			b := testutil.Flat64(t, layer.Feedback.MustValue())
			w := testutil.Flat64(t, layer.Weights.MustValue())
			if b0 == nil || len(b0) <= i {
				b0, w0 = append(b0, b), append(w0, w)
				continue
			}
			require.Equal(t, b0[i], b, "FA's B changed at step %d", step)
			if step == 20 {
				require.Greater(t, distance(w0[i], w), 1e-3, "W must have trained")
			}
		}
	})
}

// TestSignSymmetryScaleIsFixed: SS's scale is W's RMS at the first step, and stays fixed as W trains.
func TestSignSymmetryScaleIsFixed(t *testing.T) {
	var rms0 []float64
	trainSteps(t, "ss", 10, 0.2, 0, func(ctx *context.Context, step int) {
		for i, layer := range Layers(ctx) {
			w := testutil.Flat64(t, layer.Weights.MustValue())
			scaleVar := ctx.GetVariableByScopeAndName(layer.Scope, ssScaleName)
			if step == 0 {
				var ss float64
				for _, v := range w {
					ss += v * v
				}
				rms0 = append(rms0, math.Sqrt(ss/float64(len(w))))
				continue
			}
			require.NotNil(t, scaleVar)
			require.InEpsilon(t, rms0[i], testutil.Flat64(t, scaleVar.MustValue())[0], 1e-9)
		}
	})
	require.Len(t, rms0, 2)
}

// mirrorAngles runs mirror steps alone on one layer from a random B and returns the weight angle before and after.
func mirrorAngles(t *testing.T, conv bool, steps int) (before, after float64) {
	backend := testutil.Backend(t)
	ctx := context.New()
	ctx.SetParam(ParamRule, "wm")
	ctx.SetParam(ParamWMNoise, "gaussian")
	ctx.SetParam(ParamWMNoiseScale, 1.0)
	ctx.SetParam(ParamWMLearningRate, 0.02)
	ctx.SetParam(ParamWMDecay, 0.02)
	ctx.SetParam(ParamWMBatch, 256)
	require.NoError(t, ctx.SetRNGStateFromSeed(11))
	shape := []int{2, 10, 10, 8}
	if !conv {
		shape = []int{2, 64}
	}
	build := context.MustNewExec(backend, ctx, func(ctx *context.Context, x *Node) *Node {
		if conv {
			return NewConv2D(ctx.In("c"), x, 16, 3).Done()
		}
		return Dense(ctx.In("d"), x, 32, true)
	})
	build.MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, shape...)))
	angle := func() float64 {
		layer := Layers(ctx)[0]
		return angleBetween(toF64(layer.Feedback.MustValue()), toF64(layer.Weights.MustValue()))
	}
	before = angle()
	mirror := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
		require.Equal(t, 1, MirrorStep(ctx, g))
		return Const(g, int32(0))
	})
	for range steps {
		mirror.MustExec()
	}
	return before, angle()
}

func toF64(t *tensors.Tensor) []float64 {
	f := tensors.MustCopyFlatData[float32](t)
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

// TestWeightMirrorAligns: mirror steps alone bring B from ~90° to under 5° (dense) and 10° (conv) of W.
func TestWeightMirrorAligns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conv  bool
		limit float64
	}{{"dense", false, 5}, {"conv", true, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			before, after := mirrorAngles(t, tc.conv, 400)
			t.Logf("%s: weight angle %.1f° → %.2f° after 400 mirror steps", tc.name, before, after)
			require.InDelta(t, 90, before, 15, "random B starts near 90°")
			require.Less(t, after, tc.limit)
		})
	}
}

// TestWeightMirrorLag: the mirror is a low-pass filter. With η_B = λ_B = η, B is an exponential average of
// the mirror's (unbiased) estimate of W, so when W drifts by D per step, B settles at W − ((1−η)/η)·D: it lags
// (1−η)/η steps behind (99 at the released η = 0.01). This is why a fast-moving W outruns the default mirror
// (docs/results.md, Fashion-MNIST) and a larger η keeps up.
func TestWeightMirrorLag(t *testing.T) {
	for _, eta := range []float64{0.05, 0.2} {
		t.Run(fmt.Sprintf("eta=%g", eta), func(t *testing.T) {
			backend := testutil.Backend(t)
			ctx := context.New()
			ctx.SetParam(ParamRule, "wm")
			ctx.SetParam(ParamWMNoise, "gaussian")
			ctx.SetParam(ParamWMNoiseScale, 1.0)
			ctx.SetParam(ParamWMLearningRate, eta)
			ctx.SetParam(ParamWMDecay, eta)
			ctx.SetParam(ParamWMBatch, 2048)
			require.NoError(t, ctx.SetRNGStateFromSeed(3))
			context.MustNewExec(backend, ctx, func(ctx *context.Context, x *Node) *Node {
				return Dense(ctx.In("d"), x, 32, false)
			}).MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, 2, 64)))
			layer := Layers(ctx)[0]
			mirror := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
				MirrorStep(ctx, g)
				return Const(g, int32(0))
			})
			steps := int(4 / eta) // (1−η)^steps < 2 %: transients gone.
			for range steps {     // Settle on the fixed W.
				mirror.MustExec()
			}
			w := toF64(layer.Weights.MustValue())
			rng := rand.New(rand.NewSource(5))
			lag := (1 - eta) / eta
			drift := testutil.RandomSlice(rng, len(w))
			scale := norm(w) / lag / norm(drift) // The lag predicted is then ‖W‖ at the start of the drift.
			for i := range drift {
				drift[i] *= scale
			}
			for range steps { // W moves by drift each step, then one mirror step.
				for i := range w {
					w[i] += drift[i]
				}
				require.NoError(t, layer.Weights.SetValue(tensors.FromFlatDataAndDimensions(toF32(w), 64, 32)))
				mirror.MustExec()
			}
			b := toF64(layer.Feedback.MustValue())
			lagged := make([]float64, len(w))
			for i := range w {
				lagged[i] = w[i] - lag*drift[i]
			}
			lagNorm := lag * norm(drift)
			t.Logf("η=%g: ‖B−W‖ = %.3f, predicted lag %.3f; ‖B−(W−lag·D)‖ = %.3f", eta, distance(b, w), lagNorm, distance(b, lagged))
			require.InEpsilon(t, lagNorm, distance(b, w), 0.25, "B trails W by (1−η)/η steps of drift")
			require.Less(t, distance(b, lagged), 0.5*lagNorm, "B is W as it was (1−η)/η steps ago")
		})
	}
}

// TestWeightMirrorNoiseFloor: on a fixed W, the mirror's B settles at W plus the noise of its estimate, and that
// noise has a known size. One mirror step estimates Wᵀ from n noise samples x (variance σ², kurtosis κ) with
// relative error ‖ε‖²/‖W‖² = (d + κ − 2)/n (d the layer's inputs: per element, Σᵢ W²ₖᵢ + (κ−2)·W²ₖⱼ over n); with
// η_B = λ_B = λ, B is an exponential average of those estimates, which keeps λ/(2−λ) of their variance. So
//
//	‖B − W‖²/‖W‖² = λ/(2−λ) · (d + κ − 2)/n,   and ∠(B, Wᵀ) ≈ arctan of its square root,
//
// a floor that no number of steps lowers: only more samples (ParamWMBatch) or a longer average (smaller λ).
// On docs/results.md's CIFAR-10 ResNet-20 (n = 256, λ = 0.1) it predicts every WM layer's final angle within
// 0.4°: 9.8°, 13.7° and 19.0° for 16, 32 and 64 input channels. Convolutions count patches as samples (their
// overlaps do not add to the error for an unstructured W).
func TestWeightMirrorNoiseFloor(t *testing.T) {
	const lambda = 0.1
	for _, tc := range []struct {
		name, noise string
		kurtosis    float64
		conv        bool
		batch       int
	}{
		{"dense/uniform/n=64", "uniform", 1.8, false, 64},
		{"dense/gaussian/n=256", "gaussian", 3, false, 256},
		{"conv/uniform/n=256", "uniform", 1.8, true, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := testutil.Backend(t)
			ctx := context.New()
			ctx.SetParam(ParamRule, "wm")
			ctx.SetParam(ParamWMNoise, tc.noise)
			ctx.SetParam(ParamWMLearningRate, lambda)
			ctx.SetParam(ParamWMDecay, lambda)
			ctx.SetParam(ParamWMBatch, tc.batch)
			require.NoError(t, ctx.SetRNGStateFromSeed(17))
			shape, inputs := []int{2, 64}, 64
			if tc.conv {
				shape, inputs = []int{2, 10, 10, 16}, 3*3*16
			}
			context.MustNewExec(backend, ctx, func(ctx *context.Context, x *Node) *Node {
				if tc.conv {
					return NewConv2D(ctx.In("c"), x, 16, 3).Bias(false).Done()
				}
				return Dense(ctx.In("d"), x, 32, false)
			}).MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, shape...)))
			layer := Layers(ctx)[0]
			mirror := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
				require.Equal(t, 1, MirrorStep(ctx, g))
				return Const(g, int32(0))
			})
			for range 80 { // (1−λ)⁸⁰ < 10⁻³: B's random start is gone.
				mirror.MustExec()
			}
			w := toF64(layer.Weights.MustValue())
			const measured = 100
			var sum float64
			for range measured {
				mirror.MustExec()
				d := distance(toF64(layer.Feedback.MustValue()), w) / norm(w)
				sum += d * d
			}
			got := sum / measured
			want := lambda / (2 - lambda) * (float64(inputs) + tc.kurtosis - 2) / float64(tc.batch)
			floor, ok := MirrorNoiseFloor(ctx, layer)
			require.True(t, ok)
			require.InDelta(t, math.Atan(math.Sqrt(want))*180/math.Pi, floor, 1e-9, "MirrorNoiseFloor")
			t.Logf("‖B−W‖²/‖W‖² = %.4f, predicted %.4f (angle ≈ %.1f°, predicted %.1f°)", got, want,
				math.Atan(math.Sqrt(got))*180/math.Pi, math.Atan(math.Sqrt(want))*180/math.Pi)
			// 100 readings of a sum over 2,048 or 2,304 elements, correlated over ~1/λ steps: a few per cent of noise.
			require.InEpsilon(t, want, got, 0.1)
		})
	}
}

// TestMirrorNoiseFloorApplies: the floor is defined for layers that learn by decaying mirror steps, and only there.
func TestMirrorNoiseFloorApplies(t *testing.T) {
	for _, tc := range []struct {
		rule    string
		rescale bool
		want    bool
	}{{"wm", false, true}, {"wm", true, false}, {"kp", false, false}, {"fa", false, false}, {"bp", false, false}} {
		ctx := context.New()
		ctx.SetParam(ParamRule, tc.rule)
		ctx.SetParam(ParamWMRescale, tc.rescale)
		context.MustNewExec(testutil.Backend(t), ctx, func(ctx *context.Context, x *Node) *Node {
			return Dense(ctx.In("d"), x, 8, false)
		}).MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, 2, 16)))
		floor, ok := MirrorNoiseFloor(ctx, Layers(ctx)[0])
		require.Equal(t, tc.want, ok, "rule %s, rescale %v", tc.rule, tc.rescale)
		if ok { // The defaults: n = 128, λ_B = 0.01, uniform noise, 16 inputs.
			require.InDelta(t, math.Atan(math.Sqrt(0.01/1.99*15.8/128))*180/math.Pi, floor, 1e-9)
		}
	}
}

func norm(a []float64) float64 {
	var s float64
	for _, v := range a {
		s += v * v
	}
	return math.Sqrt(s)
}

func toF32(a []float64) []float32 {
	out := make([]float32, len(a))
	for i, v := range a {
		out[i] = float32(v)
	}
	return out
}
