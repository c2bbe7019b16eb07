package feedback

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Context hyperparameters read by the feedback layers and rules. Each can be set at the root scope or at a
// layer's scope (for example to train the classifier with a different rule than the convolutions).
const (
	// ParamRule names the learning rule (see [Rules]). Default: "bp".
	ParamRule = "feedback_rule"

	// ParamInitScale multiplies the initial feedback weights of rules that store B (fa, wm, kp, ...): B is drawn
	// with the same scheme as W, independently. It also scales brsf's magnitudes (W's signs times a fixed random
	// magnitude), which are drawn from the initialiser's RMS. Default: 1.
	ParamInitScale = "feedback_init_scale"

	// ParamSSScale is sign symmetry's fixed scale. Default 0 means: the RMS of the layer's W at its first
	// step, i.e. the standard deviation of its initialisation, per layer.
	ParamSSScale = "ss_scale"

	// ParamConvImpl selects how Conv2D runs: "auto" (the backend's native convolution on XLA backends,
	// patches×matmul on the pure-Go backend, where it is faster, and on XLA's CPU plugin for a layer whose input
	// or output image is 2×2 pixels or fewer), "native" or "patches". Both run on every
	// backend and compute the same values. Default: "auto".
	ParamConvImpl = "feedback_conv_impl"

	// ParamConvWeightGradInput selects how the native convolution's weight gradient lays the layer's input out
	// for its convolution: as [channels, height, width, batch], by the compiler ("transpose") or by blocks of 16
	// channels turned by identity products ("products", which XLA's CPU backend runs several times faster than
	// its transpose), or as it lies ("folded": a 3-D convolution with the channels as a spatial axis, or below 16
	// channels, 32 on CPUs with AMX, one with the width and channels folded into one axis, which oneDNN runs
	// faster than either and which needs no transpose). "auto": folded where XLA's CPU plugin
	// runs float32 convolutions in oneDNN, else products on XLA's CPU plugin, transpose elsewhere. The gradient
	// is the same either way, up to the order of its sums. Default: "auto".
	ParamConvWeightGradInput = "feedback_conv_wgrad_input"

	// ParamOutputDim is the number of the model's outputs (classes), the width of the output error that DFA
	// projects. models.New sets it; it is not a user setting.
	ParamOutputDim = "feedback_output_dim"
)

// Source is what a layer's signal to the layer below is computed from.
type Source int

const (
	// FromDelta: the signal is computed from the layer's own error δ = ∂L/∂y, and B has W's layout.
	FromDelta Source = iota
	// FromOutputError: the signal is computed from the model's output error e = ∂L/∂logits, published by
	// [OutputError], and B maps the classes to the layer's input: [in, classes] for a dense layer,
	// [kh, kw, cin, classes] for a convolution (DFA).
	FromOutputError
)

// FeedbackSpec declares a rule's feedback weights.
type FeedbackSpec struct {
	// Stored: B is a variable of the layer (named "feedback", not trainable by the task loss), drawn once at
	// creation with the layer's own initializer, independently of W, times [ParamInitScale]; see feedbackInitializer.
	// Otherwise the rule computes its kernel from W (and fresh randomness) at every step.
	Stored bool
	// Source is what the signal is computed from; it also fixes B's shape (W's, or towards the classes).
	Source Source
}

// LayerGraph is what a rule sees of one layer in one graph.
type LayerGraph struct {
	// Ctx is the layer's scope: the rule reads its settings and keeps its own variables there.
	Ctx *context.Context
	// Kind is KindDense or KindConv.
	Kind string
	// W is the layer's weights.
	W *Node
	// B is the stored feedback's value, or nil where the rule does not store it.
	B *Node
	// Init is the layer's initializer (of W and of a stored B): rules that draw random feedback at every step
	// (brsf) or need its scale (usf) call it.
	Init context.VariableInitializer
}

// Rule is a learning rule for the feedback of a layer: what the layer sends down in place of Wᵀδ, and how its
// feedback weights B are kept and learn. Rules are chosen by name ([RuleByName]); a new rule is one file in this
// package that implements Rule (embedding [RuleBase] for the capabilities it lacks) and calls [Register] in an
// init function, plus its plain-Go reference in the tests (see rules_test.go).
type Rule interface {
	// Name is the short name used to select the rule, e.g. "kp".
	Name() string

	// Description is a one-line description.
	Description() string

	// Settings declares the hyperparameters the rule reads from the context (beyond the layers' own).
	Settings() []Setting

	// Feedback declares whether B is stored, its shape and initialisation.
	Feedback() FeedbackSpec

	// Prepare is called in the forward pass of every layer (once per layer and graph), even where no gradient
	// flows: rules that fix per-layer state at the first step (ss's scale) do it here.
	Prepare(l *LayerGraph)

	// Kernel builds the kernel through which the layer sends its signal down: for a FromDelta rule, in W's
	// layout (the input gradient is then δ·Kernelᵀ, or for a convolution the transposed convolution of δ with
	// it); for a FromOutputError rule, in B's (the signal is then e·Kernelᵀ, e broadcast over the output's
	// positions). It carries no gradient.
	Kernel(l *LayerGraph) *Node

	// Learning says how B learns, with the coefficients read from the layer's scope ctx, or nil where B is fixed
	// or computed from W.
	Learning(ctx *context.Context) *Learning
}

