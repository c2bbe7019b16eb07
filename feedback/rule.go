package feedback

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Context hyperparameters read by the feedback layers and rules. Each can be set at the root scope or at a
// layer's scope (for example to train the classifier with a different rule than the convolutions).
const (
	// ParamRule names the learning rule (see [Rules]). Default: "bp".
	ParamRule = "feedback_rule"

	// ParamInitScale multiplies the initial feedback weights of rules that store B (fa, wm, kp).
	// B is drawn with the same scheme as W, independently. Default: 1.
	ParamInitScale = "feedback_init_scale"

	// ParamSSScale is sign symmetry's fixed scale. Default 0 means: the RMS of the layer's W at its first
	// step, i.e. the standard deviation of its initialisation, per layer.
	ParamSSScale = "ss_scale"

	// ParamConvImpl selects how Conv2D runs: "auto" (the backend's native convolution on XLA backends,
	// patches×matmul on the pure-Go backend, where it is faster), "native" or "patches". Both run on every
	// backend and compute the same values. Default: "auto".
	ParamConvImpl = "feedback_conv_impl"
)

// Rule is a learning rule for the feedback weights B of a layer.
//
// A new rule is one file in this package implementing Rule, plus a call to [Register] in an init function.
type Rule interface {
	// Name is the short name used to select the rule, e.g. "kp".
	Name() string

	// Description is a one-line description.
	Description() string

	// StoresFeedback reports whether the rule keeps B in a context variable (named "feedback", beside
	// the layer's "weights"), initialised like W and independent of it.
	StoresFeedback() bool

	// Feedback builds the feedback weights, in W's layout, used by the backward pass of the layer whose
	// scope is ctx. w is the layer's weights node.
	Feedback(ctx *context.Context, w *Node) *Node
}

// OptimizedFeedback is implemented by rules whose B is updated by the optimizer with W's gradient (KP).
type OptimizedFeedback interface {
	Rule
	// FollowsWeightUpdates is a marker: B receives W's gradient and weight decay through W's optimizer.
	FollowsWeightUpdates()
}

// MirroredFeedback is implemented by rules whose B learns in the mirror mode (WM).
type MirroredFeedback interface {
	Rule
	// MirrorUpdate builds the update of B for one mirror step: x is the noise fed to the layer, y = W x its
	// linear output, both flattened to matrices [n, in] and [n, out] (for convolutions, patches),
	// noiseVar the variance of the noise. It returns B's new value.
	MirrorUpdate(ctx *context.Context, b, x, y *Node, noiseVar float64) *Node
}

// PreparedFeedback is implemented by rules that keep per-layer state which must be set up in the forward pass
// of every layer (SS's fixed scale), even where no gradient flows to the layer's input.
type PreparedFeedback interface {
	Rule
	// Prepare is called once per layer and graph, in the layer's scope, with the layer's weights node.
	Prepare(ctx *context.Context, w *Node)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Rule{}
)

// Register adds a rule to the registry. It panics if a rule of the same name exists.
func Register(r Rule) {
	registryMu.Lock()
	defer registryMu.Unlock()
	name := strings.ToLower(r.Name())
	if _, found := registry[name]; found {
		panic(fmt.Sprintf("feedback: rule %q registered twice", name))
	}
	registry[name] = r
}

// RuleNames lists the registered rules' names, sorted.
func RuleNames() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Rules lists the registered rules, sorted by name.
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
	name := context.GetParamOr(ctx, ParamRule, "bp")
	r, err := RuleByName(name)
	if err != nil {
		panic(err)
	}
	return r
}

// DefaultParams returns every hyperparameter the rules and layers read, with its default, so a program can
// pre-set them in a context (GoMLX's -set flag only accepts known parameters) and list them in its help.
func DefaultParams() map[string]any {
	return map[string]any{
		ParamRule:           "bp",
		ParamInitScale:      1.0,
		ParamSSScale:        0.0,
		ParamConvImpl:       "auto",
		ParamKPDecay:        -1.0,
		ParamWMNoise:        "uniform",
		ParamWMNoiseScale:   0.05,
		ParamWMLearningRate: 0.01,
		ParamWMDecay:        0.01,
		ParamWMRescale:      false,
		ParamWMBatch:        128,
		ParamWMSteps:        1,
		ParamWMWarmupSteps:  -1,
	}
}
