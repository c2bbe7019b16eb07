package trainer

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/feedback"
)

// A Kolen-Pollack B that no training step reads — the first layer's, whose input is the data, so that it sends
// no signal down (feedback.UnreadFeedback) — need not be written at every step. Under SGD.pairedDecay each step
// shrinks D = B − W by a scalar f (exact in arithmetic, whatever the data), so from the last time B was brought
// up to date, when W was W₀,
//
//	B = W + F·(B₀ − W₀),   F = ∏ f over the steps since,
//
// and a step that defers B updates the scalar F alone. Brought up to date ([settleDeferredGraph]) before anything
// reads B: the alignment metrics and the checkpoints. On the 784-500-10 MLP the first layer holds 392,000 of
// KP's 397,000 feedback weights, and its B's pass was nearly all of KP's cost over BP (docs/perf-analysis.md §16).
//
// The state (W₀ and F, beside the velocities) is the trainer's between two settlements: a checkpoint holds B up
// to date and not the state ([deferralState]), and a run resumed from it starts a new deferral from its W.
const (
	// deferredWeightsSuffix names W₀, W's value when B was last brought up to date.
	deferredWeightsSuffix = "_deferred_from_weights"
	// deferredFactorSuffix names F, the product of the steps' shrink factors since.
	deferredFactorSuffix = "_deferred_factor"
)

// deferUpdate defers the update of KP's B (tied to W; f the step's shrink factor of B − W) in g: F ← F·f. On the
// first graph that defers B it creates the state, W₀ as W's present value and F = 1: B must be up to date then,
// as it is in a graph built before the first step or after a settlement. It reports false, and defers nothing,
// where W has no value yet to start from.
func deferUpdate(ctx *context.Context, g *Graph, b, w *context.Variable, f *Node) bool {
	from, factor := deferralOf(ctx, b)
	if from == nil {
		if !w.HasValue() {
			return false
		}
		value, err := w.Value()
		if err != nil {
			return false
		}
		start, err := value.LocalClone()
		if err != nil {
			return false
		}
		state := ctx.InAbsPath(velocityScope + b.Scope()).Checked(false)
		from = state.VariableWithValue(b.Name()+deferredWeightsSuffix, start).SetTrainable(false)
		factor = optimizerStateFrom(ctx, b, b.Name()+deferredFactorSuffix, shapes.Make(f.DType()), initializers.One)
	}
	factor.SetValueGraph(Mul(factor.ValueGraph(g), f))
	return true
}

// deferralOf returns the deferral state of B, W₀ and F, or nils where its update is not deferred.
func deferralOf(ctx *context.Context, b *context.Variable) (from, factor *context.Variable) {
	state := ctx.InAbsPath(velocityScope + b.Scope())
	from, factor = state.GetVariable(b.Name()+deferredWeightsSuffix), state.GetVariable(b.Name()+deferredFactorSuffix)
	if from == nil || factor == nil {
		return nil, nil
	}
	return from, factor
}

// settleDeferredGraph brings every deferred B of ctx up to date in g, B ← W + F·(B − W₀), and starts its
// deferral anew from there (W₀ ← W, F ← 1). It returns how many it settles.
func settleDeferredGraph(ctx *context.Context, g *Graph) int {
	settled := 0
	for _, layer := range feedback.Layers(ctx) {
		if layer.Feedback == nil {
			continue
		}
		from, factor := deferralOf(ctx, layer.Feedback)
		if from == nil {
			continue
		}
		w, f := layer.Weights.ValueGraph(g), factor.ValueGraph(g)
		b := layer.Feedback.ValueGraph(g)
		layer.Feedback.SetValueGraph(Add(w, Mul(f, Sub(b, from.ValueGraph(g)))))
		from.SetValueGraph(w)
		factor.SetValueGraph(OnesLike(f))
		settled++
	}
	return settled
}

// settleFeedback brings the KP B whose updates the steps deferred up to date (settleDeferredGraph), where a
// step ran since it last did: before anything reads them.
func (r *run) settleFeedback() error {
	if !r.feedbackStale {
		return nil
	}
	if r.settleExec == nil {
		if len(deferralState(r.ctx)) == 0 {
			return nil // nothing deferred: the step graph deferred no B (its state is made as it is built)
		}
		var err error
		if r.settleExec, err = newReplicatedExec(r, func(ctx *context.Context, g *Graph) { settleDeferredGraph(ctx, g) }); err != nil {
			return fmt.Errorf("bringing the deferred feedback weights up to date: %w", err)
		}
	}
	if err := r.execReplicated(r.settleExec); err != nil {
		return fmt.Errorf("bringing the deferred feedback weights up to date: %w", err)
	}
	r.feedbackStale = false
	return nil
}

// deferralState returns the variables of ctx that hold deferral state, which checkpoints leave out.
func deferralState(ctx *context.Context) []*context.Variable {
	var state []*context.Variable
	for v := range ctx.IterVariables() {
		if strings.HasPrefix(v.Scope(), velocityScope) &&
			(strings.HasSuffix(v.Name(), deferredWeightsSuffix) || strings.HasSuffix(v.Name(), deferredFactorSuffix)) {
			state = append(state, v)
		}
	}
	return state
}
