package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
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
	{name: "dense", n: 2, in: 7, out: 4, bias: true},
	{name: "dense-nobias", n: 1, in: 6, out: 9},
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

// gradientGroup is a set of layer cases that TestLayerGradients builds side by side in one graph: the cases of
// one batch size (the graph has one output error, [batch, testClasses]) under one convolution implementation
// (dense cases join the patches group).
type gradientGroup struct {
	convImpl string
	n        int
	cases    []int // indices into layerCases
}

// gradientGroups partitions layerCases into gradientGroups, in a fixed order (patches, then native; batch
// sizes in the order the cases first use them).
func gradientGroups() []gradientGroup {
	var groups []gradientGroup
	for _, convImpl := range []string{"patches", "native"} {
		for ci, lc := range layerCases {
			if !lc.conv && convImpl != "patches" {
				continue
			}
			i := slices.IndexFunc(groups, func(g gradientGroup) bool { return g.convImpl == convImpl && g.n == lc.n })
			if i < 0 {
				groups = append(groups, gradientGroup{convImpl: convImpl, n: lc.n})
				i = len(groups) - 1
			}
			groups[i].cases = append(groups[i].cases, ci)
		}
	}
	return groups
}

// execOnceN is context.MustExecOnceN after the variables fn creates have their initial values from the host
// (xla.InitializeOnHostFor), as the trainer gives them: on XLA no initialisation graph is compiled (its random
// draws were a large part of these tests' compilation), and every engine starts from the same values. fn is
// built twice (on the host, then on backend), so ctx, and any context fn captures, must be unchecked.
func execOnceN[F context.ExecGraphFn](t testing.TB, backend backends.Backend, ctx *context.Context, fn F, args ...any) []*tensors.Tensor {
	t.Helper()
	require.NoError(t, xla.InitializeOnHostFor(ctx, fn, args...))
	return context.MustExecOnceN(backend, ctx, fn, args...)
}

