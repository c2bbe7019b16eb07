package report

import (
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowt-ml/nowt/trainer"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"
)

func ptr(v float64) *float64 { return &v }

// syntheticRecords makes a plausible metrics log: accuracy rising, angles falling to finalAngle.
func syntheticRecords(layers []string, finalTop1, finalAngle float64) []trainer.Record {
	var records []trainer.Record
	for step := 0; step <= 40; step += 10 {
		r := trainer.Record{Step: step, Epoch: float64(step) / 20, Loss: 2.3 - 0.04*float64(step), LearningRate: 0.05}
		if step > 0 {
			r.GradientNorm, r.GradientNormMax = 2-0.03*float64(step), 3-0.03*float64(step)
		}
		if step > 0 && step%20 == 0 {
			top1 := finalTop1 * float64(step) / 40
			r.TestTop1, r.TestTop5, r.TestLoss = ptr(top1), ptr(math.Min(1, top1+0.2)), ptr(1.0)
		}
		for i, l := range layers {
			w := 90 - (90-finalAngle-float64(i))*float64(step)/40
			r.Layers = append(r.Layers, trainer.LayerAlignment{Layer: l, WeightAngle: ptr(w), DeltaAngle: ptr(w / 2), DeltaExamples: 8, NormRatio: ptr(1)})
		}
		records = append(records, r)
	}
	return records
}

func syntheticComparison(layers []string) *trainer.Comparison {
	c := &trainer.Comparison{Records: map[string][]trainer.Record{}, Results: map[string]*trainer.Result{}}
	for rule, v := range map[string][2]float64{"bp": {0.91, 0}, "fa": {0.83, 60}, "kp": {0.9, 5}} {
		c.Records[rule] = syntheticRecords(layers, v[0], v[1])
		c.Results[rule] = &trainer.Result{Config: trainer.Config{Model: "mlp", Dataset: "mnist", Rule: rule, Epochs: 2, BatchSize: 32,
			LearningRate: 0.05, Schedule: "cosine", Loss: "softmax", Seed: 1}, Duration: 83 * time.Second}
	}
	return c
}

func requirePNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	require.NoError(t, err, path)
	require.Positive(t, img.Bounds().Dx(), path)
	require.Positive(t, img.Bounds().Dy(), path)
}

func TestWriteComparison(t *testing.T) {
	dir := t.TempDir()
	c := syntheticComparison([]string{"/model/fc0", "/model/fc1", "/model/output"})
	require.NoError(t, Write(dir, c, "nowt compare -rules bp,fa,kp -out "+dir))
	md, err := os.ReadFile(filepath.Join(dir, ResultsFileName))
	require.NoError(t, err)
	text := string(md)
	t.Log("\n" + text)
	for _, want := range []string{
		"# mlp on mnist", "nowt compare -rules bp,fa,kp", "Date: ",
		"| bp | 40 | 2.00 | 91.00 | 91.00 | 100.00 | 1 |", "| fa | 40 | 2.00 | 83.00 | 83.00 | 100.00 | 1 |",
		"| kp | 40 | 2.00 | 90.00 | 90.00 | 100.00 | 1 |",
		"fc0 ∠W / ∠δ (°)", "output ∠W / ∠δ (°)",
		"60.0 / 30.0", "61.0 / 30.5", "5.0 / 2.5", "1m23s",
	} {
		require.Contains(t, text, want)
	}
	// Rows in the conventional order.
	require.Less(t, strings.Index(text, "| bp |"), strings.Index(text, "| fa |"))
	require.Less(t, strings.Index(text, "| fa |"), strings.Index(text, "| kp |"))
	for _, name := range []string{"test-error.png", "test-loss.png", "gradient-norm.png", "final-angles.png", "angles-fa.png", "angles-kp.png",
		"delta-angles-fa.png", "delta-angles-kp.png"} {
		requirePNG(t, filepath.Join(dir, name))
	}
	_, err = os.Stat(filepath.Join(dir, "angles-bp.png"))
	require.True(t, os.IsNotExist(err), "no angle plot for bp")
}

