package feedback

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// Variable names used by every feedback layer inside its scope.
const (
	// WeightsName is the layer's forward weights W.
	WeightsName = "weights"
	// BiasesName is the layer's optional bias.
	BiasesName = "biases"
	// FeedbackName is the layer's stored feedback weights B (rules fa, wm, kp), in W's layout.
	FeedbackName = "feedback"

	// paramLayerKind marks a scope as a feedback layer; its value is the layer kind.
	paramLayerKind = "feedback_layer"
)

// Layer kinds.
const (
	KindDense = "dense"
	KindConv  = "conv"
)

// Layer describes one feedback layer found in a context.
type Layer struct {
	// Scope is the layer's context scope, e.g. "/model/block1/conv2".
	Scope string
	// Kind is KindDense or KindConv.
	Kind string
	// Rule governs the layer's feedback.
	Rule Rule
	// Weights is W.
	Weights *context.Variable
	// Feedback is the stored B, or nil for rules that compute B from W (bp, ss).
	Feedback *context.Variable
}

// Layers lists the feedback layers built so far in ctx (in any scope), in the order of their weights'
// creation.
func Layers(ctx *context.Context) []Layer {
	kinds := map[string]string{}
	ctx.EnumerateParams(func(scope, key string, value any) {
		if key == paramLayerKind {
			if kind, ok := value.(string); ok {
				kinds[scope] = kind
			}
		}
	})
	var layers []Layer
	for v := range ctx.IterVariables() {
		kind, found := kinds[v.Scope()]
		if !found || v.Name() != WeightsName {
			continue
		}
		layerCtx := ctx.InAbsPath(v.Scope())
		layers = append(layers, Layer{
			Scope:    v.Scope(),
			Kind:     kind,
			Rule:     RuleFromContext(layerCtx),
			Weights:  v,
			Feedback: ctx.GetVariableByScopeAndName(v.Scope(), FeedbackName),
		})
	}
	return layers
}

// FeedbackGraph builds the layer's current feedback weights (in W's layout) in graph g.
func (l Layer) FeedbackGraph(ctx *context.Context, g *Graph) *Node {
	return l.Rule.Feedback(ctx.InAbsPath(l.Scope), l.Weights.ValueGraph(g))
}

// feedbackVariable returns the "feedback" variable of the layer in ctx's scope. It must have been created by
// createFeedback.
func feedbackVariable(ctx *context.Context, shape shapes.Shape) *context.Variable {
	v := ctx.GetVariableByScopeAndName(ctx.Scope(), FeedbackName)
	if v == nil {
		panic(fmt.Sprintf("feedback: layer %q has no %q variable: was it built by feedback.Dense/Conv2D under a rule that stores B?", ctx.Scope(), FeedbackName))
	}
	if !v.Shape().Equal(shape) {
		panic(fmt.Sprintf("feedback: layer %q: feedback variable has shape %s, weights have %s", ctx.Scope(), v.Shape(), shape))
	}
	return v
}

// newLayerWeights creates (or reuses) W and, for rules that store it, B, in ctx's scope, both drawn with
// the given initializer (nil means He-normal), B by [feedbackInitializer]. It marks the scope as a feedback
// layer of the given kind.
func newLayerWeights(ctx *context.Context, kind string, shape shapes.Shape, init context.VariableInitializer) (Rule, *context.Variable) {
	if init == nil {
		init = initializers.HeFn(ctx)
	}
	ctx.SetParam(paramLayerKind, kind)
	rule := RuleFromContext(ctx)
	w := ctx.WithInitializer(init).VariableWithShape(WeightsName, shape)
	if rule.StoresFeedback() {
		ctx.WithInitializer(feedbackInitializer(ctx, init)).VariableWithShape(FeedbackName, shape).SetTrainable(false)
	}
	return rule, w
}

// feedbackStreamKey is mixed into the context's random state to make the stream B is drawn from.
const feedbackStreamKey = 0x6e6f77742d422121 // "nowt-B!!"

