package feedback

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/layers"
)

// Variable names used by every feedback layer inside its scope.
const (
	// WeightsName is the layer's forward weights W.
	WeightsName = "weights"
	// BiasesName is the layer's optional bias.
	BiasesName = "biases"
	// FeedbackName is the layer's stored feedback weights B (rules fa, wm, kp), in W's layout.
	FeedbackName = "feedback"
	// SentKernelName is the kernel a layer sent its signal through at the last training step, kept where the
	// rule computes it from W at every step (ss, usf, frsf, brsf), in W's master dtype: see [SentKernels].
	SentKernelName = "sent_kernel"

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
// creation; none for a nil ctx.
func Layers(ctx *context.Context) []Layer {
	if ctx == nil {
		return nil
	}
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

// FeedbackGraph builds, in graph g, the kernel the layer's rule sends its signal through (see [Rule.Kernel]).
func (l Layer) FeedbackGraph(ctx *context.Context, g *Graph) *Node {
	lg := &LayerGraph{Ctx: ctx.InAbsPath(l.Scope), Kind: l.Kind, W: l.Weights.ValueGraph(g)}
	if l.Feedback != nil {
		lg.B = l.Feedback.ValueGraph(g)
	}
	lg.Init = initializers.HeFn(lg.Ctx)
	return l.Rule.Kernel(lg)
}

// feedbackShape is the shape of the stored B of a layer with weights of shape wShape under spec: W's, or for
// FromOutputError W's with the classes ([ParamOutputDim]) as last axis.
func feedbackShape(ctx *context.Context, rule Rule, spec FeedbackSpec, wShape shapes.Shape) shapes.Shape {
	if spec.Source != FromOutputError {
		return wShape
	}
	classes := context.GetParamOr(ctx, ParamOutputDim, 0)
	if classes < 1 {
		panic(fmt.Sprintf("feedback: layer %q: rule %q projects the output error, but %s is not set: build the model with models.New, or set it to the number of classes and wrap the logits with feedback.OutputError", ctx.Scope(), rule.Name(), ParamOutputDim))
	}
	dims := wShape.Clone().Dimensions
	dims[len(dims)-1] = classes
	return shapes.Make(wShape.DType, dims...)
}

// newLayerWeights creates (or reuses) W and, for rules that store it, B (see [FeedbackSpec]), in ctx's scope,
// W drawn with the given initializer (nil means He-normal) and B by [feedbackInitializer]. It marks the scope as a
// feedback layer of the given kind, and returns its rule, its graph view in x's graph and W's value.
func newLayerWeights(ctx *context.Context, kind string, shape shapes.Shape, init context.VariableInitializer, g *Graph) (Rule, *LayerGraph) {
	if init == nil {
		init = initializers.HeFn(ctx)
	}
	ctx.SetParam(paramLayerKind, kind)
	rule := RuleFromContext(ctx)
	if backpropForced(ctx, g) {
		rule = backprop
	}
	compute := shape.DType
	master := shapes.Make(layers.MasterDType(compute), shape.Dimensions...)
	w := ctx.WithInitializer(init).VariableWithShape(WeightsName, master)
	// Under mixed precision the layer computes on a converted copy; autodiff converts the gradient back to the
	// float32 master (ConvertDType is the identity where the dtypes agree).
	lg := &LayerGraph{Ctx: ctx, Kind: kind, Init: init, W: ConvertDType(w.ValueGraph(g), compute)}
	if spec := rule.Feedback(); spec.Stored {
		bShape := feedbackShape(ctx, rule, spec, master)
		b := ctx.WithInitializer(feedbackInitializer(ctx, init)).VariableWithShape(FeedbackName, bShape).SetTrainable(false)
		lg.B = ConvertDType(b.ValueGraph(g), compute)
	}
	return rule, lg
}

// feedbackStreamKey is mixed into the context's random state to make the stream B is drawn from.
const feedbackStreamKey = 0x6e6f77742d422121 // "nowt-B!!"

// feedbackInitializer is how every stored B starts: drawn with W's initializer init, scaled by ParamInitScale,
// from a random stream of its own ([ownStream]), so that under one seed every rule starts from the same network,
// whether or not it stores B. B itself depends only on the seed and the layer.
func feedbackInitializer(ctx *context.Context, init context.VariableInitializer) context.VariableInitializer {
	scale := settingValue[float64](ctx, ParamInitScale)
	draw := ownStream(ctx, init)
	return func(g *Graph, s shapes.Shape) *Node {
		values := draw(g, s)
		if scale != 1 {
			values = MulScalar(values, scale)
		}
		return values
	}
}

// ownStream wraps init so that it draws from a random stream split off the context's random state (its
// "#rngState" variable) as it stands at the draw, leaving that state as it was: what a rule draws for itself
// when a layer is built (B, or a measured initialisation scale) consumes none of the randomness W, the biases
// and the other variables are drawn from.
func ownStream(ctx *context.Context, init context.VariableInitializer) context.VariableInitializer {
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
		return values
	}
}

// biasValue creates (or reuses) the layer's bias, initialised to zero and kept in dtype's [MasterDType], and
// returns its value in g in dtype.
func biasValue(ctx *context.Context, g *Graph, dtype dtypes.DType, dim int) *Node {
	v := ctx.WithInitializer(initializers.Zero).VariableWithShape(BiasesName, shapes.Make(layers.MasterDType(dtype), dim))
	return ConvertDType(v.ValueGraph(g), dtype)
}

// linearOp is a linear map y = f(x, W) whose backward the feedback layers own.
type linearOp interface {
	// forward computes y from x and W.
	forward(x, w *Node) *Node
	// inputGrad sends δ down through kernel (W for backprop, B for the other rules).
	inputGrad(delta, kernel *Node) *Node
	// weightGrad computes ∂L/∂W from x and δ.
	weightGrad(x, delta *Node) *Node
	// inputRows returns x as the rows that multiply W's matrix: x itself (dense), its patch matrix (conv).
	inputRows(x *Node) *Node
	// sendOutputError sends the model's output error e [examples, classes], the same at each of the layer's output
	// rows of an example, down through kernel (towards the classes: DFA's B), for a layer whose δ is delta.
	sendOutputError(e, kernel, delta *Node) *Node
}

// capture records, for one layer in one graph, what the alignment metrics and the learning rules need after
// the gradient is built. The model's output error is recorded as a capture with output set.
type capture struct {
	scope string
	op    linearOp
	w     *Node
	x     *Node        // the layer's input
	fb    func() *Node // the kernel the layer sends its signal through
	sent  func() *Node // the signal the layer sent down (after the gradient is built)
	delta *Node        // set when the gradient is built
	// output marks the model's output error hook ([OutputError]); delta is then e = ∂L/∂logits.
	output bool
	// kernelBuilt is set once fb has built the layer's kernel in the graph ([UnreadFeedback]).
	kernelBuilt bool
}

// capturesKey is the graph parameter (see context.Context.SetGraphParam) under which the captures of a graph's
// feedback layers are kept, at the root scope. Graph parameters are GoMLX's storage for what belongs to one
// graph: they live in the context's data, keyed by the graph, so two contexts never see each other's captures.
// They are released with the graph once it is built ([ReleaseGraph]), and at the latest with the context.
const capturesKey = "feedback_captures"

// ReleaseGraph frees what the feedback layers recorded while g was built (each layer's input, δ and signal
// nodes, which the gradient and the alignment metrics read while g is being built). Call it once g's outputs
// are built: afterwards [Gradients] and [AlignmentGraph] no longer see g's layers. Without it the records live
// as long as ctx, and keep g's nodes alive after g.Finalize: a process that builds many graphs on one context
// (a notebook) would grow with each. The trainer releases every graph it builds.
func ReleaseGraph(ctx *context.Context, g *Graph) {
	root := ctx.InAbsPath(context.RootScope)
	if _, found := root.GetGraphParam(g, capturesKey); found {
		root.SetGraphParam(g, capturesKey, nil) // GoMLX has no delete: the empty entry costs a map slot.
	}
}

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

// UnreadFeedback returns the stored B of every feedback layer built in g whose kernel g has not read: a layer
// reads its B only where it sends its signal down (the forward pass computes with W), so in a training step a
// layer that sends nothing — the first layer, whose input is the data — leaves its B unread: nothing in the step
// needs it. An optimizer may then defer B's update (nowt's trainer does for Kolen-Pollack, whose B learns by W's
// gradient alone; a rule whose own B gradient reads B, [Learning]'s primitives, reads it in [Gradients]). Call
// it once g's gradient is built and before [ReleaseGraph]; a later reader of the kernel in g (the alignment
// metrics) makes the answer stale.
func UnreadFeedback(ctx *context.Context, g *Graph) map[*context.Variable]bool {
	built, read := map[string]bool{}, map[string]bool{}
	for _, c := range graphCaptures(ctx, g) {
		if !c.output {
			built[c.scope] = true
			// A layer applied twice in g (a model called twice) reads B if either application does.
			read[c.scope] = read[c.scope] || c.kernelBuilt
		}
	}
	feedback := map[*context.Variable]bool{}
	for _, layer := range Layers(ctx) {
		if layer.Feedback != nil && built[layer.Scope] && !read[layer.Scope] {
			feedback[layer.Feedback] = true
		}
	}
	return feedback
}

// OutputError marks logits as the model's output, whose error e = ∂L/∂logits rules that project the output
// error (dfa) send to every layer. It returns logits unchanged (an identity whose gradient records e);
// models.New applies it to every model.
func OutputError(ctx *context.Context, logits *Node) *Node {
	c := &capture{scope: "", output: true}
	addCapture(ctx, logits.Graph(), c)
	return IdentityWithCustomGradient(logits, func(_, v *Node) *Node {
		c.delta = v
		return v
	})
}

// outputError returns the output error e recorded in g's backward pass, or panics naming the layer.
func outputError(ctx *context.Context, g *Graph, scope string) *Node {
	for _, c := range graphCaptures(ctx, g) {
		if c.output && c.delta != nil {
			return c.delta
		}
	}
	panic(fmt.Sprintf("feedback: layer %q projects the output error, but no gradient reached an output marked by feedback.OutputError in this graph: wrap the model's logits with it (models.New does)", scope))
}

// keepSentKernel writes a kernel the graph computed (from W, at every step) as the layer's variable
// [SentKernelName], so that it is one of the graph's outputs. Nothing reads the variable; what it changes is
// where XLA keeps the kernel. Left a temporary, the kernel ends with the product that sends the signal through
// it, and XLA's CPU compiler, whose schedule puts that product before the layer's weight-gradient product,
// writes the weight gradient into the kernel's buffer: its executor, which runs independent operations at the
// same time unless they share a buffer, then starts the weight gradient only once the signal's product has
// read the kernel — the layer's two backward products, which BP runs side by side, run one after the other
// (docs/perf-analysis.md §25: SS's step on the 784-1000-1000-10 MLP was 1.10–1.11 of BP's in alternated rounds,
// 1.06–1.07 with the kernel an output). An output has a buffer of its own for the whole step.
//
// The variable is kept in the master dtype (float32 under mixed precision), as the layer's other variables are:
// the alignment metrics' graph, in float32, and a training step in bfloat16 write the same variable. (There the
// output is the kernel converted, which XLA may compute apart from the kernel: the buffers under mixed precision
// were not looked at.)
func keepSentKernel(ctx *context.Context, kernel *Node) {
	master := shapes.Make(layers.MasterDType(kernel.DType()), kernel.Shape().Dimensions...)
	v := ctx.Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape(SentKernelName, master).SetTrainable(false)
	// The variable's parameter (GoMLX feeds every variable a graph writes) is made before the value written,
	// an identity of the kernel (free on XLA): GoMLX's pure-Go backend sizes an execution by its highest output
	// and fails on a parameter made after every output (docs/upstream.md).
	v.ValueGraph(kernel.Graph())
	v.SetValueGraph(Identity(ConvertDType(kernel, master.DType)))
}

// SentKernels returns the [SentKernelName] variables of ctx: state that every training step writes anew and
// none reads, which a checkpoint need not keep.
func SentKernels(ctx *context.Context) []*context.Variable {
	var kept []*context.Variable
	for v := range ctx.IterVariables() {
		if v.Name() == SentKernelName {
			kept = append(kept, v)
		}
	}
	return kept
}

// withFeedback builds y = op(x, W) with the rule's backward: ∂L/∂x is the rule's signal (op.inputGrad of δ, or
// op.sendOutputError of the model's output error, through the rule's kernel) and ∂L/∂W = op.weightGrad(x, δ), where δ = ∂L/∂y
// is captured at the output.
func withFeedback(rule Rule, lg *LayerGraph, x *Node, op linearOp) *Node {
	rule.Prepare(lg)
	w := lg.W
	c := &capture{scope: lg.Ctx.Scope(), op: op, w: w, x: x}
	var fb, sent *Node
	computed := false // whether the rule computes the kernel in the graph (not W's or a stored B's value)
	c.fb = func() *Node {
		if fb == nil {
			c.kernelBuilt = true
			kernel := rule.Kernel(lg)
			computed = kernel != lg.W && kernel != lg.B
			fb = StopGradient(kernel)
		}
		return fb
	}
	fromOutput := rule.Feedback().Source == FromOutputError
	c.sent = func() *Node {
		if sent == nil && c.delta != nil {
			if fromOutput {
				e := StopGradient(outputError(lg.Ctx, x.Graph(), c.scope))
				sent = op.sendOutputError(e, c.fb(), c.delta)
			} else {
				sent = op.inputGrad(c.delta, c.fb())
			}
		}
		return sent
	}
	xh := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		signal := c.sent()
		if computed {
			// Kept where the backward pass sends the signal, not where only the alignment metrics read it (the
			// first layer, whose input is the data, sends none: its kernel is not computed in a training step).
			keepSentKernel(lg.Ctx, fb)
		}
		return signal
	})
	wh := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		return op.weightGrad(x, c.delta)
	})
	y := op.forward(xh, wh)
	addCapture(lg.Ctx, x.Graph(), c)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		c.delta = v
		return v
	})
}
