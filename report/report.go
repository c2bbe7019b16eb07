// Package report writes the report of a comparison of learning rules ([trainer.Compare]) or of any set of runs'
// metrics logs: a markdown table (results.md) and PNG plots. It reads only the runs' records, so that a
// comparison can be reported again from its logs alone, and so that training does not import plotting.
package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/trainer"
)

// ResultsFileName is the comparison's markdown report, in its folder.
const ResultsFileName = "results.md"

// ShortLayerName shortens a layer's context scope for tables and legends: "/model/block1/conv2" → "block1/conv2".
func ShortLayerName(scope string) string {
	s := strings.TrimPrefix(scope, "/")
	s = strings.TrimPrefix(s, "model/")
	if s == "" {
		return scope
	}
	return s
}

// Write writes dir/results.md (a markdown table of each rule's final and best test top-1, final top-5 and test
// loss, final weight and delta angles per layer and wall time, with commandLine and the date) and the plots of
// [WritePlots]. It needs only c.Records (e.g. read back with [trainer.ReadRecords]); c.Results adds wall times
// and configurations, c.Status the notes on reused, resumed and diverged runs. A comparison with no rule to show
// (no Rules, Records or Results) is an error, and nothing is written.
func Write(dir string, c *trainer.Comparison, commandLine string) error {
	if c == nil {
		return fmt.Errorf("writing the comparison: nothing to write (nil comparison)")
	}
	if len(rulesOf(c)) == 0 {
		return fmt.Errorf("writing the comparison: nothing to write (no rule has records or results: train the rules first, or load a comparison with trainer.LoadComparison)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing the comparison: %w", err)
	}
	md := Format(c, commandLine, time.Now())
	path := filepath.Join(dir, ResultsFileName)
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return fmt.Errorf("writing the comparison: %w", err)
	}
	return WritePlots(dir, c)
}

// rulesOf returns c's rules in order: c.Rules, else those with records or results by [feedback.Order].
func rulesOf(c *trainer.Comparison) []string {
	if len(c.Rules) > 0 {
		return c.Rules
	}
	set := map[string]bool{}
	for r := range c.Records {
		set[r] = true
	}
	for r := range c.Results {
		set[r] = true
	}
	rules := make([]string, 0, len(set))
	for r := range set {
		rules = append(rules, r)
	}
	return feedback.SortNames(rules)
}

// layerNames returns the layers' scopes over all rules, in order of first appearance.
func layerNames(rules []string, summaries map[string]trainer.Summary) []string {
	var names []string
	seen := map[string]bool{}
	for _, rule := range rules {
		for _, l := range summaries[rule].Layers {
			if !seen[l.Layer] {
				seen[l.Layer] = true
				names = append(names, l.Layer)
			}
		}
	}
	return names
}

// Angle formats an angle of a record: "undef." where it is undefined (a zero vector), "–" where it was not
// measured.
func Angle(v *float64, status string) string {
	if v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
		return fmt.Sprintf("%.1f", *v)
	}
	if status == "undefined" {
		return "undef."
	}
	return "–"
}

// weightAngle and deltaAngle format a layer's angles.
func weightAngle(l trainer.LayerAlignment) string {
	status := ""
	if l.WeightAngle == nil {
		status = "undefined" // W and B always exist: a missing weight angle had a zero vector.
	}
	return Angle(l.WeightAngle, status)
}

func deltaAngle(l trainer.LayerAlignment) string { return Angle(l.DeltaAngle, l.DeltaStatus()) }

// ofLayer adapts a layer's formatter to the per-layer tables, which also pass the run.
func ofLayer(format func(trainer.LayerAlignment) string) func(trainer.Summary, trainer.LayerAlignment) string {
	return func(_ trainer.Summary, l trainer.LayerAlignment) string { return format(l) }
}

// gradientAngle formats a layer's gradient angle. In a log from before nowt recorded which gradient angles were
// undefined, a missing one beside a delta angle (an error reached the layer) is taken as undefined.
func gradientAngle(l trainer.LayerAlignment) string {
	status := l.GradientStatus()
	if status == "not measured" && l.DeltaAngle != nil {
		status = "undefined"
	}
	return Angle(l.GradientAngle, status)
}

