package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowt-ml/nowt/trainer"
	"github.com/stretchr/testify/require"
)

// seedComparison is a comparison of seed's runs whose final top-1 (a fraction) is given per rule.
func seedComparison(seed int64, finals map[string]float64) *trainer.Comparison {
	c := &trainer.Comparison{Records: map[string][]trainer.Record{}, Results: map[string]*trainer.Result{}}
	for rule, top1 := range finals {
		c.Records[rule] = syntheticRecords([]string{"/model/fc0"}, top1, 10)
		c.Results[rule] = &trainer.Result{Config: trainer.Config{Model: "mlp", Dataset: "mnist", Rule: rule, Epochs: 2,
			BatchSize: 32, LearningRate: 0.05, Schedule: "cosine", Loss: "softmax", Seed: seed}}
	}
	return c
}

// threeSeeds: fa below bp in every seed, kp above in two and below in one, wm without a final evaluation in seed 3.
func threeSeeds() []*trainer.Comparison {
	return []*trainer.Comparison{
		seedComparison(1, map[string]float64{"bp": 0.90, "fa": 0.85, "kp": 0.91, "wm": 0.895}),
		seedComparison(2, map[string]float64{"bp": 0.92, "fa": 0.86, "kp": 0.915, "wm": 0.92}),
		seedComparison(3, map[string]float64{"bp": 0.91, "fa": 0.87, "kp": 0.93}),
	}
}

func TestPairedDifferences(t *testing.T) {
	got := PairedDifferences(threeSeeds(), "bp")
	require.Len(t, got, 3)
	byRule := map[string]PairedDifference{}
	for _, d := range got {
		byRule[d.Rule] = d
	}
	require.Equal(t, []string{"fa", "wm", "kp"}, []string{got[0].Rule, got[1].Rule, got[2].Rule}, "feedback.Order")

	fa := byRule["fa"]
	require.InDeltaSlice(t, []float64{-5, -6, -4}, fa.Differences, 1e-9)
	require.Equal(t, 3, fa.N)
	require.Equal(t, [2]int{0, 3}, [2]int{fa.Above, fa.Below})
	require.InDelta(t, -5, fa.Mean, 1e-9)
	require.InDelta(t, 1, fa.SD, 1e-9)
	require.InDelta(t, 0.25, fa.SignTestP, 1e-12, "3 of 3 on one side")

	kp := byRule["kp"]
	require.InDeltaSlice(t, []float64{1, -0.5, 2}, kp.Differences, 1e-9)
	require.Equal(t, [2]int{2, 1}, [2]int{kp.Above, kp.Below})
	require.InDelta(t, 2.5/3, kp.Mean, 1e-9)
	require.InDelta(t, 1, kp.SignTestP, 1e-12, "a 2–1 split is what chance gives")

	wm := byRule["wm"]
	require.Equal(t, 2, wm.N, "seed 3 has no wm run")
	require.True(t, math.IsNaN(wm.Differences[2]))
	require.InDelta(t, -0.5, wm.Differences[0], 1e-9)
	require.Zero(t, wm.Differences[1])
	require.Equal(t, [2]int{0, 1}, [2]int{wm.Above, wm.Below}, "a tie counts on neither side")
}

func TestPairwiseTable(t *testing.T) {
	got := PairwiseTable(threeSeeds())
	t.Log("\n" + got)
	// Rows bp, fa, wm; columns fa, wm, kp (feedback.Order); fa − wm: −4.5 and −6 (seed 3 has no wm); wm − kp: −1.5
	// and +0.5; fa − kp: −6, −5.5, −6.
	require.Equal(t, ""+
		"| row − column (points) | fa | wm | kp |\n"+
		"| :--- | ---: | ---: | ---: |\n"+
		"| bp | +5.00 (3 / 0) | +0.25 (1 / 0, 1 without both) | -0.83 (1 / 2) |\n"+
		"| fa |  | -5.25 (0 / 2, 1 without both) | -5.83 (0 / 3) |\n"+
		"| wm |  |  | -0.50 (1 / 1, 1 without both) |\n", got)
	require.Empty(t, PairwiseTable([]*trainer.Comparison{seedComparison(1, map[string]float64{"bp": 0.9, "fa": 0.8})}),
		"two rules: the table against bp says it all")
	text := FormatSeeds(threeSeeds(), []string{"seed-1", "seed-2", "seed-3"}, "", time.Now())
	require.Contains(t, text, "Every pair of rules, paired by seed")
	require.Contains(t, text, got)
}

