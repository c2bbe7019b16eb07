package feedback

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// DenseBuilder configures a feedback-aware dense layer. Create it with [NewDense], finish with Done.
type DenseBuilder struct {
	ctx       *context.Context
	x         *Node
	outputDim int
	useBias   bool
	init      context.VariableInitializer
}

// NewDense starts a dense layer y = x·W + b in ctx's scope, with W of shape [in, outputDim] where in is x's
// last dimension. Leading axes of x are batch axes. By default it has a bias and He-normal initialisation.
func NewDense(ctx *context.Context, x *Node, outputDim int) *DenseBuilder {
	return &DenseBuilder{ctx: ctx, x: x, outputDim: outputDim, useBias: true}
}

// Bias sets whether the layer has a bias (default true).
func (b *DenseBuilder) Bias(useBias bool) *DenseBuilder { b.useBias = useBias; return b }

// Initializer sets the initializer of W (and, independently drawn, of B). nil means He-normal.
func (b *DenseBuilder) Initializer(init context.VariableInitializer) *DenseBuilder {
	b.init = init
	return b
}

// Done builds the layer and returns its output, of shape x.shape[:-1] + [outputDim].
func (b *DenseBuilder) Done() *Node {
	x := b.x
	if b.ctx == nil {
		panic("feedback.Dense: nil context")
	}
	switch {
	case x == nil:
		panic(fmt.Sprintf("feedback.Dense(%s): nil input", b.ctx.Scope()))
	case x.Rank() < 1:
		panic(fmt.Sprintf("feedback.Dense(%s): input must have rank ≥ 1, got a scalar", b.ctx.Scope()))
	case !x.DType().IsFloat(): // an integer W would be initialised to zeros
		panic(fmt.Sprintf("feedback.Dense(%s): input must be of a float type, got %s: convert it first (ConvertDType)",
			b.ctx.Scope(), x.DType()))
	case b.outputDim < 1:
		panic(fmt.Sprintf("feedback.Dense(%s): output dimension must be ≥ 1, got %d", b.ctx.Scope(), b.outputDim))
	}
	inDim := x.Shape().Dim(-1)
	rule, lg := newLayerWeights(b.ctx, KindDense, shapes.Make(x.DType(), inDim, b.outputDim), b.init, x.Graph())
	batchDims := x.Shape().Dimensions[:x.Rank()-1]
	flat := x
	if x.Rank() != 2 {
		flat = Reshape(x, -1, inDim)
	}
	y := withFeedback(rule, lg, flat, denseOp{})
	if b.useBias {
		y = Add(y, ExpandLeftToRank(biasValue(b.ctx, x.Graph(), x.DType(), b.outputDim), 2))
	}
	if x.Rank() != 2 {
		y = Reshape(y, append(append([]int{}, batchDims...), b.outputDim)...)
	}
	return y
}

// Dense is a shortcut for NewDense(ctx, x, outputDim).Bias(useBias).Done().
func Dense(ctx *context.Context, x *Node, outputDim int, useBias bool) *Node {
	return NewDense(ctx, x, outputDim).Bias(useBias).Done()
}

// denseOp is y = x·W with x [n, in], W [in, out].
type denseOp struct{}

func (denseOp) inputRows(x *Node) *Node { return x }

// sendOutputError: e [n, classes] · Bᵀ, each example's e repeated over its rows when the layer's input has extra
// batch axes (δ has n·k rows).
func (op denseOp) sendOutputError(e, kernel, delta *Node) *Node {
	rows, n, classes := delta.Shape().Dim(0), e.Shape().Dim(0), e.Shape().Dim(-1)
	if rows != n {
		if rows%n != 0 {
			panic(fmt.Sprintf("feedback: a dense layer with %d rows cannot receive the output error of %d examples", rows, n))
		}
		e = Reshape(BroadcastToDims(Reshape(e, n, 1, classes), n, rows/n, classes), rows, classes)
	}
	return op.inputGrad(e, kernel)
}

func (denseOp) forward(x, w *Node) *Node { return Dot(x, w) }

// inputGrad: δ [n, out] · Bᵀ → [n, in].
func (denseOp) inputGrad(delta, kernel *Node) *Node {
	return DotGeneral(delta, []int{1}, nil, kernel, []int{1}, nil)
}

// weightGrad: xᵀ [in, n] · δ [n, out] → [in, out].
func (denseOp) weightGrad(x, delta *Node) *Node {
	return DotGeneral(x, []int{0}, nil, delta, []int{0}, nil)
}