// feedbackInitializer is how every stored B starts: drawn with W's initializer init, scaled by ParamInitScale,
// from a random stream of its own. The stream is split off the context's random state (its "#rngState"
// variable) as it stands when B is initialised, and that state is left as it was, so that drawing B consumes
// none of the randomness W, the biases and the other variables are drawn from: under one seed, every rule
// starts from the same network, whether or not it stores B. B itself depends only on the seed and the layer.
func feedbackInitializer(ctx *context.Context, init context.VariableInitializer) context.VariableInitializer {
	scale := context.GetParamOr(ctx, ParamInitScale, 1.0)
	return func(g *Graph, s shapes.Shape) *Node {
		state := ctx.GetVariableByScopeAndName(context.RootScope, context.RNGStateVariableName)
		if state == nil || !state.HasValue() {
			// Nothing random was drawn yet: seed the context's state as its first draw would.
			if err := ctx.ResetRNGState(); err == nil {
				state = ctx.GetVariableByScopeAndName(context.RootScope, context.RNGStateVariableName)
			}
		}
		var saved *Node
		if state != nil && state.HasValue() {
			saved = state.ValueGraph(g)
			key := Const(g, []uint64{feedbackStreamKey, feedbackStreamKey, feedbackStreamKey})
			_, own := RNGStateSplit(BitwiseXor(saved, ConvertDType(key, saved.DType())))
			state.SetValueGraph(own)
		}
		values := init(g, s)
		if saved != nil {
			state.SetValueGraph(saved)
		}
		if scale != 1 {
			values = MulScalar(values, scale)
		}
		return values
	}
}

// biasVariable creates (or reuses) the layer's bias, initialised to zero.
func biasVariable(ctx *context.Context, dtype dtypes.DType, dim int) *context.Variable {
	return ctx.WithInitializer(initializers.Zero).VariableWithShape(BiasesName, shapes.Make(dtype, dim))
}

// linearOp is a linear map y = f(x, W) whose backward the feedback layers own.
type linearOp interface {
	// forward computes y from x and W.
	forward(x, w *Node) *Node
	// inputGrad sends δ down through kernel (W for backprop, B for the other rules).
	inputGrad(delta, kernel *Node) *Node
	// weightGrad computes ∂L/∂W from x and δ.
	weightGrad(x, delta *Node) *Node
}

// capture records, for one layer in one graph, what the alignment metrics need after the gradient is built.
type capture struct {
	scope string
	op    linearOp
	w     *Node
	fb    func() *Node
	delta *Node // set when the gradient is built
}

// capturesKey is the graph parameter (see context.Context.SetGraphParam) under which the captures of a graph's
// feedback layers are kept, at the root scope. Graph parameters are GoMLX's storage for what belongs to one
// graph: they live in the context's data, keyed by the graph, so they are owned per graph and released with the
// context that built it (a process that trains many models, as compare or a notebook does, keeps none of the
// finished runs' graphs alive), and two contexts never see each other's captures.
const capturesKey = "feedback_captures"

func addCapture(ctx *context.Context, g *Graph, c *capture) {
	root := ctx.InAbsPath(context.RootScope)
	list, _ := root.GetGraphParam(g, capturesKey)
	captures, _ := list.([]*capture)
	root.SetGraphParam(g, capturesKey, append(captures, c))
}

func graphCaptures(ctx *context.Context, g *Graph) []*capture {
	list, _ := ctx.InAbsPath(context.RootScope).GetGraphParam(g, capturesKey)
	captures, _ := list.([]*capture)
	return captures
}

// withFeedback builds y = op(x, W) with the rule's backward: ∂L/∂x = op.inputGrad(δ, B) and
// ∂L/∂W = op.weightGrad(x, δ), where δ = ∂L/∂y is captured at the output.
func withFeedback(ctx *context.Context, rule Rule, x, w *Node, op linearOp) *Node {
	if p, ok := rule.(PreparedFeedback); ok {
		p.Prepare(ctx, w)
	}
	c := &capture{scope: ctx.Scope(), op: op, w: w}
	var fb *Node
	c.fb = func() *Node {
		if fb == nil {
			fb = StopGradient(rule.Feedback(ctx, w))
		}
		return fb
	}
	xh := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		return op.inputGrad(c.delta, c.fb())
	})
	wh := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		return op.weightGrad(x, c.delta)
	})
	y := op.forward(xh, wh)
	addCapture(ctx, x.Graph(), c)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		c.delta = v
		return v
	})
}