func TestSignTestP(t *testing.T) {
	for _, tc := range []struct {
		above, below int
		want         float64
	}{
		{3, 0, 0.25}, {0, 5, 0.0625}, {8, 0, 0.0078125}, {2, 1, 1}, {4, 1, 2 * 6.0 / 32}, {5, 5, 1}, {1, 0, 1},
	} {
		require.InDelta(t, tc.want, signTestP(tc.above, tc.below), 1e-12, "%d above, %d below", tc.above, tc.below)
	}
	require.True(t, math.IsNaN(signTestP(0, 0)))
}

func TestWriteSeeds(t *testing.T) {
	dir := t.TempDir()
	cs := threeSeeds()
	names := []string{"seed-1", "seed-2", "seed-3"}
	require.NoError(t, WriteSeeds(dir, cs, names, "nowt compare -seeds 1,2,3 -out "+dir))
	md, err := os.ReadFile(filepath.Join(dir, ResultsFileName))
	require.NoError(t, err)
	text := string(md)
	t.Log("\n" + text)
	for _, want := range []string{
		"# mlp on mnist: learning rules compared over 3 seeds",
		"2 epochs, batch 32, learning rate 0.05 (cosine)",
		"| rule | seed 1 | seed 2 | seed 3 | mean | sd |",
		"| fa | 85.00 | 86.00 | 87.00 | 86.00 | 1.00 |",
		"| rule − bp (points) | seed 1 | seed 2 | seed 3 | mean | sd | above / below | sign test p |",
		"| fa | -5.00 | -6.00 | -4.00 | -5.00 | 1.00 | 0 / 3 | 0.25 |",
		"| kp | +1.00 | -0.50 | +2.00 | +0.83 | 1.26 | 2 / 1 | 1 |",
		"| wm | -0.50 | +0.00 | – | -0.25 | 0.35 | 0 / 1 | 1 |",
		"[seed-1](seed-1/results.md)", "![Final test top-1 per seed](seeds-top1.png)", "nowt compare -seeds 1,2,3", "Date: ",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "seed 1,", "the common settings leave the seed out")
	require.NotContains(t, text, "Per rule", "every rule shares every setting")
	requirePNG(t, filepath.Join(dir, SeedsPlotFileName))
	require.Contains(t, text, "![Gradient norm](gradient-norm.png)")
	requirePNG(t, filepath.Join(dir, GradientNormPlotFileName))

	require.ErrorContains(t, WriteSeeds(dir, nil, nil, ""), "no comparisons")
	require.ErrorContains(t, WriteSeeds(dir, cs, names[:2], ""), "2 folders for 3 comparisons")
}

// TestSeedsGradientNormPlot: each point is the median over the seeds that logged a norm at its step (seeds'
// logs from before nowt recorded norms count for none), and without any norm there is no plot nor its line in
// the report.
func TestSeedsGradientNormPlot(t *testing.T) {
	norms := func(seed int64, values ...float64) *trainer.Comparison {
		c := seedComparison(seed, map[string]float64{"fa": 0.85})
		for i := range c.Records["fa"] {
			c.Records["fa"][i].GradientNorm = 0
			if i < len(values) {
				c.Records["fa"][i].GradientNorm = values[i]
			}
		}
		return c
	}
	// Records at steps 0, 10, …, 40: seed 3 logged no norm, seed 4 only at step 0 and 10.
	cs := []*trainer.Comparison{norms(1, 0, 4, 50, 3), norms(2, 0, 2, 10, 1), norms(3), norms(4, 0, 9)}
	p := SeedsGradientNormPlot(cs)
	require.NotNil(t, p)
	require.Contains(t, p.Title.Text, "median of 4 seeds")
	require.Contains(t, p.Y.Label.Text, "log scale", "medians 4, 30 and 2 span more than a decade")
	require.InDelta(t, math.Log10(2)-0.05, p.Y.Min, 1e-12, "step 30: the median of 3 and 1")
	require.InDelta(t, math.Log10(30)+0.05, p.Y.Max, 1e-12, "step 20: the median of 50 and 10")

	old := []*trainer.Comparison{norms(1), norms(2)}
	require.Nil(t, SeedsGradientNormPlot(old))
	dir := t.TempDir()
	require.NoError(t, WriteSeeds(dir, old, []string{"seed-1", "seed-2"}, ""))
	md, err := os.ReadFile(filepath.Join(dir, ResultsFileName))
	require.NoError(t, err)
	require.NotContains(t, string(md), GradientNormPlotFileName)
	_, err = os.Stat(filepath.Join(dir, GradientNormPlotFileName))
	require.True(t, os.IsNotExist(err))
}