// Format returns the markdown of results.md for c, dated now ("" for a nil c).
func Format(c *trainer.Comparison, commandLine string, now time.Time) string {
	if c == nil {
		return ""
	}
	rules := rulesOf(c)
	summaries := map[string]trainer.Summary{}
	endings := map[string]trainer.ChanceEnding{} // the runs that ended at chance: marked in the table, noted below
	for _, rule := range rules {
		if ending, ok := atChance(c, rule); ok {
			endings[rule] = ending
		}
		s := trainer.Summarize(c.Records[rule])
		if len(c.Records[rule]) == 0 {
			if res := c.Results[rule]; res != nil && res.Steps > 0 { // a result with no run behind it shows "–"
				s = trainer.Summary{Steps: res.Steps, Epochs: res.Epochs, Best: res.BestTestTop1, Layers: res.Layers,
					Final: &trainer.Record{TestTop1: &res.TestTop1, TestTop5: &res.TestTop5, TestLoss: &res.TestLoss}}
			}
		}
		summaries[rule] = s
	}
	layers := layerNames(rules, summaries)
	gradients := hasGradientAngles(summaries)

	var b strings.Builder
	title := "Comparison of learning rules"
	cfg := comparisonConfig(c, rules)
	if cfg != nil {
		title = fmt.Sprintf("%s on %s: learning rules compared", cfg.Model, cfg.Dataset)
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	settingsDiffer := false
	if cfg != nil {
		common, perRule := describeSettings(c, rules)
		fmt.Fprintf(&b, "%s.\n\n", strings.Join(common, ", "))
		if len(perRule) > 0 {
			settingsDiffer = true
			fmt.Fprintf(&b, "Per rule: %s.\n\n", strings.Join(perRule, "; "))
		}
	}

	inline := len(layers) <= maxInlineLayers
	header := []string{"rule", "steps", "epochs", "final top-1 (%)", "best top-1 (%)", "final top-5 (%)", "test loss"}
	if inline {
		header = append(header, inlineLayerHeaders(layers, gradients)...)
	}
	header = append(header, "wall time")
	writeHeader(&b, header)
	undefined := false
	for _, rule := range rules {
		s := summaries[rule]
		row := []string{rule, fmt.Sprint(s.Steps), fmt.Sprintf("%.2f", s.Epochs)}
		if s.Final != nil {
			top1 := percent(s.Final.TestTop1)
			if _, ok := endings[rule]; ok {
				top1 += " (at chance)" // how, in a note under the tables
			}
			row = append(row, top1, percent(&s.Best), percent(s.Final.TestTop5), number(s.Final.TestLoss))
		} else {
			row = append(row, "–", "–", "–", "–")
		}
		for _, l := range s.Layers {
			undefined = undefined || l.WeightAngle == nil || l.DeltaStatus() == "undefined"
		}
		if inline {
			row = append(row, inlineLayerCells(s, layers, gradients)...)
		}
		wall := "–"
		if res := c.Results[rule]; res != nil && res.Duration > 0 {
			wall = formatDuration(res.Duration)
		}
		row = append(row, wall)
		writeRow(&b, row)
	}
	if !inline {
		for _, part := range []struct {
			title string
			value func(trainer.Summary, trainer.LayerAlignment) string
			shown bool
		}{
			{"Final weight angle ∠(B, Wᵀ) per layer (°)", ofLayer(weightAngle), true},
			{"Final delta angle ∠(Bδ, Wᵀδ) per layer (°)", ofLayer(deltaAngle), true},
			{"Final gradient angle ∠(ΔW, ΔW of backprop) per layer (°)", gradientAngleIn, gradients},
		} {
			if !part.shown {
				continue
			}
			fmt.Fprintf(&b, "\n### %s\n\n", part.title)
			writeHeader(&b, append([]string{"layer"}, rules...))
			for _, l := range layers {
				row := []string{ShortLayerName(l)}
				for _, rule := range rules {
					if a, ok := summaries[rule].Layer(l); ok {
						row = append(row, part.value(summaries[rule], a))
					} else {
						row = append(row, "–")
					}
				}
				writeRow(&b, row)
			}
		}
	}

	b.WriteString("\n")
	if len(layers) > 0 {
		b.WriteString("∠W is the angle between B and Wᵀ, ∠δ between Bδ and Wᵀδ (averaged over the examples of a fixed test " +
			"batch), at the last record.")
		if gradients {
			b.WriteString(" ∠∇ is the angle between the weight gradient the rule gives the layer and backprop's on that " +
				"batch: the direction of its update, with the errors of the layers above compounded (0 at the output layer).")
			if !allMeasureGradients(summaries) {
				b.WriteString(" ∠∇ \"–\": not measured (a log made before nowt measured it).")
			}
		}
		if undefined {
			b.WriteString(" \"undef.\": undefined, a zero vector on one side (a zero W or B; for ∠δ, no error " +
				"reaching the layer), or for ∠W a B not in W's shape (dfa's hidden layers: B maps the output error). Examples whose ∠δ is undefined (δ = 0: a saturated output, dead units above) are " +
				"left out of its mean and counted in metrics.jsonl (`delta_undefined`).")
		}
		b.WriteString("\n")
	}
	for _, rule := range rules {
		if n := summaries[rule].Evaluations; n > 0 && n < 10 {
			fmt.Fprintf(&b, "- %s: only %s (set -eval-every for a curve).\n", rule, plural(n, "test evaluation"))
		}
		switch c.Status[rule] {
		case trainer.StatusReused:
			fmt.Fprintf(&b, "- %s: reused the finished run in %s/ (not retrained).\n", rule, rule)
		case trainer.StatusResumed:
			fmt.Fprintf(&b, "- %s: resumed an unfinished run; the wall time adds up its invocations.\n", rule)
		case trainer.StatusDiverged:
			how := fmt.Sprintf("stopped after step %d, its last record", summaries[rule].Steps)
			if e := c.Divergence[rule]; e != nil && e.Start > 0 {
				how = fmt.Sprintf("the divergence guard stopped it at step %d: loss %.4g, over %d× its start (%.4g)",
					e.Step, e.Loss, trainer.DivergenceFactor, e.Start)
			} else if e != nil {
				how = fmt.Sprintf("the loss became %g at step %d", e.Loss, e.Step)
			}
			fmt.Fprintf(&b, "- %s: diverged (%s); the numbers are those of its last records.\n", rule, how)
		case trainer.StatusCollapsed:
			how := fmt.Sprintf("after step %d, its last record", summaries[rule].Steps)
			if e := c.Collapse[rule]; e != nil {
				how = fmt.Sprintf("at step %d, after %s at chance in a row", e.Step, plural(e.Evaluations, "evaluation"))
			}
			fmt.Fprintf(&b, "- %s: stopped by -chance-guard (%s); the numbers are those of its last records.\n",
				rule, how)
		}
		if ending, ok := endings[rule]; ok {
			guard := ""
			if ending.Collapsed() {
				guard = " (the divergence guard does not stop such a run: its loss does not grow)"
			}
			fmt.Fprintf(&b, "- %s: %s%s.\n", rule, ending, guard)
		}
		if problem, ok := c.LogProblems[rule]; ok {
			fmt.Fprintf(&b, "- %s: its log could not be read whole: %s.\n", rule, problem)
		}
	}
	b.WriteString("\nEach rule's run (config.json, metrics.jsonl, checkpoints) is in its own folder beside this file.\n")
	if commandLine != "" {
		label := "Command"
		// Several invocations made the runs (their settings differ, or the command names only some of the rules):
		// this is only the last one's.
		if settingsDiffer || !commandNamesRules(commandLine, rules) {
			label = "Command of the last invocation (each run's config.json holds its own settings)"
		}
		fmt.Fprintf(&b, "\n%s:\n\n```\n%s\n```\n", label, commandLine)
	}
	fmt.Fprintf(&b, "\nDate: %s\n", now.Format("2006-01-02 15:04:05 MST"))
	return b.String()
}

// commandNamesRules reports whether commandLine, a nowt compare command, trains every one of rules: false when
// its -rules flag leaves one out (a comparison completed by a later invocation with -rules ss,fa, say); true
// when it has no -rules flag (compare's default, or not a compare command: nothing to judge).
func commandNamesRules(commandLine string, rules []string) bool {
	fields := strings.Fields(commandLine)
	for i, f := range fields {
		var list string
		switch {
		case (f == "-rules" || f == "--rules") && i+1 < len(fields):
			list = fields[i+1]
		case strings.HasPrefix(f, "-rules="), strings.HasPrefix(f, "--rules="):
			list = f[strings.Index(f, "=")+1:]
		default:
			continue
		}
		named := strings.Split(strings.Trim(list, `'"`), ",")
		for _, rule := range rules {
			if !slices.Contains(named, rule) {
				return false
			}
		}
		return true
	}
	return true
}

// describeSettings describes the settings of the comparison's runs (length, batch, learning rate and schedule,
// momentum, weight decay, loss, seed): those all runs share, and for the others each run's value, as
// "rule: setting" phrases.
func describeSettings(c *trainer.Comparison, rules []string) (common, perRule []string) {
	fields := []func(cfg trainer.Config) string{
		func(cfg trainer.Config) string {
			if cfg.Steps > 0 {
				return plural(cfg.Steps, "step")
			}
			return plural(cfg.Epochs, "epoch")
		},
		func(cfg trainer.Config) string { return fmt.Sprintf("batch %d", cfg.BatchSize) },
		func(cfg trainer.Config) string {
			return fmt.Sprintf("learning rate %g (%s)", cfg.LearningRate, cfg.Schedule)
		},
		func(cfg trainer.Config) string { return fmt.Sprintf("momentum %g", cfg.Momentum) },
		func(cfg trainer.Config) string {
			if cfg.ClipNorm > 0 {
				return fmt.Sprintf("weight decay %g, gradients clipped to norm %g", cfg.WeightDecay, cfg.ClipNorm)
			}
			return fmt.Sprintf("weight decay %g", cfg.WeightDecay)
		},
		func(cfg trainer.Config) string {
			if cfg.LabelSmoothing > 0 {
				return fmt.Sprintf("%s loss, label smoothing %g", cfg.Loss, cfg.LabelSmoothing)
			}
			return fmt.Sprintf("%s loss", cfg.Loss)
		},
		func(cfg trainer.Config) string { return fmt.Sprintf("seed %d", cfg.Seed) },
	}
	var withConfig []string
	for _, rule := range rules {
		if res := c.Results[rule]; res != nil && res.Config.Model != "" {
			withConfig = append(withConfig, rule)
		}
	}
	differ := map[string][]string{}
	for _, field := range fields {
		values := map[string]bool{}
		for _, rule := range withConfig {
			values[field(c.Results[rule].Config)] = true
		}
		if len(values) == 1 {
			common = append(common, field(c.Results[withConfig[0]].Config))
			continue
		}
		for _, rule := range withConfig {
			differ[rule] = append(differ[rule], field(c.Results[rule].Config))
		}
	}
	for _, rule := range withConfig {
		if d := differ[rule]; len(d) > 0 {
			perRule = append(perRule, rule+": "+strings.Join(d, ", "))
		}
	}
	return common, perRule
}

// comparisonConfig returns the configuration of the first rule that has a result, or nil.
func comparisonConfig(c *trainer.Comparison, rules []string) *trainer.Config {
	for _, rule := range rules {
		if res := c.Results[rule]; res != nil && res.Config.Model != "" {
			return &res.Config
		}
	}
	return nil
}

// writeHeader writes a markdown table's header row and its alignment row: the first column left-aligned, the
// others right-aligned.
func writeHeader(b *strings.Builder, header []string) {
	writeRow(b, header)
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---:"
	}
	align[0] = ":---"
	writeRow(b, align)
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func percent(p *float64) string {
	if p == nil || math.IsNaN(*p) {
		return "–"
	}
	return fmt.Sprintf("%.2f", 100**p)
}

func number(p *float64) string {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return "–"
	}
	return fmt.Sprintf("%.4g", *p)
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// plural writes n and the noun, with an s unless n is 1: "1 epoch", "3 epochs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