// RuleBase gives a rule the defaults of every capability: no settings, no stored feedback (FromDelta), nothing
// to prepare, B fixed. Embed it and override what the rule has.
type RuleBase struct{}

// Settings implements Rule: none.
func (RuleBase) Settings() []Setting { return nil }

// Feedback implements Rule: nothing stored.
func (RuleBase) Feedback() FeedbackSpec { return FeedbackSpec{} }

// Prepare implements Rule: nothing.
func (RuleBase) Prepare(*LayerGraph) {}

// Learning implements Rule: B does not learn.
func (RuleBase) Learning(*context.Context) *Learning { return nil }

var (
	registryMu sync.RWMutex
	registry   = map[string]Rule{}
)

// Register adds a rule to the registry, under its name in lower case. It panics if r is nil, if its name is not
// made of letters, digits, '-' and '_' only (the name selects the rule in -rule, -rules lists, -set strings and
// comparisons' folder names), or if a rule of the same name exists.
func Register(r Rule) {
	if r == nil {
		panic("feedback.Register: nil rule")
	}
	name := strings.ToLower(r.Name())
	if name == "" || strings.ContainsFunc(name, func(c rune) bool {
		return !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != '-' && c != '_'
	}) {
		panic(fmt.Sprintf("feedback.Register: rule name %q is not valid: use letters, digits, '-' and '_' only", r.Name()))
	}
	if name != r.Name() { // RuleByName and the lists use the lower-case name, Rule.Name() the rule's own
		panic(fmt.Sprintf("feedback.Register: rule name %q is not valid: rule names are lower case (%q)", r.Name(), name))
	}
	// One name, one setting: a rule may read a setting that another rule or the layers declare (AllSettings keeps the
	// first declaration), but not with another default, which would then be ignored.
	declared := map[string]Setting{}
	for _, s := range AllSettings() {
		declared[s.Name] = s
	}
	for _, s := range r.Settings() {
		if d, found := declared[s.Name]; found && !reflect.DeepEqual(d.Default, s.Default) {
			panic(fmt.Sprintf("feedback.Register: rule %q declares setting %q with default %#v, but it is already declared "+
				"with default %#v: give the rule's setting a name of its own (e.g. %s_%s)", name, s.Name, s.Default,
				d.Default, name, s.Name))
		}
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, found := registry[name]; found {
		panic(fmt.Sprintf("feedback: rule %q registered twice", name))
	}
	registry[name] = r
}

// Order is the conventional order of the rules, that of every listing, table and plot: backprop first, then the
// paper's four from the least to the most aligned, then the rules beyond the paper's — BioTorch's sign-concordant
// ones (uSF, then the two with random magnitudes, frSF and brSF), DFA, and Kunin et al.'s IA and AA. A rule not
// listed (one a library user registers) follows them, by name.
var Order = []string{"bp", "fa", "ss", "wm", "kp", "usf", "frsf", "brsf", "dfa", "ia", "aa"}

// SortNames returns a copy of the rule names sorted by [Order], names not in it after them by name.
func SortNames(names []string) []string {
	rank := func(name string) int {
		if i := slices.Index(Order, name); i >= 0 {
			return i
		}
		return len(Order)
	}
	sorted := slices.Clone(names)
	slices.SortStableFunc(sorted, func(a, b string) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return sorted
}

// RuleNames lists the registered rules' names in [Order].
func RuleNames() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return SortNames(slices.Collect(maps.Keys(registry)))
}

// Rules lists the registered rules in [Order].
func Rules() []Rule {
	names := RuleNames()
	rules := make([]Rule, len(names))
	for i, name := range names {
		rules[i], _ = RuleByName(name)
	}
	return rules
}

// RuleByName returns the rule of the given name (case-insensitive). An unknown name is an error that lists
// the valid ones.
func RuleByName(name string) (Rule, error) {
	registryMu.RLock()
	r, found := registry[strings.ToLower(strings.TrimSpace(name))]
	registryMu.RUnlock()
	if !found {
		return nil, fmt.Errorf("unknown feedback rule %q: valid rules are %s", name, strings.Join(RuleNames(), ", "))
	}
	return r, nil
}

// RuleFromContext returns the rule configured by [ParamRule] at the context's scope (or above it).
// It panics (GoMLX's graph-building convention) if the name is unknown.
func RuleFromContext(ctx *context.Context) Rule {
	name := settingValue[string](ctx, ParamRule)
	r, err := RuleByName(name)
	if err != nil {
		panic(err)
	}
	return r
}