// TestGradientNormPlot: the gradient-norm plot draws the records that hold a norm, on a log scale when they span
// more than a decade, and is not drawn for logs made before nowt recorded norms (nor its file written).
func TestGradientNormPlot(t *testing.T) {
	withNorms := func(norms ...float64) []trainer.Record {
		var records []trainer.Record
		for i, norm := range norms {
			records = append(records, trainer.Record{Step: 10 * i, Epoch: float64(i) / 4, GradientNorm: norm})
		}
		return records
	}
	for _, tc := range []struct {
		name     string
		records  map[string][]trainer.Record
		drawn    bool
		logScale bool
	}{
		{"old logs", map[string][]trainer.Record{"bp": withNorms(0, 0, 0), "fa": withNorms(0, 0)}, false, false},
		{"within a decade", map[string][]trainer.Record{"bp": withNorms(0, 2, 1.5, 1), "fa": withNorms(0, 9, 5, 3)}, true, false},
		{"a rule's spike", map[string][]trainer.Record{"bp": withNorms(0, 1, 0.8, 0.5), "fa": withNorms(0, 45, math.NaN(), 4)}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := GradientNormPlot([]string{"bp", "fa"}, tc.records)
			if !tc.drawn {
				require.Nil(t, p)
				dir := t.TempDir()
				require.NoError(t, WritePlots(dir, &trainer.Comparison{Records: tc.records}))
				_, err := os.Stat(filepath.Join(dir, "gradient-norm.png"))
				require.True(t, os.IsNotExist(err), "no gradient-norm.png without norms")
				return
			}
			require.NotNil(t, p)
			require.Equal(t, tc.logScale, strings.Contains(p.Y.Label.Text, "log scale"), p.Y.Label.Text)
			if tc.logScale {
				require.InDelta(t, math.Log10(0.5)-0.05, p.Y.Min, 1e-12)
				require.InDelta(t, math.Log10(45)+0.05, p.Y.Max, 1e-12)
			} else {
				require.Zero(t, p.Y.Min)
				require.Equal(t, 9.0, p.Y.Max, "fa's largest norm tops the axis")
			}
		})
	}
}

