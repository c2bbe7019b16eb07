package report

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/nowt-ml/nowt/trainer"
)

// RulesTable is the compact table of a comparison that docs/results.md shows: per rule, the engine it ran on,
// its length, final and best test top-1, final test loss, each layer's final ∠W / ∠δ (with more than 4 layers,
// their mean and range over the layers instead), and wall time; a final top-1 at chance level is marked "(at
// chance)" ([trainer.EndedAtChance]). Everything comes from the runs' logs. It is "" for a nil c.
func RulesTable(c *trainer.Comparison) string {
	if c == nil {
		return ""
	}
	rules := rulesOf(c)
	summaries := map[string]trainer.Summary{}
	for _, rule := range rules {
		summaries[rule] = trainer.Summarize(c.Records[rule])
	}
	layers := layerNames(rules, summaries)
	inline := len(layers) <= maxInlineLayers
	gradients := hasGradientAngles(summaries)
	header := []string{"rule", "engine", "epochs", "test top-1 (%)", "best top-1 (%)", "test loss"}
	if inline {
		header = append(header, inlineLayerHeaders(layers, gradients)...)
	} else {
		header = append(header, fmt.Sprintf("∠W mean (min–max) over %d layers (°)", len(layers)),
			"∠δ mean (min–max) (°)")
		if gradients {
			header = append(header, "∠∇ mean (min–max) (°)")
		}
	}
	header = append(header, "wall time")
	var b strings.Builder
	writeRow(&b, header)
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---:"
	}
	align[0], align[1] = ":---", ":---"
	writeRow(&b, align)
	for _, rule := range rules {
		s := summaries[rule]
		engine := "–"
		if res := c.Results[rule]; res != nil && res.Config.Backend != "" {
			engine = res.Config.Backend
		}
		row := []string{rule, engine, fmt.Sprintf("%.2f", s.Epochs)}
		if s.Final != nil {
			top1 := percent(s.Final.TestTop1)
			if _, ok := atChance(c, rule); ok {
				top1 += " (at chance)"
			}
			row = append(row, top1, percent(&s.Best), number(s.Final.TestLoss))
		} else {
			row = append(row, "–", "–", "–")
		}
		if inline {
			row = append(row, inlineLayerCells(s, layers, gradients)...)
		} else {
			row = append(row, angleRange(s.Layers, weightAngleOf), angleRange(s.Layers, deltaAngleOf))
			if gradients {
				gradient := "–" // a log from before nowt measured gradient angles
				if measuresGradients(s) {
					gradient = angleRange(s.Layers, gradientAngleOf)
				}
				row = append(row, gradient)
			}
		}
		wall := "–"
		if res := c.Results[rule]; res != nil && res.Duration > 0 {
			wall = formatDuration(res.Duration)
		}
		writeRow(&b, append(row, wall))
	}
	return b.String()
}

