package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
)

// DirectFeedbackAlignment is rule "dfa" (Nøkland 2016): every layer sends down e·B_lᵀ, the model's output
// error e = ∂L/∂logits (recorded by [OutputError] on the logits) projected by a fixed random B_l, instead of
// anything computed from its own δ. B_l is stored towards the classes — [in, classes] for a dense layer,
// [kh, kw, cin, classes] for a convolution, whose signal is the transposed convolution of e broadcast over the
// output's positions — drawn once with the layer's initialiser. This is BioTorch's DFA
// (jsalbert/biotorch, biotorch/layers/dfa/linear.py and conv.py: a backward hook replaces each layer's input
// gradient by loss_gradient·weight_backward, with weight_backward of shape [output_dim, in_features] or
// [output_dim, in_channels, kh, kw], the loss gradient repeated over the output's height and width and sent
// through torch.nn.grad.conv2d_input; biotorch/module/biomodule.py publishes the loss gradient to every layer).
// nowt computes the convolutions' signal without the broadcast (convGeometry.spreadError: e·Bᵀ per kernel tap,
// then two 0/1 tap tables), so a layer's feedback costs about a dense layer's instead of a transposed
// convolution with one channel per class.
//
// Because every position of a convolution receives the same projected error, its weight gradient adds up
// coherently over the positions: DFA needs a smaller learning rate on convolutional networks (BioTorch's
// CIFAR-10 ResNet-20 benchmark configuration trains DFA at 0.001 where backprop uses 0.1,
// benchmark_configs/cifar10/resnet_20/sgd/dfa.yaml and backprop.yaml).
//
// Each layer's weight gradient stays xᵀδ with δ whatever reached its output. The classifier, whose output is
// the logits, thus keeps its own δ = e, and sends e·Bᵀ down like every layer. Only what the feedback layers
// send to their inputs is replaced: the rest of the graph is differentiated as usual, as in BioTorch. So:
//
//   - Activations multiply the projected error by their derivative at the layer below, as in DFA.
//   - Batch norm's own backward (through the batch statistics) is applied to the projected error arriving at
//     its output, and its scale and shift learn from it.
//   - In a residual block y = relu(x + F(x)), the block's input receives the sum of the shortcut's signal
//     (the projected error sent by the next block's first convolution, carried through the identity or the
//     option-A subsampling) and the projected error of the block's own first convolution; the second
//     convolution's projection reaches the first one's output only. The network is therefore not "direct" in
//     the strict sense — errors also travel along the shortcuts, through the residual sums.
//   - A projection shortcut (a 1×1 convolution) is a feedback layer like any other and sends its own
//     projection.
type DirectFeedbackAlignment struct{ RuleBase }

// Name implements Rule.
func (DirectFeedbackAlignment) Name() string { return "dfa" }

// Description implements Rule.
func (DirectFeedbackAlignment) Description() string {
	return "direct feedback alignment: each layer sends the output error through a fixed random B (Nøkland 2016)"
}

// Feedback implements Rule: B is stored towards the classes and projects the output error.
func (DirectFeedbackAlignment) Feedback() FeedbackSpec {
	return FeedbackSpec{Stored: true, Source: FromOutputError}
}

// Kernel implements Rule: the stored B.
func (DirectFeedbackAlignment) Kernel(l *LayerGraph) *Node { return l.B }

func init() { Register(DirectFeedbackAlignment{}) }
