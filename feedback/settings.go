package feedback

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/nowt-ml/nowt/internal/param"
)

// Setting is one hyperparameter read from the context by a rule or by the feedback layers. Each rule declares
// its own ([Rule.Settings]); the defaults ([DefaultParams]), the command line's flags, `nowt rules -v` and
// validation ([ValidateParams]) are all generated from these declarations.
type Setting struct {
	// Name is the context parameter, e.g. "wm_decay"; it can be set at any scope (a layer's scope overrides the
	// root's).
	Name string
	// Flag is the command-line flag that sets it, e.g. "wm-decay"; "" means Name with '_' replaced by '-', and
	// "-" no flag (the setting has a dedicated one, or is only set with -set).
	Flag string
	// Default is the value used when the context does not set it: a float64, int, bool or string. Its type is
	// the setting's type.
	Default any
	// Min and Max bound a numeric setting (inclusive), when HasRange is set.
	Min, Max float64
	// HasRange enables the Min/Max check.
	HasRange bool
	// MinExclusive makes Min itself invalid (the value must be greater).
	MinExclusive bool
	// Special lists values valid outside [Min, Max], sentinels such as -1 for "the default".
	Special []float64
	// Choices lists the valid values of a string setting (nil: any string).
	Choices []string
	// Doc is a one-line description, with the meaning of special values.
	Doc string
	// Global marks a setting read once for the whole model (by the trainer, at the context's root), not per
	// layer: setting it at a layer's scope is an error rather than silently ignored.
	Global bool
}

// FlagName is the setting's command-line flag.
func (s Setting) FlagName() string {
	if s.Flag != "" {
		return s.Flag
	}
	return strings.ReplaceAll(s.Name, "_", "-")
}

// Range describes the valid values, for help texts: "[0, 1]", "uniform|gaussian" or "".
func (s Setting) Range() string {
	switch {
	case len(s.Choices) > 0:
		return strings.Join(s.Choices, "|")
	case s.HasRange:
		bound := func(v float64) string {
			switch {
			case math.IsInf(v, 1):
				return "∞"
			case math.IsInf(v, -1):
				return "−∞"
			}
			return fmt.Sprint(v)
		}
		open := "["
		if s.MinExclusive {
			open = "("
		}
		r := open + bound(s.Min) + ", " + bound(s.Max) + "]"
		for _, v := range s.Special {
			r += " or " + fmt.Sprint(v)
		}
		return r
	}
	return ""
}

// Validate checks a value given for the setting: its type (ints are accepted for float settings) and range.
// The error names the setting and what would be valid.
func (s Setting) Validate(value any) error {
	var number float64
	isNumber := false
	switch def := s.Default.(type) {
	case float64:
		if number, isNumber = param.Convert(value, def); !isNumber {
			return fmt.Errorf("feedback: %s=%#v is %s: want a number", s.Name, value, param.Kind(value))
		}
	case int:
		n, ok := param.Convert(value, def)
		if !ok {
			return fmt.Errorf("feedback: %s=%#v is %s: want a whole number", s.Name, value, param.Kind(value))
		}
		number, isNumber = float64(n), true
	case bool:
		if _, ok := param.Convert(value, def); !ok {
			return fmt.Errorf("feedback: %s=%#v is %s: want true or false", s.Name, value, param.Kind(value))
		}
	case string:
		v, ok := param.Convert(value, def)
		if !ok {
			return fmt.Errorf("feedback: %s=%#v is %s: want a string", s.Name, value, param.Kind(value))
		}
		if len(s.Choices) > 0 && !slices.Contains(s.Choices, v) { // exactly: the layers and rules compare the value as it is
			return fmt.Errorf("feedback: %s=%q is not valid: use one of %s", s.Name, v, strings.Join(s.Choices, ", "))
		}
	}
	if isNumber && slices.Contains(s.Special, number) {
		return nil
	}
	if isNumber && s.HasRange && (math.IsNaN(number) || number < s.Min || number > s.Max || (s.MinExclusive && number == s.Min)) {
		return fmt.Errorf("feedback: %s=%v is not valid: want a value in %s (%s)", s.Name, value, s.Range(), s.Doc)
	}
	return nil
}

// layerSettings are read by the feedback layers themselves, whatever the rule.
var layerSettings = []Setting{
	{Name: ParamRule, Flag: "-", Default: "bp", Doc: "the learning rule (see nowt rules)"},
	{Name: ParamInitScale, Flag: "init-scale", Default: 1.0, HasRange: true, Min: 0, MinExclusive: true, Max: math.Inf(1),
		Doc: "scale of a stored B's initialisation relative to W's (rules that store B; brsf's magnitudes too)"},
	{Name: ParamConvImpl, Default: "auto", Choices: []string{"auto", "native", "patches"},
		Doc: "how convolutions run: the backend's native convolution, patches×matmul, or auto (native on XLA, but patches on XLA's CPU plugin for images of 2×2 pixels or fewer)"},
	{Name: ParamConvWeightGradInput, Default: "auto", Choices: []string{"auto", "transpose", "products", "folded"},
		Doc: "native convolutions: how the weight gradient lays out the layer's input, by the compiler's transpose, by identity products, or as it lies (folded: channels as a spatial axis, or folded with the width below 16 channels; no transpose; for oneDNN's convolutions) (auto: folded where oneDNN runs the convolutions, else products on XLA's CPU plugin for channels in blocks of 8 or more, else transpose)"},
}

// AllSettings lists every setting: the layers' and every registered rule's, once each (rules may share one),
// sorted by name.
func AllSettings() []Setting {
	byName := map[string]Setting{}
	for _, s := range layerSettings {
		byName[s.Name] = s
	}
	for _, r := range Rules() {
		for _, s := range r.Settings() {
			if _, found := byName[s.Name]; !found {
				byName[s.Name] = s
			}
		}
	}
	out := make([]Setting, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DefaultParams returns every setting's default ([AllSettings]), so a program can pre-set them in a context
// (GoMLX's -set flag only accepts known parameters) and list them in its help.
func DefaultParams() map[string]any {
	params := map[string]any{}
	for _, s := range AllSettings() {
		params[s.Name] = s.Default
	}
	return params
}
