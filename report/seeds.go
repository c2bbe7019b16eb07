package report

import (
	"cmp"
	"fmt"
	"image/color"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/internal/stats"
	"github.com/nowt-ml/nowt/trainer"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// SeedDirPrefix begins the name of each seed's comparison folder inside a comparison over seeds: <out>/seed-<n>.
const SeedDirPrefix = "seed-"

// SeedDir returns the folder of seed's comparison inside a comparison over seeds kept in dir.
func SeedDir(dir string, seed int64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%d", SeedDirPrefix, seed))
}

// SeedsPlotFileName is the plot of each rule's final test top-1 per seed, in a comparison over seeds' folder.
const SeedsPlotFileName = "seeds-top1.png"

// finalTop1 returns rule's final test top-1 in c, in %, and whether it has one: a run that diverged has none (its
// last evaluation came before the divergence, not at the end of the run; see [diverged]).
func finalTop1(c *trainer.Comparison, rule string) (float64, bool) {
	if diverged(c, rule) {
		return 0, false
	}
	s := trainer.Summarize(c.Records[rule])
	if s.Final == nil || s.Final.TestTop1 == nil || math.IsNaN(*s.Final.TestTop1) {
		return 0, false
	}
	return 100 * *s.Final.TestTop1, true
}

// atChance returns how rule's run in c ended at chance level, if it did ([trainer.EndedAtChance]); a run that
// diverged is reported as diverged, not as at chance.
func atChance(c *trainer.Comparison, rule string) (trainer.ChanceEnding, bool) {
	if diverged(c, rule) {
		return trainer.ChanceEnding{}, false
	}
	var cfg *trainer.Config
	if res := c.Results[rule]; res != nil {
		cfg = &res.Config
	}
	return trainer.EndedAtChance(cfg, c.Records[rule])
}

// diverged reports whether rule's run in c diverged (the loss became NaN or the divergence guard stopped it).
func diverged(c *trainer.Comparison, rule string) bool {
	return c.Status[rule] == trainer.StatusDiverged
}

// seedsRules returns the rules of cs in [feedback.Order]: those of any comparison.
func seedsRules(cs []*trainer.Comparison) []string {
	var rules []string
	seen := map[string]bool{}
	for _, c := range cs {
		for _, r := range rulesOf(c) {
			if !seen[r] {
				seen[r] = true
				rules = append(rules, r)
			}
		}
	}
	return feedback.SortNames(rules)
}

// seedOf returns the seed of c's runs ("?" where no run records its configuration).
func seedOf(c *trainer.Comparison) string {
	if cfg := comparisonConfig(c, rulesOf(c)); cfg != nil {
		return fmt.Sprint(cfg.Seed)
	}
	return "?"
}

// PairedDifference is one rule's final test top-1 against a baseline rule's over comparisons that differ only in
// their seed. Within one seed every rule starts from the same network, so the differences are paired.
type PairedDifference struct {
	Rule string
	// Differences is rule − baseline in each comparison, in points of top-1, NaN where either has no final top-1.
	Differences []float64
	// N counts the seeds with a difference; Above and Below those where the rule is above or below the baseline;
	// Diverged those where the rule's run diverged (and the baseline's did not): no difference, but not a tie.
	N, Above, Below, Diverged int
	// Mean and SD of the differences (SD NaN with fewer than two).
	Mean, SD float64
	// SignTestP is the two-sided sign test's p-value for "the rule and the baseline are as likely to be ahead in
	// a seed" (ties left out): 2^(1−n) when all n seeds agree, so never below 0.25 with three seeds.
	SignTestP float64
}

// PairedDifferences returns, for each rule of cs other than baseline, its paired differences from baseline.
func PairedDifferences(cs []*trainer.Comparison, baseline string) []PairedDifference {
	var out []PairedDifference
	for _, rule := range seedsRules(cs) {
		if rule == baseline {
			continue
		}
		d := PairedDifference{Rule: rule}
		var values []float64
		for _, c := range cs {
			r, okRule := finalTop1(c, rule)
			b, okBase := finalTop1(c, baseline)
			if diverged(c, rule) && !diverged(c, baseline) {
				d.Diverged++
			}
			if !okRule || !okBase {
				d.Differences = append(d.Differences, math.NaN())
				continue
			}
			diff := r - b
			d.Differences = append(d.Differences, diff)
			values = append(values, diff)
			switch {
			case diff > 0:
				d.Above++
			case diff < 0:
				d.Below++
			}
		}
		d.N = len(values)
		d.Mean, d.SD = meanSD(values)
		d.SignTestP = signTestP(d.Above, d.Below)
		out = append(out, d)
	}
	return out
}

// signTestP is the two-sided sign test's p-value for above successes against below (ties excluded): the
// probability, with each seed equally likely to fall either way, of a split at least as uneven.
func signTestP(above, below int) float64 {
	n := above + below
	if n == 0 {
		return math.NaN()
	}
	k := min(above, below)
	tail, binom := 0.0, 1.0 // binom = C(n, i)
	for i := 0; i <= k; i++ {
		if i > 0 {
			binom = binom * float64(n-i+1) / float64(i)
		}
		tail += binom
	}
	return math.Min(1, 2*tail/math.Pow(2, float64(n)))
}

// PairedTable is the markdown table of [PairedDifferences]: one row per rule, one column per comparison (headed
// by its seed) holding rule − baseline in points of final top-1, then their mean and standard deviation, how many
// seeds put the rule above and below, and the sign test's p-value.
func PairedTable(cs []*trainer.Comparison, baseline string) string {
	header := []string{"rule − " + baseline + " (points)"}
	for _, c := range cs {
		header = append(header, "seed "+seedOf(c))
	}
	header = append(header, "mean", "sd", "above / below", "sign test p")
	var b strings.Builder
	writeHeader(&b, header)
	for _, d := range PairedDifferences(cs, baseline) {
		row := []string{d.Rule}
		for _, v := range d.Differences {
			row = append(row, formatOrDash(v, "%+.2f"))
		}
		split := fmt.Sprintf("%d / %d", d.Above, d.Below)
		if d.Diverged > 0 {
			split += fmt.Sprintf(", %d diverged", d.Diverged)
		}
		row = append(row, formatOrDash(d.Mean, "%+.2f"), formatOrDash(d.SD, "%.2f"), split,
			formatOrDash(d.SignTestP, "%.3g"))
		writeRow(&b, row)
	}
	return b.String()
}

// PairwiseTable is the markdown table of every pair of rules of cs, paired by seed ([PairedDifferences] with each
// rule as the baseline): the cell in row a and column b, a listed before b, holds the mean of a − b in points of
// final top-1 over the seeds where both have one, and in how many seeds a is above and below b, as "+0.13 (3 / 2)"
// ("…, 1 without both" when a seed lacks either's final top-1). Below the diagonal the cells are empty: b − a is
// the negative. It returns "" for fewer than three rules, where [PairedTable] against the one says it all.
func PairwiseTable(cs []*trainer.Comparison) string {
	rules := seedsRules(cs)
	if len(rules) < 3 {
		return ""
	}
	against := map[string]map[string]PairedDifference{} // against[column][row]: row − column
	for _, column := range rules[1:] {
		against[column] = map[string]PairedDifference{}
		for _, d := range PairedDifferences(cs, column) {
			against[column][d.Rule] = d
		}
	}
	var b strings.Builder
	writeHeader(&b, append([]string{"row − column (points)"}, rules[1:]...))
	for i, a := range rules[:len(rules)-1] {
		row := []string{a}
		for j, column := range rules[1:] {
			if j+1 <= i { // at or below the diagonal (column j+1 of rules)
				row = append(row, "")
				continue
			}
			cell := "–"
			if d := against[column][a]; d.N > 0 {
				cell = fmt.Sprintf("%+.2f (%d / %d", d.Mean, d.Above, d.Below)
				if without := len(cs) - d.N; without > 0 {
					cell += fmt.Sprintf(", %d without both", without)
				}
				cell += ")"
			}
			row = append(row, cell)
		}
		writeRow(&b, row)
	}
	return b.String()
}

// FormatSeeds returns the markdown report of comparisons that differ only in their seed (cs, kept in the
// folders seedDirs, relative to the report's own): each rule's final test top-1 per seed with its mean and
// standard deviation ([SeedsTable]), each rule's paired difference from bp ([PairedTable]) where bp was
// compared, and what it takes for a difference to be an ordering, and every pair's ([PairwiseTable]); with
// commandLine and the date.
func FormatSeeds(cs []*trainer.Comparison, seedDirs []string, commandLine string, now time.Time) string {
	var b strings.Builder
	title := "Learning rules compared over seeds"
	var settings, perRule []string // those every rule of a seed shares, but the seed; those that differ
	for _, c := range cs {
		rules := rulesOf(c)
		if cfg := comparisonConfig(c, rules); cfg != nil {
			title = fmt.Sprintf("%s on %s: learning rules compared over %d seeds", cfg.Model, cfg.Dataset, len(cs))
			common, differ := describeSettings(c, rules)
			settings = slices.DeleteFunc(common, func(s string) bool { return strings.HasPrefix(s, "seed ") })
			perRule = differ
			break
		}
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	if len(settings) > 0 {
		fmt.Fprintf(&b, "%s.\n\n", strings.Join(settings, ", "))
	}
	if len(perRule) > 0 {
		fmt.Fprintf(&b, "Per rule: %s.\n\n", strings.Join(perRule, "; "))
	}
	b.WriteString("Final test top-1 (%), one comparison per seed; sd is the sample standard deviation over the seeds.\n\n")
	b.WriteString(SeedsTable(cs))
	if rules := seedsRules(cs); slices.Contains(rules, "bp") && len(rules) > 1 {
		b.WriteString("\nEach rule against bp, paired by seed: within a seed every rule starts from the same network, so ")
		b.WriteString("rule − bp\nremoves what the initialisation and the data order do to both. A difference whose sign ")
		b.WriteString("changes between\nseeds is not an ordering; with all n seeds on one side the two-sided sign test gives ")
		b.WriteString("p = 2^(1−n): 0.25 for\n3 seeds, 0.0625 for 5, 0.0078 for 8.\n\n")
		b.WriteString(PairedTable(cs, "bp"))
	}
	if pairwise := PairwiseTable(cs); pairwise != "" {
		b.WriteString("\nEvery pair of rules, paired by seed in the same way: the mean of row − column in points, and in ")
		b.WriteString("how many seeds\nthe row is above / below the column (an ordering needs the seeds on one side).\n\n")
		b.WriteString(pairwise)
	}
	b.WriteString("\nEach seed's comparison (its tables, plots and runs): ")
	links := make([]string, len(seedDirs))
	for i, d := range seedDirs {
		links[i] = fmt.Sprintf("[%s](%s/%s)", d, d, ResultsFileName)
	}
	b.WriteString(strings.Join(links, ", ") + ".\n\n![Final test top-1 per seed](" + SeedsPlotFileName + ")\n")
	if SeedsGradientNormPlot(cs) != nil {
		b.WriteString("\nThe training steps' gradient norm before any clipping, median over the seeds:\n\n" +
			"![Gradient norm](" + GradientNormPlotFileName + ")\n")
	}
	if commandLine != "" {
		label := "Command (run it again to resume or reuse the runs)"
		if !strings.HasPrefix(commandLine, "nowt compare") { // a report of comparisons made elsewhere: no training
			label = "Command"
		}
		fmt.Fprintf(&b, "\n%s:\n\n```\n%s\n```\n", label, commandLine)
	}
	fmt.Fprintf(&b, "\nDate: %s\n", now.Format("2006-01-02 15:04:05 MST"))
	return b.String()
}

// WriteSeeds writes the report of comparisons that differ only in their seed into dir: results.md
// ([FormatSeeds]), seeds-top1.png ([SeedsPlot]) and, where the logs hold gradient norms, gradient-norm.png
// ([SeedsGradientNormPlot]). seedDirs are the comparisons' folders, relative to dir.
func WriteSeeds(dir string, cs []*trainer.Comparison, seedDirs []string, commandLine string) error {
	if len(cs) == 0 {
		return fmt.Errorf("writing the comparison over seeds: no comparisons")
	}
	if len(seedDirs) != len(cs) {
		return fmt.Errorf("writing the comparison over seeds: %d folders for %d comparisons", len(seedDirs), len(cs))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing the comparison over seeds: %w", err)
	}
	md := FormatSeeds(cs, seedDirs, commandLine, time.Now())
	if err := os.WriteFile(filepath.Join(dir, ResultsFileName), []byte(md), 0o644); err != nil {
		return fmt.Errorf("writing the comparison over seeds: %w", err)
	}
	if p := SeedsPlot(cs); p != nil {
		if err := SavePNG(p, filepath.Join(dir, SeedsPlotFileName)); err != nil {
			return err
		}
	}
	if p := SeedsGradientNormPlot(cs); p != nil {
		return SavePNG(p, filepath.Join(dir, GradientNormPlotFileName))
	}
	return nil
}

// GradientNormPlotFileName is the plot of the training steps' gradient norms against epoch, in a comparison's
// folder ([GradientNormPlot]) and in a comparison over seeds' ([SeedsGradientNormPlot]).
const GradientNormPlotFileName = "gradient-norm.png"

// SeedsGradientNormPlot plots each rule's gradient norm against epoch as [GradientNormPlot] does, each point
// the median over the seeds whose logs hold a norm at that step. It returns nil if none does.
func SeedsGradientNormPlot(cs []*trainer.Comparison) *plot.Plot {
	rules := seedsRules(cs)
	medians := map[string][]trainer.Record{}
	for _, rule := range rules {
		byStep := map[int][]float64{}
		epochs := map[int]float64{}
		for _, c := range cs {
			for _, r := range c.Records[rule] {
				if r.GradientNorm > 0 && r.WarmupMirrorSteps == nil {
					byStep[r.Step] = append(byStep[r.Step], r.GradientNorm)
					epochs[r.Step] = r.Epoch
				}
			}
		}
		for _, step := range slices.Sorted(maps.Keys(byStep)) {
			medians[rule] = append(medians[rule], trainer.Record{Step: step, Epoch: epochs[step],
				GradientNorm: stats.Median(byStep[step])})
		}
	}
	return epochLinesPlot(fmt.Sprintf("Gradient norm before clipping, median of %d seeds", len(cs)),
		"‖g‖, mean between records", rules, medians, func(r trainer.Record) float64 { return r.GradientNorm })
}

// SeedsPlot plots each rule's final test top-1 in every seed (one point per seed, in the seed's colour and
// shape) with the mean over the seeds as a horizontal bar, one column per rule; runs that diverged, and runs that
// ended at chance, are counted under their rule's name. It returns nil if no run has a final top-1.
func SeedsPlot(cs []*trainer.Comparison) *plot.Plot {
	rules := seedsRules(cs)
	p := newPlot("Final test top-1 per seed", "rule", "final test top-1 (%)")
	plotted := false
	lo, hi := math.Inf(1), math.Inf(-1)
	var meanBar *plotter.Line // for the legend, after the seeds
	for ri, rule := range rules {
		var values []float64
		for _, c := range cs {
			if v, ok := finalTop1(c, rule); ok {
				values = append(values, v)
			}
		}
		if len(values) == 0 {
			continue
		}
		mean, _ := meanSD(values)
		bar, err := plotter.NewLine(plotter.XYs{{X: float64(ri) - 0.3, Y: mean}, {X: float64(ri) + 0.3, Y: mean}})
		if err != nil {
			continue
		}
		bar.Color, bar.Width = color.Black, vg.Points(1.5)
		p.Add(bar)
		meanBar = bar
	}
	const spread = 0.25 // the seeds' points side by side within a rule's column
	for si, c := range cs {
		var xys plotter.XYs
		for ri, rule := range rules {
			if v, ok := finalTop1(c, rule); ok {
				offset := 0.0
				if len(cs) > 1 {
					offset = spread * (float64(si)/float64(len(cs)-1) - 0.5)
				}
				xys = append(xys, plotter.XY{X: float64(ri) + offset, Y: v})
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if len(xys) == 0 {
			continue
		}
		points, err := plotter.NewScatter(xys)
		if err != nil {
			continue
		}
		plotted = true
		points.Color, points.Shape, points.Radius = plotutil.Color(si), plotutil.Shape(si), vg.Points(3)
		p.Add(points)
		p.Legend.Add("seed "+seedOf(c), points)
	}
	if !plotted {
		return nil
	}
	if meanBar != nil {
		p.Legend.Add("mean", meanBar)
	}
	ticks := make([]plot.Tick, len(rules))
	for i, rule := range rules {
		ticks[i] = plot.Tick{Value: float64(i), Label: rule}
		divergedRuns, chanceRuns := 0, 0
		for _, c := range cs {
			if diverged(c, rule) {
				divergedRuns++
			}
			if _, ok := atChance(c, rule); ok {
				chanceRuns++
			}
		}
		if divergedRuns > 0 { // runs that are not points
			ticks[i].Label += fmt.Sprintf("\n(%d diverged)", divergedRuns)
		}
		if chanceRuns > 0 { // points that are not a rule's trained network
			ticks[i].Label += fmt.Sprintf("\n(%d at chance)", chanceRuns)
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = -0.6, float64(len(rules))-0.4
	pad := math.Max(0.5, 0.08*(hi-lo)) // the points clear of the frame
	p.Y.Min, p.Y.Max = lo-pad, hi+pad
	return p
}

// FindSeedDirs returns the names of dir's seed-<n> folders (the comparisons of a comparison over seeds), in the
// order of their seeds, and the seeds; none (and no error) where dir holds none.
func FindSeedDirs(dir string) (names []string, seeds []int64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the comparison's folder: %w", err)
	}
	type seedDir struct {
		name string
		seed int64
	}
	var found []seedDir
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), SeedDirPrefix)
		if !ok || !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		var seed int64
		if _, err := fmt.Sscanf(rest, "%d", &seed); err != nil || fmt.Sprint(seed) != rest {
			continue
		}
		found = append(found, seedDir{e.Name(), seed})
	}
	slices.SortFunc(found, func(a, b seedDir) int { return cmp.Compare(a.seed, b.seed) })
	for _, f := range found {
		names, seeds = append(names, f.name), append(seeds, f.seed)
	}
	return names, seeds, nil
}