// TestFormatComparisonManyLayers: beyond 4 layers the angles go to two tables, layers as rows.
func TestFormatComparisonManyLayers(t *testing.T) {
	layers := []string{"/model/conv0", "/model/block1/conv1", "/model/block1/conv2", "/model/block2/conv1",
		"/model/block2/conv2", "/model/fc"}
	text := Format(syntheticComparison(layers), "", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	require.Contains(t, text, "| layer | bp | fa | kp |")
	require.Contains(t, text, "| block2/conv1 | 3.0 | 63.0 | 8.0 |")
	require.Contains(t, text, "| block2/conv1 | 1.5 | 31.5 | 4.0 |")
	require.NotContains(t, text, "∠W / ∠δ")
	require.Contains(t, text, "Date: 2025-01-02 03:04:05 UTC")
	// The plots cope with many layers too (a heat map).
	many := append(append([]string(nil), layers...), "/model/block3/conv1", "/model/block3/conv2", "/model/block4/conv1")
	require.Greater(t, len(many), heatMapLayers)
	require.NotNil(t, AnglePlot("kp", syntheticRecords(many, 0.9, 5), false))
	require.NoError(t, SavePNG(AnglePlot("kp", syntheticRecords(many, 0.9, 5), true), filepath.Join(t.TempDir(), "heat.png")))
}

// TestUndefinedAngles: an undefined angle (nil in the record) reads "undef." in the table, never a number, a
// delta angle that was not measured reads "–", and the plots are still drawn.
func TestUndefinedAngles(t *testing.T) {
	layers := []string{"/model/fc0", "/model/output"}
	c := syntheticComparison(layers)
	records := c.Records["fa"]
	last := &records[len(records)-1]
	last.Layers[0] = trainer.LayerAlignment{Layer: "/model/fc0", NormRatio: ptr(1), DeltaUndefined: 8}
	last.Layers[1].DeltaAngle, last.Layers[1].DeltaExamples = nil, 0
	text := Format(c, "", time.Now())
	require.Contains(t, text, "| fa | 40 | 2.00 | 83.00 | 83.00 | 100.00 | 1 | undef. / undef. | 61.0 / – |")
	require.Contains(t, text, `"undef.": undefined`)
	dir := t.TempDir()
	require.NoError(t, WritePlots(dir, c))
	for _, name := range []string{"final-angles.png", "angles-fa.png", "delta-angles-fa.png"} {
		requirePNG(t, filepath.Join(dir, name))
	}
	// The angle plot keeps the undefined point (as a mark), not a 0° or a gap only.
	_, series, _ := angleSeries(records, false)
	xys := series["/model/fc0"]
	require.True(t, math.IsNaN(xys[len(xys)-1].Y), "undefined angle plotted as %v", xys[len(xys)-1].Y)
}

// TestAnglePlotWarmup: the weight mirror's warm-up records go before step 0, in mirror steps, and the step-0
// record that repeats the warm-up's end is not drawn twice.
func TestAnglePlotWarmup(t *testing.T) {
	var records []trainer.Record
	for _, done := range []int{0, 50, 100} {
		d := done
		records = append(records, trainer.Record{WarmupMirrorSteps: &d,
			Layers: []trainer.LayerAlignment{{Layer: "/model/out", WeightAngle: ptr(90 - 0.8*float64(done))}}})
	}
	records = append(records, trainer.Record{Step: 0, Layers: []trainer.LayerAlignment{{Layer: "/model/out", WeightAngle: ptr(10)}}},
		trainer.Record{Step: 10, Layers: []trainer.LayerAlignment{{Layer: "/model/out", WeightAngle: ptr(12)}}})
	_, series, warmup := angleSeries(records, false)
	require.True(t, warmup)
	require.Equal(t, []float64{-100, -50, 0, 10}, xsOf(series["/model/out"]))
	require.NotNil(t, AnglePlot("wm", records, false))
}

func xsOf(xys plotter.XYs) []float64 {
	xs := make([]float64, len(xys))
	for i, xy := range xys {
		xs[i] = xy.X
	}
	return xs
}

// TestCommandLabel: the report's command is labelled the last invocation's when the runs' settings differ or
// when its -rules leaves out a rule of the report (runs added to a comparison by a later invocation).
func TestCommandLabel(t *testing.T) {
	for _, tc := range []struct {
		command string
		last    bool
	}{
		{"nowt compare -rules bp,fa,ss,wm,kp -out x", false},
		{"nowt compare -rules=bp,fa,ss,wm,kp -out x", false},
		{"nowt compare -out x", false},
		{"nowt report -out x", false},
		{"nowt compare -rules ss,fa -out x", true},
		{"nowt compare --rules=kp -out x", true},
		{"nowt compare -rules 'bp,wm' -out x", true},
	} {
		t.Run(tc.command, func(t *testing.T) {
			text := Format(syntheticComparison([]string{"/model/fc0", "/model/output"}), tc.command, time.Now())
			require.Contains(t, text, "```\n"+tc.command+"\n```")
			require.Equal(t, tc.last, strings.Contains(text, "Command of the last invocation"))
			require.Equal(t, !tc.last, strings.Contains(text, "\nCommand:\n"))
		})
	}
}

// TestFormatHeaderAndNotes: settings the runs share are stated once and the others per rule (with the command
// labelled as the last invocation's); a diverged run says how it stopped; a rule with a result but no run shows
// dashes, not zeros.
func TestFormatHeaderAndNotes(t *testing.T) {
	c := syntheticComparison([]string{"/model/fc0", "/model/output"})
	c.Results["kp"].Config.LearningRate = 0.3
	c.Status = map[string]string{"fa": trainer.StatusDiverged, "kp": trainer.StatusDiverged}
	c.Divergence = map[string]*trainer.NaNError{
		"fa": {Step: 31, Loss: 812.5, Start: 2.3},
		"kp": {Step: 12, Loss: math.NaN()},
	}
	c.Results["dfa"] = &trainer.Result{Config: trainer.Config{Model: "mlp", Dataset: "mnist", Rule: "dfa", Epochs: 2,
		BatchSize: 32, LearningRate: 0.05, Schedule: "cosine", Loss: "softmax", Seed: 1}}
	text := Format(c, "nowt compare -rules kp -lr 0.3", time.Now())
	require.Contains(t, text, "2 epochs, batch 32, momentum 0, weight decay 0, softmax loss, seed 1.")
	require.Contains(t, text, "Per rule: bp: learning rate 0.05 (cosine); fa: learning rate 0.05 (cosine); kp: learning rate 0.3 (cosine); dfa: learning rate 0.05 (cosine).")
	require.Contains(t, text, "Command of the last invocation")
	require.Contains(t, text, "- fa: diverged (the divergence guard stopped it at step 31: loss 812.5, over 10× its start (2.3))")
	require.Contains(t, text, "- kp: diverged (the loss became NaN at step 12)")
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "| dfa |") {
			require.Contains(t, line, "| – | – | – | – |", "no run behind dfa's result: no accuracy")
		}
	}

	// Label smoothing and gradient clipping are named where a run has them, with the loss and the decay.
	tuned := syntheticComparison([]string{"/model/fc0"})
	tuned.Results["fa"].Config.LabelSmoothing, tuned.Results["kp"].Config.ClipNorm = 0.1, 5
	text = Format(tuned, "nowt compare", time.Now())
	require.Contains(t, text, "fa: weight decay 0, softmax loss, label smoothing 0.1")
	require.Contains(t, text, "kp: weight decay 0, gradients clipped to norm 5, softmax loss")
	require.Contains(t, text, "bp: weight decay 0, softmax loss")

	same := syntheticComparison([]string{"/model/fc0"})
	text = Format(same, "nowt compare", time.Now())
	require.Contains(t, text, "learning rate 0.05 (cosine)")
	require.NotContains(t, text, "Per rule")
	require.Contains(t, text, "\nCommand:\n")
}

