package trainer

import (
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// checkSetNames refuses, before GoMLX's parser sees them, the entries of a -set string ("name=value;/scope/name=value")
// that it would refuse in its own words: a relative scope, and a name that the context does not know, for which it
// suggests the setting the user probably meant (see suggestSetting). Entries it cannot split (no "=", "file:") are
// left to GoMLX.
func checkSetNames(ctx *context.Context, settings string) error {
	for _, entry := range strings.Split(settings, ";") {
		path, _, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || strings.HasPrefix(entry, "file:") {
			continue
		}
		scope, name := context.SplitScope(path)
		if strings.Contains(name, context.ScopeSeparator) {
			return invalid("-set", "-set %q: the scope of %q must be absolute, starting with %q (e.g. /%s; nowt models -v "+
				"lists the scopes)", settings, path, context.ScopeSeparator, path)
		}
		if _, found := ctx.GetParam(name); found {
			continue
		}
		where := ""
		if scope != "" {
			where = " (at scope " + scope + ")"
		}
		hint := ""
		if s, flag := suggestSetting(name); s != "" {
			hint = " Did you mean " + s
			if flag != "" {
				hint += " (the setting of the flag -" + flag + ")"
			}
			hint += "?"
		}
		return invalid("-set", "-set %q: no rule, model or layer has a setting %q%s.%s nowt rules -v and nowt models -v "+
			"list the settings", settings, name, where, hint)
	}
	return nil
}

// suggestSetting returns the declared setting (feedback.AllSettings, models.Settings) that an unknown -set name
// probably meant, and its flag ("" for none): the one whose flag the name spells (wm_lr or wm-lr for -wm-lr's
// wm_learning_rate), else the nearest name within two edits (a typo); "" when none is that close.
func suggestSetting(name string) (setting, flag string) {
	all := settingFlags()
	dashed := strings.ReplaceAll(strings.TrimLeft(name, "-"), "_", "-")
	for _, s := range all {
		if s.flag != "" && s.flag == dashed {
			return s.name, s.flag
		}
	}
	best, bestDistance := settingFlag{}, 3
	for _, s := range all {
		if d := editDistance(name, s.name); d < bestDistance {
			best, bestDistance = s, d
		}
	}
	return best.name, best.flag
}

// editDistance is the Levenshtein distance between a and b (insertions, deletions and substitutions of bytes).
func editDistance(a, b string) int {
	previous, current := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			substitution := previous[j-1]
			if a[i-1] != b[j-1] {
				substitution++
			}
			current[j] = min(previous[j]+1, current[j-1]+1, substitution)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
