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

// layerCase is one layer configuration of the gradient tests.
type layerCase struct {
	name   string
	conv   bool
	n, h   int // batch and spatial size (conv) or batch (dense)
	in     int // input features / channels
	out    int // output features / channels
	kernel int
	stride int
	same   bool
	bias   bool
}

func (c layerCase) ref() refConv {
	if !c.conv {
		return denseRef(c.n, c.in, c.out)
	}
	return newRefConv(c.n, c.h, c.h, c.in, c.kernel, c.kernel, c.out, c.stride, c.same)
}

// dims returns the dimensions of the layer's input and output.
func (c layerCase) dims() (x, y []int) {
	if !c.conv {
		return []int{c.n, c.in}, []int{c.n, c.out}
	}
	geom := c.ref()
	return []int{c.n, c.h, c.h, c.in}, []int{c.n, geom.outH, geom.outW, c.out}
}

func (c layerCase) build(ctx *context.Context, x *Node) *Node {
	if !c.conv {
		return NewDense(ctx, x, c.out).Bias(c.bias).Done()
	}
	b := NewConv2D(ctx, x, c.out, c.kernel).Stride(c.stride).Bias(c.bias)
	if !c.same {
		b.NoPadding()
	}
	return b.Done()
}

var layerCases = []layerCase{
	{name: "dense", n: 5, in: 7, out: 4, bias: true},
	{name: "dense-nobias", n: 3, in: 6, out: 9},
	{name: "conv3-s1-same-bias", conv: true, n: 2, h: 6, in: 3, out: 4, kernel: 3, stride: 1, same: true, bias: true},
	{name: "conv3-s2-same", conv: true, n: 2, h: 7, in: 2, out: 3, kernel: 3, stride: 2, same: true},
	{name: "conv3-s1-valid", conv: true, n: 2, h: 6, in: 3, out: 2, kernel: 3, stride: 1},
	{name: "conv3-s2-valid-bias", conv: true, n: 1, h: 8, in: 2, out: 3, kernel: 3, stride: 2, bias: true},
	{name: "conv1-s2-same", conv: true, n: 2, h: 6, in: 4, out: 3, kernel: 1, stride: 2, same: true},
	{name: "conv2-s1-same", conv: true, n: 1, h: 5, in: 2, out: 2, kernel: 2, stride: 1, same: true, bias: true},
	{name: "conv5-s1-same", conv: true, n: 2, h: 6, in: 3, out: 2, kernel: 5, stride: 1, same: true},
	{name: "conv1-s1-valid", conv: true, n: 2, h: 4, in: 3, out: 5, kernel: 1, stride: 1},
}

// testClasses is the width of the output error in the gradient tests.
const testClasses = 3