// TestSeedsPerRuleSettings: a rule trained at its own rate (DFA at 1/100 of BP's, say) is named with it in the
// seeds report's header, as in one comparison's; the shared settings leave the rate out.
func TestSeedsPerRuleSettings(t *testing.T) {
	cs := threeSeeds()
	for _, c := range cs {
		c.Results["fa"].Config.LearningRate = 0.001
	}
	text := FormatSeeds(cs, []string{"seed-1", "seed-2", "seed-3"}, "", time.Now())
	require.Contains(t, text, "2 epochs, batch 32, momentum 0, weight decay 0, softmax loss.")
	require.Contains(t, text, "Per rule: bp: learning rate 0.05 (cosine); fa: learning rate 0.001 (cosine); "+
		"wm: learning rate 0.05 (cosine); kp: learning rate 0.05 (cosine).")
	require.NotContains(t, text, "seed 1.", "the seed is no per-rule setting")
}

// TestSeedsWithoutBP: without bp there is no paired table, and a single seed still reports.
func TestSeedsWithoutBP(t *testing.T) {
	cs := []*trainer.Comparison{seedComparison(7, map[string]float64{"fa": 0.8, "kp": 0.9})}
	text := FormatSeeds(cs, []string{"seed-7"}, "", time.Now())
	require.Contains(t, text, "| kp | 90.00 | 90.00 | – |")
	require.NotContains(t, text, "rule − bp")
	require.NotNil(t, SeedsPlot(cs))
	for _, tc := range []struct{ command, label string }{
		{"nowt compare -seeds 7 -out x", "Command (run it again to resume or reuse the runs):"},
		{"nowt report -out x", "Command:"}, // seeds compared elsewhere and linked: nothing to resume
	} {
		require.Contains(t, FormatSeeds(cs, []string{"seed-7"}, tc.command, time.Now()), "\n"+tc.label+"\n\n```\n"+tc.command)
	}
	require.Nil(t, SeedsPlot([]*trainer.Comparison{{Records: map[string][]trainer.Record{}}}), "nothing to plot")
}

func TestFindSeedDirs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"seed-10", "seed-2", "seed-x", "seed-02", "bp", "seed-"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, name), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "seed-3"), nil, 0o644)) // a file, not a comparison
	names, seeds, err := FindSeedDirs(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"seed-2", "seed-10"}, names)
	require.Equal(t, []int64{2, 10}, seeds)
	require.Equal(t, filepath.Join(dir, "seed-10"), SeedDir(dir, 10))

	names, _, err = FindSeedDirs(filepath.Join(dir, "bp"))
	require.NoError(t, err)
	require.Empty(t, names)
	_, _, err = FindSeedDirs(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "missing")
	require.True(t, strings.HasPrefix(SeedsPlotFileName, "seeds"))
}

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 epochs", 1: "1 epoch", 3: "3 epochs"} {
		require.Equal(t, want, plural(n, "epoch"))
	}
}

