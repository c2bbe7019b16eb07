package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// storedFeedback is embedded by rules whose B lives in the layer's "feedback" variable.
type storedFeedback struct{}

// StoresFeedback implements Rule.
func (storedFeedback) StoresFeedback() bool { return true }

// Feedback implements Rule: the value of the layer's feedback variable.
func (storedFeedback) Feedback(ctx *context.Context, w *Node) *Node {
	return feedbackVariable(ctx, w.Shape()).ValueGraph(w.Graph())
}

// Backprop is rule "bp": B = W, the weight transport that the other rules avoid.
type Backprop struct{}

// Name implements Rule.
func (Backprop) Name() string { return "bp" }

// Description implements Rule.
func (Backprop) Description() string { return "backprop: sends W^T δ down (weight transport)" }

// StoresFeedback implements Rule.
func (Backprop) StoresFeedback() bool { return false }

// Feedback implements Rule: W itself.
func (Backprop) Feedback(_ *context.Context, w *Node) *Node { return w }

// FeedbackAlignment is rule "fa": B is random, drawn once like W and independent of it, and fixed.
type FeedbackAlignment struct{ storedFeedback }

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