// TestGradientAngleColumns: runs whose records hold gradient angles show them (inline with a few layers, as a
// table of their own and a mean/range column with many); logs without them keep the two-angle layout.
func TestGradientAngleColumns(t *testing.T) {
	withGradients := func(c *trainer.Comparison) *trainer.Comparison {
		for _, records := range c.Records {
			for i := range records {
				for j := range records[i].Layers {
					records[i].Layers[j].GradientAngle = ptr(float64(10 * j))
				}
			}
		}
		return c
	}
	few := withGradients(syntheticComparison([]string{"/model/fc0", "/model/output"}))
	text := Format(few, "", time.Now())
	require.Contains(t, text, "fc0 ∠W / ∠δ / ∠∇ (°)")
	require.Contains(t, text, "∠∇ is the angle between the weight gradient")
	require.Contains(t, RulesTable(few), "output ∠W / ∠δ / ∠∇ (°)")

	var many []string
	for i := range 9 {
		many = append(many, fmt.Sprintf("/model/conv%d", i))
	}
	c := withGradients(syntheticComparison(many))
	text = Format(c, "", time.Now())
	require.Contains(t, text, "### Final gradient angle")
	require.Contains(t, RulesTable(c), "∠∇ mean (min–max) (°)")
	require.Contains(t, RulesTable(c), "40.0 (0.0–80.0)")

	old := syntheticComparison(many)
	require.NotContains(t, Format(old, "", time.Now()), "gradient angle")
	require.NotContains(t, RulesTable(old), "∠∇")
}