// angleRange formats the mean and range of the layers' weight (or delta) angles, and how many are undefined.
func angleRange(layers []trainer.LayerAlignment, angle func(trainer.LayerAlignment) *float64) string {
	var values []float64
	undefined := 0
	for _, l := range layers {
		v := angle(l)
		if v == nil {
			undefined++
			continue
		}
		values = append(values, *v)
	}
	if len(values) == 0 {
		if undefined > 0 {
			return "undef."
		}
		return "–"
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range values {
		lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
	}
	s := fmt.Sprintf("%.1f (%.1f–%.1f)", sum/float64(len(values)), lo, hi)
	if undefined > 0 {
		s += fmt.Sprintf(", %d undef.", undefined)
	}
	return s
}

// SeedsTable compares the final test top-1 of each rule over comparisons that differ only in their seed: one
// column per comparison (headed by its seed), then the mean and the sample standard deviation. A run that diverged
// reads "diverged" and is left out of the mean and sd, with a note under the table; a run that ended at chance
// level is marked "(at chance)", counts in the mean and sd (it is what the rule did) and is described under the
// table; a seed without the rule's final top-1 (no run, no test evaluation) reads "–", also with a note.
func SeedsTable(cs []*trainer.Comparison) string {
	rules := seedsRules(cs)
	header := []string{"rule"}
	for _, c := range cs {
		header = append(header, "seed "+seedOf(c))
	}
	header = append(header, "mean", "sd")
	var b strings.Builder
	writeHeader(&b, header)
	anyDiverged := false
	var chanceNotes, missing []string
	for _, rule := range rules {
		row := []string{rule}
		var values []float64
		for _, c := range cs {
			if diverged(c, rule) {
				anyDiverged = true
				row = append(row, "diverged")
				continue
			}
			v, ok := finalTop1(c, rule)
			if !ok {
				missing = append(missing, fmt.Sprintf("%s seed %s", rule, seedOf(c)))
				row = append(row, "–")
				continue
			}
			values = append(values, v)
			cell := fmt.Sprintf("%.2f", v)
			if ending, ok := atChance(c, rule); ok {
				cell += " (at chance)"
				chanceNotes = append(chanceNotes, fmt.Sprintf("%s seed %s %s", rule, seedOf(c), ending))
			}
			row = append(row, cell)
		}
		mean, sd := meanSD(values)
		writeRow(&b, append(row, formatOrDash(mean, "%.2f"), formatOrDash(sd, "%.2f")))
	}
	if anyDiverged {
		b.WriteString("\n*diverged*: the run's loss diverged and the run stopped (its last evaluation came before the end); " +
			"mean and sd are over the runs that did not.\n")
	}
	if len(missing) > 0 {
		b.WriteString("\n*–*: no final test top-1 in that seed (no run, or a log without a test evaluation: see the seed's " +
			"results.md): " + strings.Join(missing, ", ") + "; the rule's mean and sd are over the seeds that have one.\n")
	}
	if len(chanceNotes) > 0 {
		b.WriteString("\n*at chance*: the run's last test evaluations were at chance level; it counts in the mean and sd " +
			"(it is what the rule did): " + strings.Join(chanceNotes, "; ") + ".\n")
	}
	return b.String()
}

func meanSD(values []float64) (mean, sd float64) {
	if len(values) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, v := range values {
		mean += v
	}
	mean /= float64(len(values))
	if len(values) < 2 {
		return mean, math.NaN()
	}
	for _, v := range values {
		sd += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(sd / float64(len(values)-1))
}

func formatOrDash(v float64, format string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// maxInlineLayers is the most layers whose angles a rules table shows one column each; with more it shows their
// mean and range.
const maxInlineLayers = 4

// inlineLayerHeaders are the header cells of the per-layer angle columns.
func inlineLayerHeaders(layers []string, gradients bool) []string {
	cells := make([]string, len(layers))
	for i, l := range layers {
		cells[i] = ShortLayerName(l) + " ∠W / ∠δ (°)"
		if gradients {
			cells[i] = ShortLayerName(l) + " ∠W / ∠δ / ∠∇ (°)"
		}
	}
	return cells
}

// inlineLayerCells are a run's "∠W / ∠δ" cells for layers ("–" where the run has no such layer), with
// " / ∠∇" when gradients ("–" for a run whose log has none).
func inlineLayerCells(s trainer.Summary, layers []string, gradients bool) []string {
	cells := make([]string, len(layers))
	for i, l := range layers {
		cells[i] = "–"
		if a, ok := s.Layer(l); ok {
			cells[i] = weightAngle(a) + " / " + deltaAngle(a)
			if gradients {
				cells[i] += " / " + gradientAngleIn(s, a)
			}
		}
	}
	return cells
}

// hasGradientAngles reports whether any run's final record holds gradient angles (logs from before nowt
// measured them hold none: their tables keep their columns).
func hasGradientAngles(summaries map[string]trainer.Summary) bool {
	return runsMeasuringGradients(summaries) > 0
}

// measuresGradients reports whether a run's final record holds gradient angles, defined or marked undefined. One
// that holds none comes from a log made before nowt measured them: beside runs that have them, its cells read "–",
// not measured, rather than "undef.". (Before nowt marked undefined gradient angles, a log whose every gradient
// angle was undefined — a collapsed network, no error reaching any layer — read as not measured too.)
func measuresGradients(s trainer.Summary) bool {
	return slices.ContainsFunc(s.Layers, func(l trainer.LayerAlignment) bool {
		return l.GradientAngle != nil || l.GradientUndefined
	})
}

// allMeasureGradients reports whether every run with alignment records holds gradient angles in its final one (a
// run without records, an empty log, says nothing of when its log was made).
func allMeasureGradients(summaries map[string]trainer.Summary) bool {
	withLayers := 0
	for _, s := range summaries {
		if len(s.Layers) > 0 {
			withLayers++
		}
	}
	return runsMeasuringGradients(summaries) == withLayers
}

// runsMeasuringGradients counts the runs whose final record holds gradient angles.
func runsMeasuringGradients(summaries map[string]trainer.Summary) int {
	n := 0
	for _, s := range summaries {
		if measuresGradients(s) {
			n++
		}
	}
	return n
}

// gradientAngleIn formats layer a's gradient angle in run s: "–" where s did not measure gradient angles.
func gradientAngleIn(s trainer.Summary, a trainer.LayerAlignment) string {
	if !measuresGradients(s) {
		return "–"
	}
	return gradientAngle(a)
}

func weightAngleOf(l trainer.LayerAlignment) *float64   { return l.WeightAngle }
func deltaAngleOf(l trainer.LayerAlignment) *float64    { return l.DeltaAngle }
func gradientAngleOf(l trainer.LayerAlignment) *float64 { return l.GradientAngle }