// TestSeedsWithDivergedRun: a run that diverged reads "diverged" (its last evaluation is not a final one), is left out
// of the mean, the difference and the plot, and is counted apart from the seeds above or below.
func TestSeedsWithDivergedRun(t *testing.T) {
	cs := threeSeeds()
	cs[1].Status = map[string]string{"fa": trainer.StatusDiverged}
	table := SeedsTable(cs)
	require.Contains(t, table, "| fa | 85.00 | diverged | 87.00 | 86.00 | 1.41 |")
	require.Contains(t, table, "*diverged*: the run's loss diverged")
	require.NotContains(t, SeedsTable(threeSeeds()), "*diverged*", "no note without a diverged run")

	fa := PairedDifferences(cs, "bp")[0]
	require.Equal(t, "fa", fa.Rule)
	require.Equal(t, [3]int{2, 0, 2}, [3]int{fa.N, fa.Above, fa.Below})
	require.Equal(t, 1, fa.Diverged)
	require.True(t, math.IsNaN(fa.Differences[1]))
	require.Contains(t, PairedTable(cs, "bp"), "| fa | -5.00 | – | -4.00 | -4.50 | 0.71 | 0 / 2, 1 diverged | 0.5 |")

	var labels []string
	for _, tick := range SeedsPlot(cs).X.Tick.Marker.Ticks(0, 3) {
		labels = append(labels, tick.Label)
	}
	require.Equal(t, []string{"bp", "fa\n(1 diverged)", "wm", "kp"}, labels)

	cs[1].Status["bp"] = trainer.StatusDiverged // both diverged: no difference, and not counted against fa
	require.Zero(t, PairedDifferences(cs, "bp")[0].Diverged)
}

// TestSeedsWithRunAtChance: a run that collapsed to chance keeps its final top-1 in the table, the mean and the
// paired difference (it is what the rule did), marked "(at chance)" and described under the table; a run that
// diverged at chance reads "diverged" only.
func TestSeedsWithRunAtChance(t *testing.T) {
	cs := threeSeeds()
	kp := cs[1].Records["kp"]
	*kp[len(kp)-1].TestTop1 = 0.10 // seed 2: 45.75 % at step 20, then 10 % (chance for MNIST's 10 classes)
	table := SeedsTable(cs)
	require.Contains(t, table, "| kp | 91.00 | 10.00 (at chance) | 93.00 | 64.67 | 47.35 |")
	require.Contains(t, table, "*at chance*: the run's last test evaluations were at chance level")
	require.Contains(t, table, "kp seed 2 collapsed to chance (10.00 %, 10 classes) at step 40 and stayed there, "+
		"after 45.75 % at step 20.")
	require.NotContains(t, SeedsTable(threeSeeds()), "*at chance*", "no note without a run at chance")
	require.Contains(t, PairedTable(cs, "bp"), "| kp | +1.00 | -82.00 | +2.00 |")

	var labels []string
	for _, tick := range SeedsPlot(cs).X.Tick.Marker.Ticks(0, 3) {
		labels = append(labels, tick.Label)
	}
	require.Equal(t, []string{"bp", "fa", "wm", "kp\n(1 at chance)"}, labels)

	cs[1].Status = map[string]string{"kp": trainer.StatusCollapsed} // stopped by -chance-guard: its last evaluation counts
	require.Contains(t, SeedsTable(cs), "| kp | 91.00 | 10.00 (at chance) | 93.00 | 64.67 | 47.35 |")

	cs[1].Status = map[string]string{"kp": trainer.StatusDiverged}
	table = SeedsTable(cs)
	require.Contains(t, table, "| kp | 91.00 | diverged | 93.00 |")
	require.NotContains(t, table, "*at chance*")
}

// TestSeedsWithoutFinalTop1: a seed without a rule's final top-1 (no run, an empty log, no test evaluation) reads
// "–", and a note under the table says so and that the rule's mean and sd are over fewer seeds.
func TestSeedsWithoutFinalTop1(t *testing.T) {
	full := []*trainer.Comparison{
		seedComparison(1, map[string]float64{"bp": 0.90, "fa": 0.85}),
		seedComparison(2, map[string]float64{"bp": 0.92, "fa": 0.86}),
	}
	for _, tc := range []struct {
		name string
		cs   []*trainer.Comparison
		has  []string
		not  []string
	}{
		{"every seed", full, nil, []string{"*–*"}},
		{"wm missing in seed 3", threeSeeds(),
			[]string{"| wm | 89.50 | 92.00 | – | 90.75 | 1.77 |",
				"*–*: no final test top-1 in that seed (no run, or a log without a test evaluation: see the seed's " +
					"results.md): wm seed 3; the rule's mean and sd are over the seeds that have one."}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := SeedsTable(tc.cs)
			for _, s := range tc.has {
				require.Contains(t, table, s)
			}
			for _, s := range tc.not {
				require.NotContains(t, table, s)
			}
		})
	}
}
