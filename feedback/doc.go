// Package feedback implements learning rules without weight transport and the layers they govern.
//
// A layer computes y = x·W (dense) or y = conv(x, W) (convolution). Backprop sends the error δ = ∂L/∂y to
// the layer below through W itself ("weight transport"). The rules in this package keep the forward pass
// and the weight gradient exactly as in backprop and change only what is sent down: the input gradient
// becomes δ·Bᵀ (for a convolution, the transposed convolution of δ with the feedback kernel B).
//
// Rules, chosen by name (see [RuleByName] and [Rules]):
//
//   - bp: backprop, B = W.
//   - fa: feedback alignment, B random and fixed (Lillicrap et al. 2016).
//   - ss: sign symmetry, B = scale·sign(W), recomputed every step (Liao et al. 2016; Xiao et al. 2018).
//   - wm: weight mirror, B learned in a separate mirror mode from noise (Akrout et al. 2019), see [MirrorStep].
//   - kp: Kolen-Pollack, B receives W's own update and weight decay (Akrout et al. 2019), see [Gradients].
//   - usf, frsf, brsf: sign-concordant feedback with uniform, fixed random or per-step random magnitudes
//     (Liao et al. 2016), scaled as BioTorch does.
//   - dfa: direct feedback alignment, every layer sends the output error e through a fixed random B (Nøkland
//     2016); the model marks its logits with [OutputError].
//   - ia: information alignment, B learns a local loss on the layer's input (Kunin et al. 2020).
//   - aa: activation alignment, B learns to give W's output on the layer's input (Kunin et al. 2020).
//
// A rule is one [Rule]: its settings ([Setting]: the defaults, flags, `nowt rules -v` and [ValidateParams]
// come from them), its feedback ([FeedbackSpec]: stored or not, computed from δ or from the output error), the
// kernel it sends through, and how B learns ([Learning]: KP, WM, IA and AA are compositions of Kunin et al.'s
// primitives decay, self, amp, null and sparse).
//
// Layout convention: B is stored in W's own layout (dense: [in, out]; conv: [kh, kw, cin, cout]), so the
// paper's B (of Wᵀ's shape) is the transpose of the stored tensor. With that convention "B aligned with Wᵀ"
// means the stored B is parallel to W, and KP's transposed update is W's update itself.
//
// The backward pass is built with [graph.IdentityWithCustomGradient]: a hook on the layer's output captures δ,
// hooks on the layer's input and weights return δ·Bᵀ and xᵀ·δ, computed as matmuls (or convolutions). The
// forward pass does no extra work, no global VJP table is modified, and the stock (broadcast-multiply-reduce)
// gradient of DotGeneral, very slow on the pure-Go backend, is never executed. A kernel the rule computes at
// every step (ss, usf, frsf, brsf) is also written to the layer's variable [SentKernelName], an output of the
// step that gives it a buffer of its own on XLA (see [SentKernels]; checkpoints leave it out).
//
// Hyperparameters are read from the context (see the Param* constants), so they can be set per model or per
// layer scope with ctx.SetParam, and from the command line with GoMLX's -set flag.
package feedback
