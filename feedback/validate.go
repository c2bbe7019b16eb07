package feedback

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// paramRange is the valid range of one hyperparameter of [DefaultParams]: a set of strings, or numeric bounds.
type paramRange struct {
	// oneOf lists the valid values of a string parameter (nil: any, for a numeric or boolean one).
	oneOf []string
	// min and max bound a numeric parameter; minOpen excludes min itself; integer requires a whole number.
	min, max float64
	minOpen  bool
	integer  bool
	// also is one more valid value outside [min, max] (a sentinel such as -1 for "the default").
	also *float64
	// doc describes the valid range for error messages.
	doc string
}

func ptr(v float64) *float64 { return &v }

// paramRanges are the valid values of the hyperparameters in [DefaultParams] (all but wm_rescale, a boolean).
var paramRanges = map[string]paramRange{
	ParamInitScale:      {min: 0, minOpen: true, max: math.Inf(1), doc: "> 0"},
	ParamSSScale:        {min: 0, max: math.Inf(1), doc: "≥ 0 (0: the RMS of W at its first step)"},
	ParamConvImpl:       {oneOf: []string{"auto", "native", "patches"}},
	ParamKPDecay:        {min: 0, max: math.Inf(1), also: ptr(-1), doc: "≥ 0, or -1 for the weight decay"},
	ParamWMNoise:        {oneOf: []string{"uniform", "gaussian", "normal"}},
	ParamWMNoiseScale:   {min: 0, minOpen: true, max: math.Inf(1), doc: "> 0"},
	ParamWMLearningRate: {min: 0, minOpen: true, max: math.Inf(1), doc: "> 0"},
	ParamWMDecay:        {min: 0, max: 1, doc: "in [0, 1]"},
	ParamWMBatch:        {min: 1, max: 1 << 24, integer: true, doc: "a whole number ≥ 1"},
	ParamWMSteps:        {min: 0, max: 1 << 20, integer: true, doc: "a whole number ≥ 0"},
	ParamWMWarmupSteps:  {min: -1, max: 1 << 30, integer: true, doc: "a whole number ≥ 0, or -1 for one epoch's worth"},
}

// ParamError reports a rule hyperparameter whose value is out of its valid range.
type ParamError struct {
	// Param is the hyperparameter's name (e.g. "wm_noise"); Scope the context scope where it was set ("/" at
	// the root).
	Param, Scope string
	// Value is the value found; Valid describes the valid values.
	Value any
	Valid string
}

// Error implements error.
func (e *ParamError) Error() string {
	where := ""
	if e.Scope != context.RootScope && e.Scope != "" {
		where = " (scope " + e.Scope + ")"
	}
	return fmt.Sprintf("%s=%v%s is not valid: must be %s", e.Param, e.Value, where, e.Valid)
}

// ValidateParams checks every value, at every scope of ctx, of the hyperparameters read by the rules and layers
// ([DefaultParams]): the rule names, the string choices, and the numeric ranges. It returns a [*ParamError] for
// the first invalid one (in name order), so that a program can reject it before building any graph, where the
// rules would panic or silently train badly.
func ValidateParams(ctx *context.Context) error {
	type setting struct {
		scope, key string
		value      any
	}
	var settings []setting
	ctx.EnumerateParams(func(scope, key string, value any) {
		settings = append(settings, setting{scope, key, value})
	})
	sort.Slice(settings, func(i, j int) bool {
		if settings[i].key != settings[j].key {
			return settings[i].key < settings[j].key
		}
		return settings[i].scope < settings[j].scope
	})
	for _, s := range settings {
		if err := validateParam(s.key, s.value); err != nil {
			err.Scope = s.scope
			return err
		}
	}
	return nil
}

func validateParam(key string, value any) *ParamError {
	fail := func(valid string) *ParamError { return &ParamError{Param: key, Value: value, Valid: valid} }
	if key == ParamRule {
		name, ok := value.(string)
		if !ok {
			return fail("a rule name: " + strings.Join(RuleNames(), ", "))
		}
		if _, err := RuleByName(name); err != nil {
			return fail("one of " + strings.Join(RuleNames(), ", "))
		}
		return nil
	}
	if key == ParamWMRescale {
		if _, ok := value.(bool); !ok {
			return fail("true or false")
		}
		return nil
	}
	r, known := paramRanges[key]
	if !known {
		return nil
	}
	if r.oneOf != nil {
		s, ok := value.(string)
		if !ok || !contains(r.oneOf, s) {
			return fail("one of " + strings.Join(r.oneOf, ", "))
		}
		return nil
	}
	var v float64
	switch x := value.(type) {
	case float64:
		v = x
	case float32:
		v = float64(x)
	case int:
		v = float64(x)
	case int64:
		v = float64(x)
	case int32:
		v = float64(x)
	default:
		return fail("a number " + r.doc)
	}
	if r.also != nil && v == *r.also {
		return nil
	}
	switch {
	case math.IsNaN(v), v < r.min, r.minOpen && v == r.min, v > r.max, r.integer && v != math.Trunc(v):
		return fail(r.doc)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