// TestLayerGradients checks, for every registered rule, layer configuration and convolution implementation
// (patches × matmul, and the backend's native convolution that XLA backends run), that the forward pass is the
// plain convolution, the signal sent down is the transposed convolution of δ (or, for rules that project the
// output error, of e broadcast over the output) with the kernel the rule's own reference gives, and the weight
// gradient is backprop's, all against the plain-Go reference. Every rule must have a reference (ruleReferences).
//
// The layers of one batch size and implementation are built side by side in one graph, each in its own scope
// with its own input and δ, and each is checked in its own subtest, rule/case/implementation. (On XLA a case's
// cost is its compilation, which grows with the graph: side by side saves a graph's fixed cost, about an eighth.)
//
// On XLA the patches implementation (its own ops, checked for every rule on pure Go; XLA runs native unless
// told otherwise) is checked for one rule of each kind of feedback (FeedbackSpec: a kernel from W, a stored B,
// the output error), which takes a third off the test's time there: the rules differ only in the kernel they
// hand the shared convolution code.
func TestLayerGradients(t *testing.T) {
	backend := testutil.Backend(t)
	groups := gradientGroups()
	patchesKinds := map[FeedbackSpec]bool{} // the kinds of feedback whose patches form was checked on XLA
	for _, ruleName := range RuleNames() {
		ref, found := ruleReferences[ruleName]
		require.True(t, found, "rule %q has no plain-Go reference in ruleReferences: add one beside the rule", ruleName)
		rule, err := RuleByName(ruleName)
		require.NoError(t, err)
		allPatches := !xla.TestBackendIsXLA() || !patchesKinds[rule.Feedback()]
		patchesKinds[rule.Feedback()] = true
		for gi, group := range groups {
			if group.convImpl == "patches" && !allPatches {
				group.cases = slices.DeleteFunc(slices.Clone(group.cases), func(ci int) bool { return layerCases[ci].conv })
				if len(group.cases) == 0 {
					continue
				}
			}
			// Inputs: x and δ per case (from the case's own seed), one output error e for the group.
			xs, deltas := make([][]float64, len(group.cases)), make([][]float64, len(group.cases))
			inputs := make([]any, len(group.cases))
			for i, ci := range group.cases {
				lc := layerCases[ci]
				rng := rand.New(rand.NewSource(int64(ci + 1)))
				geom := lc.ref()
				xDims, _ := lc.dims()
				xs[i] = testutil.RandomSlice(rng, geom.n*geom.h*geom.w*geom.c)
				deltas[i] = testutil.RandomSlice(rng, geom.n*geom.outH*geom.outW*geom.co)
				inputs[i] = tensors.FromFlatDataAndDimensions(xs[i], xDims...)
			}
			outErr := testutil.RandomSlice(rand.New(rand.NewSource(int64(100+gi))), group.n*testClasses)
			ctx := context.New().Checked(false)
			ctx.SetParam(ParamRule, ruleName)
			ctx.SetParam(ParamOutputDim, testClasses)
			ctx.SetParam(ParamConvImpl, group.convImpl)
			require.NoError(t, ctx.SetRNGStateFromSeed(int64(gi)))
			layerCtx := func(ci int) *context.Context { return ctx.In(layerCases[ci].name) }
			const perCase = 5 // y, ∂L/∂x, ∂L/∂W, W, the kernel the signal went through
			outs := execOnceN(t, backend, ctx, func(ctx *context.Context, xNodes []*Node) []*Node {
				g := xNodes[0].Graph()
				ys := make([]*Node, len(group.cases))
				loss := Scalar(g, dtypes.Float64, 0)
				yTotal := Scalar(g, dtypes.Float64, 0)
				for i, ci := range group.cases {
					_, yDims := layerCases[ci].dims()
					ys[i] = layerCases[ci].build(layerCtx(ci), xNodes[i])
					loss = Add(loss, ReduceAllSum(Mul(ys[i], ConstTensor(g, tensors.FromFlatDataAndDimensions(deltas[i], yDims...)))))
					yTotal = Add(yTotal, ReduceAllSum(ys[i]))
				}
				// loss = Σ_cases Σ y·R + Σ u·E with u a published output that depends on every y with weight 0:
				// so each layer's δ = ∂loss/∂y = R and e = ∂loss/∂u = E exactly.
				eNode := ConstTensor(g, tensors.FromFlatDataAndDimensions(outErr, group.n, testClasses))
				u := OutputError(ctx, Add(ZerosLike(eNode), MulScalar(yTotal, 0)))
				loss = Add(loss, ReduceAllSum(Mul(u, eNode)))
				wrt := slices.Clone(xNodes)
				for _, ci := range group.cases {
					wVar := layerCtx(ci).GetVariableByScopeAndName(layerCtx(ci).Scope(), WeightsName)
					wrt = append(wrt, wVar.ValueGraph(g))
				}
				grads := Gradient(loss, wrt...)
				var results []*Node
				captures := graphCaptures(ctx, g)
				for i, ci := range group.cases {
					var used *Node
					for _, c := range captures {
						if c.scope == layerCtx(ci).Scope() {
							used = c.fb()
						}
					}
					require.NotNil(t, used, "the capture of layer %s", layerCases[ci].name)
					results = append(results, ys[i], grads[i], grads[len(group.cases)+i], wrt[len(group.cases)+i], used)
				}
				return results
			}, inputs...)
			require.Len(t, outs, perCase*len(group.cases))
			for i, ci := range group.cases {
				lc := layerCases[ci]
				impl := group.convImpl
				if !lc.conv {
					impl = "-"
				}
				t.Run(fmt.Sprintf("%s/%s/%s", ruleName, lc.name, impl), func(t *testing.T) {
					o := outs[perCase*i : perCase*(i+1)]
					lctx := layerCtx(ci)
					geom := lc.ref()
					x, delta := xs[i], deltas[i]
					in := refInput{w: testutil.Flat64(t, o[3]), used: testutil.Flat64(t, o[4]), fanIn: lc.in * max(1, lc.kernel*lc.kernel),
						variable: func(name string) []float64 {
							v := lctx.GetVariableByScopeAndName(lctx.Scope(), name)
							require.NotNil(t, v, "variable %q of rule %s", name, ruleName)
							return testutil.Flat64(t, v.MustValue())
						}}
					if rule.Feedback().Stored {
						in.b = in.variable(FeedbackName)
					}
					kernel := ref.kernel(t, in)
					// A kernel the graph computed is kept as the layer's SentKernelName variable, equal to the kernel the
					// signal went through; W's value and a stored B's value are not.
					kept := lctx.GetVariableByScopeAndName(lctx.Scope(), SentKernelName)
					if slices.Equal(in.used, in.w) || (in.b != nil && slices.Equal(in.used, in.b)) {
						require.False(t, kept != nil, "rule %s sends through W or its stored B: nothing to keep", ruleName)
					} else {
						require.NotNil(t, kept, "rule %s computes its kernel: the layer keeps it", ruleName)
						require.Equal(t, in.used, testutil.Flat64(t, kept.MustValue()), "the kept kernel")
					}
					yWant := geom.forward(x, in.w)
					if lc.bias {
						// Biases start at zero: the forward pass is the plain convolution.
						bias := testutil.Flat64(t, lctx.GetVariableByScopeAndName(lctx.Scope(), BiasesName).MustValue())
						require.Equal(t, make([]float64, lc.out), bias)
					}
					testutil.RequireClose(t, yWant, testutil.Flat64(t, o[0]), 1e-9, "forward")
					if ref.fromOutput {
						toClasses := geom
						toClasses.co = testClasses
						e := make([]float64, geom.n*geom.outH*geom.outW*testClasses)
						for j := range e {
							e[j] = outErr[(j/(geom.outH*geom.outW*testClasses))*testClasses+j%testClasses]
						}
						testutil.RequireClose(t, toClasses.inputGrad(e, kernel), testutil.Flat64(t, o[1]), 1e-4, "input gradient B·e")
					} else {
						testutil.RequireClose(t, geom.inputGrad(delta, kernel), testutil.Flat64(t, o[1]), 1e-4, "input gradient B·δ")
					}
					testutil.RequireClose(t, geom.weightGrad(x, delta), testutil.Flat64(t, o[2]), 1e-4, "weight gradient")
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