// TestLayerGradients checks, for every registered rule, layer configuration and convolution implementation
// (patches × matmul, and the backend's native convolution that XLA backends run), that the forward pass is the
// plain convolution, the signal sent down is the transposed convolution of δ (or, for rules that project the
// output error, of e broadcast over the output) with the kernel the rule's own reference gives, and the weight
// gradient is backprop's, all against the plain-Go reference. Every rule must have a reference (ruleReferences).
func TestLayerGradients(t *testing.T) {
	backend := testutil.Backend(t)
	for _, ruleName := range RuleNames() {
		ref, found := ruleReferences[ruleName]
		require.True(t, found, "rule %q has no plain-Go reference in ruleReferences: add one beside the rule", ruleName)
		rule, err := RuleByName(ruleName)
		require.NoError(t, err)
		for ci, lc := range layerCases {
			convImpls := []string{"patches", "native"}
			if !lc.conv {
				convImpls = []string{"-"}
			}
			for _, convImpl := range convImpls {
				t.Run(fmt.Sprintf("%s/%s/%s", ruleName, lc.name, convImpl), func(t *testing.T) {
					rng := rand.New(rand.NewSource(int64(ci + 1)))
					geom := lc.ref()
					xDims, yDims := lc.dims()
					x := testutil.RandomSlice(rng, geom.n*geom.h*geom.w*geom.c)
					delta := testutil.RandomSlice(rng, geom.n*geom.outH*geom.outW*geom.co)
					outErr := testutil.RandomSlice(rng, lc.n*testClasses)
					ctx := context.New()
					ctx.SetParam(ParamRule, ruleName)
					ctx.SetParam(ParamOutputDim, testClasses)
					if lc.conv {
						ctx.SetParam(ParamConvImpl, convImpl)
					}
					require.NoError(t, ctx.SetRNGStateFromSeed(int64(ci)))
					layerCtx := ctx.In("layer")
					outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, xNode *Node) []*Node {
						g := xNode.Graph()
						y := lc.build(layerCtx, xNode)
						// loss = Σ y·R + Σ u·E with u a published output that depends on y with weight 0: so
						// δ = ∂loss/∂y = R and e = ∂loss/∂u = E exactly.
						eNode := ConstTensor(g, tensors.FromFlatDataAndDimensions(outErr, lc.n, testClasses))
						u := OutputError(ctx, Add(ZerosLike(eNode), MulScalar(ReduceAllSum(y), 0)))
						loss := ReduceAllSum(Mul(y, ConstTensor(g, tensors.FromFlatDataAndDimensions(delta, yDims...))))
						loss = Add(loss, ReduceAllSum(Mul(u, eNode)))
						wVar := layerCtx.GetVariableByScopeAndName(layerCtx.Scope(), WeightsName)
						grads := Gradient(loss, xNode, wVar.ValueGraph(g))
						var used *Node
						for _, c := range graphCaptures(ctx, g) {
							if c.scope == layerCtx.Scope() {
								used = c.fb()
							}
						}
						require.NotNil(t, used, "the layer's capture")
						return []*Node{y, grads[0], grads[1], wVar.ValueGraph(g), used}
					}, tensors.FromFlatDataAndDimensions(x, xDims...))
					in := refInput{w: testutil.Flat64(t, outs[3]), used: testutil.Flat64(t, outs[4]), fanIn: lc.in * max(1, lc.kernel*lc.kernel),
						variable: func(name string) []float64 {
							v := layerCtx.GetVariableByScopeAndName(layerCtx.Scope(), name)
							require.NotNil(t, v, "variable %q of rule %s", name, ruleName)
							return testutil.Flat64(t, v.MustValue())
						}}
					if rule.Feedback().Stored {
						in.b = in.variable(FeedbackName)
					}
					kernel := ref.kernel(t, in)
					yWant := geom.forward(x, in.w)
					if lc.bias {
						// Biases start at zero: the forward pass is the plain convolution.
						bias := testutil.Flat64(t, layerCtx.GetVariableByScopeAndName(layerCtx.Scope(), BiasesName).MustValue())
						require.Equal(t, make([]float64, lc.out), bias)
					}
					testutil.RequireClose(t, yWant, testutil.Flat64(t, outs[0]), 1e-9, "forward")
					if ref.fromOutput {
						toClasses := geom
						toClasses.co = testClasses
						e := make([]float64, geom.n*geom.outH*geom.outW*testClasses)
						for i := range e {
							e[i] = outErr[(i/(geom.outH*geom.outW*testClasses))*testClasses+i%testClasses]
						}
						testutil.RequireClose(t, toClasses.inputGrad(e, kernel), testutil.Flat64(t, outs[1]), 1e-4, "input gradient B·e")
					} else {
						testutil.RequireClose(t, geom.inputGrad(delta, kernel), testutil.Flat64(t, outs[1]), 1e-4, "input gradient B·δ")
					}
					testutil.RequireClose(t, geom.weightGrad(x, delta), testutil.Flat64(t, outs[2]), 1e-4, "weight gradient")
				})
			}
		}
	}
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func angleBetween(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return math.Acos(dot/math.Sqrt(na*nb)) * 180 / math.Pi
}