// TestGradientAnglesNotMeasured: beside a run that measured gradient angles, a run whose log predates them reads
// "–" (not measured) in every ∠∇ cell and range, never "undef." (undefined), and the page says so; a layer whose
// gradient angle is undefined in a run that measures them still reads "undef.".
func TestGradientAnglesNotMeasured(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers int
	}{{"inline", 2}, {"per-layer tables", 9}} {
		t.Run(tc.name, func(t *testing.T) {
			var layers []string
			for i := range tc.layers {
				layers = append(layers, fmt.Sprintf("/model/conv%d", i))
			}
			c := syntheticComparison(layers)
			for _, rule := range []string{"fa", "kp"} { // bp's log predates gradient angles
				records := c.Records[rule]
				for i := range records {
					for j := range records[i].Layers {
						if !(rule == "kp" && j == 0) { // kp's first layer: undefined (a zero gradient)
							records[i].Layers[j].GradientAngle = ptr(float64(10*j + 1))
						}
					}
				}
			}
			text, table := Format(c, "", time.Now()), RulesTable(c)
			bpRow := rowOf(t, table, "bp")
			require.NotContains(t, bpRow, "undef.")
			require.Contains(t, text, `∠∇ "–": not measured`)
			require.Contains(t, rowOf(t, table, "fa"), "1.0")
			if tc.layers > maxInlineLayers {
				require.True(t, strings.HasSuffix(strings.TrimSuffix(bpRow, " |"), "| – | 1m23s"), bpRow)
				require.Contains(t, rowOf(t, table, "kp"), ", 1 undef.")
				section := text[strings.Index(text, "### Final gradient angle"):]
				conv0 := rowOf(t, section, "conv0")
				require.Equal(t, "| conv0 | – | 1.0 | undef. |", conv0)
			} else {
				require.Contains(t, bpRow, "/ –")
				require.Contains(t, rowOf(t, table, "kp"), "/ undef.")
			}
		})
	}
}

// rowOf returns the first markdown table row of text whose first cell is name.
func rowOf(t *testing.T, text, name string) string {
	t.Helper()
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "| "+name+" |") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no row %q in:\n%s", name, text)
	return ""
}

// TestRunsAtChanceNoted: the comparison's report says which runs ended at chance and how, and the results page's
// table marks their final top-1.
func TestRunsAtChanceNoted(t *testing.T) {
	c := syntheticComparison([]string{"/model/fc0"})
	kp := c.Records["kp"]
	*kp[len(kp)-1].TestTop1 = 0.1 // after 45 % at step 20
	fa := c.Records["fa"]
	for _, r := range fa {
		if r.TestTop1 != nil {
			*r.TestTop1 = 0.09 + 0.01*float64(r.Step)/40 // never above chance
		}
	}
	fa[0].Classes, fa[0].ChanceTop1 = 10, 0.1135 // a log that records its chance level (MNIST's full test set)
	text := Format(c, "", time.Now())
	require.Contains(t, text, "- kp: collapsed to chance (10.00 %, 10 classes) at step 40 and stayed there, after "+
		"45.00 % at step 20 (the divergence guard does not stop such a run: its loss does not grow).")
	require.Contains(t, text, "- fa: ended at chance (11.35 %, 10 classes), never clearly above it: best test top-1 "+
		"10.00 % at step 40.")
	require.Contains(t, text, "| kp | 40 | 2.00 | 10.00 (at chance) | 45.00 |")
	require.NotContains(t, text, "- bp: collapsed")
	require.NotContains(t, text, "- bp: ended")
	require.NotContains(t, text, "-chance-guard")

	c.Status = map[string]string{"kp": trainer.StatusCollapsed} // -chance-guard stopped it at its evaluation at chance
	c.Collapse = map[string]*trainer.CollapseError{"kp": {Step: 40, Evaluations: 1, Guard: 1}}
	text = Format(c, "", time.Now())
	require.Contains(t, text, "- kp: collapsed to chance (10.00 %, 10 classes) at step 40")
	require.Contains(t, text, "- kp: stopped by -chance-guard (at step 40, after 1 evaluation at chance in a row); "+
		"the numbers are those of its last records.")

	rules := RulesTable(c)
	require.Contains(t, rules, "| kp | – | 2.00 | 10.00 (at chance) | 45.00 |")
	require.Contains(t, rules, "| fa | – | 2.00 | 10.00 (at chance) | 10.00 |")
	require.Contains(t, rules, "| bp | – | 2.00 | 91.00 | 91.00 |")
}

// TestGradientAnglesAllUndefined: a run whose every gradient angle is marked undefined (a dead network: no error
// reaches any layer) reads "undef." in its ∠∇ cells, not "–" (not measured), and counts as measuring them.
func TestGradientAnglesAllUndefined(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers int
		want   string
	}{{"inline", 2, "/ undef. |"}, {"per-layer tables", 9, "| undef. | 1m23s |"}} {
		t.Run(tc.name, func(t *testing.T) {
			var layers []string
			for i := range tc.layers {
				layers = append(layers, fmt.Sprintf("/model/conv%d", i))
			}
			c := syntheticComparison(layers)
			for rule, records := range c.Records {
				for i := range records {
					for j := range records[i].Layers {
						if rule == "kp" {
							records[i].Layers[j].GradientUndefined = true
						} else {
							records[i].Layers[j].GradientAngle = ptr(float64(10*j + 1))
						}
					}
				}
			}
			table := RulesTable(c)
			require.Contains(t, rowOf(t, table, "kp"), tc.want)
			require.NotContains(t, Format(c, "", time.Now()), `∠∇ "–": not measured`, "every run measured them")
		})
	}
}

