package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
)

// storedKernel is embedded by rules whose kernel is the layer's stored B, drawn once like W.
type storedKernel struct{ RuleBase }

// Feedback implements Rule: B stored in W's layout.
func (storedKernel) Feedback() FeedbackSpec { return FeedbackSpec{Stored: true} }

// Kernel implements Rule: the stored B.
func (storedKernel) Kernel(l *LayerGraph) *Node { return l.B }

// Backprop is rule "bp": B = W, the weight transport that the other rules avoid.
type Backprop struct{ RuleBase }

// Name implements Rule.
func (Backprop) Name() string { return "bp" }

// Description implements Rule.
func (Backprop) Description() string { return "backprop: sends W^T δ down (weight transport)" }

// Kernel implements Rule: W itself.
func (Backprop) Kernel(l *LayerGraph) *Node { return l.W }

// FeedbackAlignment is rule "fa": B is random, drawn once like W and independent of it, and fixed.
type FeedbackAlignment struct{ storedKernel }

// Name implements Rule.
func (FeedbackAlignment) Name() string { return "fa" }

// Description implements Rule.
func (FeedbackAlignment) Description() string {
	return "feedback alignment: fixed random B (Lillicrap et al. 2016)"
}

func init() {
	Register(Backprop{})
	Register(FeedbackAlignment{})
}