// TestRunWithoutRecords: a run whose log holds no records adds no claim about the other runs' logs (its empty
// row is not "a log made before nowt measured" gradient angles), and a run with one test evaluation is counted
// in the singular.
func TestRunWithoutRecords(t *testing.T) {
	for _, tc := range []struct {
		name        string
		modify      func(c *trainer.Comparison)
		has, hasNot []string
	}{
		{"all measured", func(c *trainer.Comparison) {}, nil, []string{`∠∇ "–": not measured`}},
		{"a run without records", func(c *trainer.Comparison) {
			c.Records["fa"] = nil
			c.LogProblems = map[string]string{"fa": "fa/metrics.jsonl holds no records: nothing to report"}
		}, []string{"- fa: its log could not be read whole: fa/metrics.jsonl holds no records"}, []string{`∠∇ "–": not measured`}},
		{"a run from before gradient angles", func(c *trainer.Comparison) {
			for i := range c.Records["fa"] {
				for j := range c.Records["fa"][i].Layers {
					c.Records["fa"][i].Layers[j].GradientAngle = nil
				}
			}
		}, []string{`∠∇ "–": not measured`}, nil},
		{"one test evaluation", func(c *trainer.Comparison) {
			c.Records["kp"] = c.Records["kp"][:3] // steps 0, 10, 20: one evaluation
		}, []string{"- kp: only 1 test evaluation (set -eval-every"}, []string{"1 test evaluations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := syntheticComparison([]string{"/model/fc0", "/model/out"})
			for _, records := range c.Records {
				for i := range records {
					for j := range records[i].Layers {
						records[i].Layers[j].GradientAngle = ptr(float64(10 * j))
					}
				}
			}
			tc.modify(c)
			text := Format(c, "", time.Now())
			for _, s := range tc.has {
				require.Contains(t, text, s)
			}
			for _, s := range tc.hasNot {
				require.NotContains(t, text, s)
			}
		})
	}
}

// TestDecadeTicks: a log axis is labelled enough to read its values: the powers of ten, 2 and 5 × 10ᵏ under two
// decades, and every tick under one decade (a test error between 40 % and 90 % had only "50").
func TestDecadeTicks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lo, hi float64 // in the axis' units, not logs
		labels []string
	}{
		{"three decades", 0.5, 200, []string{"1", "10", "100"}},
		{"under two decades", 3, 90, []string{"5", "10", "20", "50"}},
		{"under one decade", 38, 92, []string{"40", "50", "60", "70", "80", "90"}},
		{"a narrow range", 61, 79, []string{"70"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var labels []string
			for _, tick := range (decadeTicks{}).Ticks(math.Log10(tc.lo), math.Log10(tc.hi)) {
				if tick.Label != "" {
					labels = append(labels, tick.Label)
				}
			}
			require.Equal(t, tc.labels, labels)
		})
	}
}

// TestNilComparison: the report's functions take a nil comparison or plot without a nil-pointer panic.
func TestNilComparison(t *testing.T) {
	require.Empty(t, Format(nil, "", time.Now()))
	require.Empty(t, RulesTable(nil))
	path := filepath.Join(t.TempDir(), "p.png")
	require.ErrorContains(t, SavePNG(nil, path), "nil plot")
	require.ErrorContains(t, WritePlots(t.TempDir(), nil), "nil comparison")
	require.NoFileExists(t, path)
	dir := filepath.Join(t.TempDir(), "empty")
	require.ErrorContains(t, Write(dir, &trainer.Comparison{}, ""), "no rule has records or results")
	require.NoDirExists(t, dir, "an empty comparison writes no results.md")
}
