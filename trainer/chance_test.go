package trainer

import (
	"bytes"
	gocontext "context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsAtChance(t *testing.T) {
	for _, tc := range []struct {
		top1, chance float64
		n            int // test examples (0: unknown)
		want         bool
	}{
		{0.10, 0.1, 0, true},
		{0.05, 0.1, 0, true}, // below chance: a network that predicts a rare class
		{0.118, 0.1, 0, true},
		{0.119, 0.1, 0, false},
		{0.118, 0.1, 10000, true}, // 3 sd = 0.9 points: the 2 % margin is the larger
		{0.119, 0.1, 10000, false},
		{0.155, 0.1, 256, true}, // 3 sd = 5.6 points on 256 images
		{0.157, 0.1, 256, false},
		{0.30, 0.1, 0, false},
		{0.1135, 0.1135, 0, true}, // MNIST's most frequent test digit, predicted for every image
		{0.131, 0.1135, 0, true},
		{0.132, 0.1135, 0, false},
		{0.001, 0.001, 0, true},
		{0.0209, 0.001, 0, true},
		{0.0211, 0.001, 0, false},
		{0.5, 0.5, 0, true},
		{0.52, 0.5, 0, false},
		{0.10, 0, 0, false}, // chance unknown
		{0.10, 1, 0, false}, // a single class
		{math.NaN(), 0.1, 0, false},
		{1, 1.0 / 3, 3, false},       // 3 sd = 82 points on 3 images: too few to tell (nowt eval -test-limit 3 said so of 100 %)
		{1.0 / 3, 1.0 / 3, 3, false}, // nor of chance itself
		{0.2, 0.2, 100, true},        // 3 sd = 12 points on 100 images: told
	} {
		assert.Equal(t, tc.want, IsAtChance(tc.top1, tc.chance, tc.n), "top-1 %g, chance %g, %d examples", tc.top1,
			tc.chance, tc.n)
	}
	for _, tc := range []struct {
		top1 float64
		n    int
		want bool
	}{{0.19, 0, true}, {0.189, 0, false}, {0.19, 10000, true}, {0.21, 256, false}, {0.213, 256, true}} {
		assert.Equal(t, tc.want, hasLearned(tc.top1, 0.1, tc.n), "learned: top-1 %g, %d examples", tc.top1, tc.n)
	}
}

func TestMajorityTop1(t *testing.T) {
	assert.InDelta(t, 0.1, MajorityTop1([]int{5, 5, 5, 5, 5, 5, 5, 5, 5, 5}), 1e-12)
	assert.InDelta(t, 0.5, MajorityTop1([]int{1, 2, 1}), 1e-12)
	assert.Zero(t, MajorityTop1([]int{0, 0}))
	assert.Zero(t, MajorityTop1(nil))
}

// TestCheckpointAtChance: nowt eval's judgement of one checkpoint — at chance or not on its test set, collapsed
// only where the log had learned by the checkpoint's step, never on synthetic data.
func TestCheckpointAtChance(t *testing.T) {
	balanced := []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}
	log := evaluations(10, 0.1, 0.5, 0.8, 0.1) // steps 0, 10, 20, 30
	for _, tc := range []struct {
		name          string
		dataset       string
		top1          float64
		step          int
		atChance      bool
		collapsed     bool
		best          float64
		bestStep      int
		withoutLogged bool
	}{
		{"learned", "mnist", 0.8, 20, false, false, 0, 0, false},
		{"collapsed after the log's best", "mnist", 0.1, 30, true, true, 0.8, 20, false},
		{"before the run learned", "mnist", 0.1, 0, true, false, 0.1, 0, false},
		{"the log's best up to the checkpoint only", "mnist", 0.1, 10, true, true, 0.5, 10, false},
		{"no log", "mnist", 0.1, 30, true, false, 0.1, 30, true},
		{"synthetic", "synthetic", 0.1, 30, false, false, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			records := log
			if tc.withoutLogged {
				records = nil
			}
			res := &Result{Steps: tc.step, TestTop1: tc.top1}
			e := checkpointAtChance(tc.dataset, balanced, res, records)
			if !tc.atChance {
				require.Nil(t, e)
				return
			}
			require.NotNil(t, e)
			assert.Equal(t, ChanceEnding{Chance: 0.1, Classes: 10, TestExamples: 10000, Since: tc.step, Final: tc.top1,
				Best: tc.best, BestStep: tc.bestStep}, *e)
			assert.Equal(t, tc.collapsed, e.Collapsed())
		})
	}
}

// evaluations returns records evaluated at steps 0, 10, 20, … with the given test top-1s, the first (the
// starting record) holding the number of classes and a chance level of 1/classes (none for classes 0: an old log).
func evaluations(classes int, top1s ...float64) []Record {
	var records []Record
	for i, v := range top1s {
		r := Record{Step: 10 * i, TestTop1: &v}
		if i == 0 && classes > 0 {
			r.Classes, r.ChanceTop1 = classes, 1/float64(classes)
		}
		records = append(records, r, Record{Step: 10*i + 5, Loss: 1}) // a record without test metrics between
	}
	return records
}

func TestEndedAtChance(t *testing.T) {
	mnist := &Config{Dataset: "mnist"}
	for _, tc := range []struct {
		name      string
		cfg       *Config
		records   []Record
		ok        bool
		want      ChanceEnding
		collapsed bool
		words     string
	}{
		{name: "collapse", cfg: mnist, records: evaluations(10, 0.09, 0.31, 0.10, 0.10), ok: true,
			want:      ChanceEnding{Chance: 0.1, Classes: 10, Since: 20, Final: 0.10, Best: 0.31, BestStep: 10},
			collapsed: true, words: "collapsed to chance (10.00 %, 10 classes) at step 20 and stayed there, after 31.00 % at step 10"},
		{name: "never clearly above chance", cfg: mnist, records: evaluations(10, 0.09, 0.15, 0.11), ok: true,
			want:  ChanceEnding{Chance: 0.1, Classes: 10, Since: 20, Final: 0.11, Best: 0.15, BestStep: 10},
			words: "ended at chance (10.00 %, 10 classes), never clearly above it: best test top-1 15.00 % at step 10"},
		{name: "never left chance", cfg: mnist, records: evaluations(10, 0.1, 0.1), ok: true,
			want: ChanceEnding{Chance: 0.1, Classes: 10, Since: 0, Final: 0.1, Best: 0.1}},
		{name: "learned", cfg: mnist, records: evaluations(10, 0.1, 0.5, 0.9)},
		{name: "recovered from chance", cfg: mnist, records: evaluations(10, 0.1, 0.5, 0.1, 0.6)},
		{name: "only the starting evaluation: a run stopped before its first", cfg: mnist, records: evaluations(10, 0.07)},
		{name: "no evaluation", cfg: mnist, records: []Record{{Step: 0, Classes: 10, ChanceTop1: 0.1}, {Step: 5, Loss: 2.3}}},
		{name: "an unbalanced test set: chance is its most frequent class's share", cfg: mnist,
			records: append([]Record{{Step: 0, Classes: 10, ChanceTop1: 0.1135}}, evaluations(0, 0.1, 0.9, 0.1135)...), ok: true,
			want: ChanceEnding{Chance: 0.1135, Classes: 10, Since: 20, Final: 0.1135, Best: 0.9, BestStep: 10}, collapsed: true},
		{name: "the record's classes win over the dataset's", cfg: &Config{Dataset: "cifar100"},
			records: evaluations(10, 0.1, 0.5, 0.05), ok: true,
			want: ChanceEnding{Chance: 0.1, Classes: 10, Since: 20, Final: 0.05, Best: 0.5, BestStep: 10}, collapsed: true},
		{name: "an old log: the dataset's classes", cfg: &Config{Dataset: "cifar100"},
			records: evaluations(0, 0.01, 0.3, 0.012), ok: true,
			want: ChanceEnding{Chance: 0.01, Classes: 100, Since: 20, Final: 0.012, Best: 0.3, BestStep: 10}, collapsed: true},
		{name: "an old log of an image folder: unknown", cfg: &Config{Dataset: "imagefolder"},
			records: evaluations(0, 0.01, 0.3, 0.001)},
		{name: "a small test set: its noise is neither a collapse nor learning", cfg: mnist,
			records: append([]Record{{Step: 0, Classes: 10, ChanceTop1: 0.1, TestExamples: 256}},
				evaluations(0, 0.1, 0.2, 0.15)...), ok: true,
			want:  ChanceEnding{Chance: 0.1, Classes: 10, TestExamples: 256, Since: 20, Final: 0.15, Best: 0.2, BestStep: 10},
			words: "ended at chance (10.00 %, 10 classes), never clearly above it: best test top-1 20.00 % at step 10"},
		{name: "the same log without its test-set size", cfg: mnist,
			records: append([]Record{{Step: 0, Classes: 10, ChanceTop1: 0.1}}, evaluations(0, 0.1, 0.2, 0.15)...)},
		{name: "synthetic data: its test labels are random", cfg: &Config{Dataset: "synthetic"},
			records: evaluations(10, 0.1, 0.5, 0.1)},
		{name: "no configuration", records: evaluations(10, 0.1, 0.5, 0.1), ok: true,
			want: ChanceEnding{Chance: 0.1, Classes: 10, Since: 20, Final: 0.1, Best: 0.5, BestStep: 10}, collapsed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := EndedAtChance(tc.cfg, tc.records)
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.collapsed, got.Collapsed())
			if tc.words != "" {
				require.Equal(t, tc.words, got.String())
			}
		})
	}
}

func TestChanceWatch(t *testing.T) {
	tenClasses := []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}
	w := newChanceWatch("mnist", tenClasses, 0, nil)
	require.Empty(t, w.observe(10, 0.1), "at chance, but it never learned")
	require.Empty(t, w.observe(20, 0.4))
	warning := w.observe(30, 0.1)
	require.Equal(t, "warning: test top-1 fell to chance at step 30: 10.00 % (chance: 10.00 %, 10 classes), after 40.00 % at step 20. "+
		"The network now predicts as if it had learned nothing (the loss does not grow, so the divergence guard does "+
		"not stop it); training goes on (-chance-guard N stops a run after N evaluations at chance), and its summary "+
		"and reports will say so. A lower -lr is the first thing to try.", warning)
	require.Empty(t, w.observe(40, 0.1), "once per invocation")

	resumed := newChanceWatch("mnist", tenClasses, 0, evaluations(10, 0.1, 0.7))
	require.Contains(t, resumed.observe(30, 0.1), "after 70.00 % at step 10", "the best of the log before the resume counts")

	require.Empty(t, newChanceWatch("synthetic", tenClasses, 0, evaluations(10, 0.1, 0.7)).observe(30, 0.1), "synthetic data")
	require.Empty(t, newChanceWatch("imagefolder", []int{7}, 0, evaluations(1, 0.1, 0.7)).observe(30, 0.1), "one class")
	require.Nil(t, w.stop(40, 0.1), "no guard")

	// On 256 test images a guessing network spreads by ±1.9 points: 20 % then 14 % is noise, not a collapse.
	small := newChanceWatch("mnist", []int{25, 25, 25, 25, 26, 26, 26, 26, 26, 26}, 0, nil)
	small.observe(10, 0.2)
	require.Empty(t, small.observe(20, 0.14))
	small.observe(30, 0.5)
	require.Contains(t, small.observe(40, 0.14), "fell to chance at step 40", "after 50 %, it is")
}

// TestChanceWatchGuard: -chance-guard N stops a run at its N-th evaluation at chance in a row after it had learned,
// counting those of the log it resumed from; an evaluation above chance starts the count again.
func TestChanceWatchGuard(t *testing.T) {
	tenClasses := []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}
	w := newChanceWatch("mnist", tenClasses, 3, nil)
	for i, top1 := range []float64{0.1, 0.1, 0.5, 0.1, 0.1, 0.6, 0.1, 0.1} {
		w.observe(10*i, top1)
		require.Nil(t, w.stop(10*i, top1), "evaluation %d: not 3 at chance in a row yet", i)
	}
	warning := w.observe(80, 0.11)
	require.Empty(t, warning, "warned once, at step 30")
	e := w.stop(80, 0.11)
	require.NotNil(t, e)
	require.Equal(t, &CollapseError{Step: 80, Evaluations: 3, Guard: 3, Ending: ChanceEnding{Chance: 0.1, Classes: 10,
		TestExamples: 10000, Since: 60, Final: 0.11, Best: 0.6, BestStep: 50}}, e)
	e.Checkpoint = "ckpt"
	require.Equal(t, "training stopped at step 80 by -chance-guard 3: the run collapsed to chance (10.00 %, 10 classes) "+
		"at step 60 and stayed there, after 60.00 % at step 50 (3 evaluations at chance in a row); checkpoint ckpt "+
		"kept: -resume with -chance-guard 0 trains on; a lower -lr, from the start in a new -out, may avoid the "+
		"collapse", e.Error())

	resumed := newChanceWatch("mnist", tenClasses, 2, evaluations(10, 0.1, 0.7, 0.1))
	require.Empty(t, resumed.observe(30, 0.1), "it fell before the resume: warned then")
	require.NotNil(t, resumed.stop(30, 0.1), "the second evaluation at chance in a row, across the resume")
	for guard, want := range map[int]string{
		2: "-chance-guard 2 stops the run if its next evaluation is at chance too",
		4: "-chance-guard 4 stops the run if its next 3 evaluations are at chance too",
	} {
		w := newChanceWatch("mnist", tenClasses, guard, nil)
		w.observe(0, 0.5)
		require.Contains(t, w.observe(10, 0.1), want)
	}
	one := newChanceWatch("mnist", tenClasses, 1, nil)
	one.observe(0, 0.5)
	require.Contains(t, one.observe(10, 0.1), "-chance-guard 1 stops the run now")
	require.NotNil(t, one.stop(10, 0.1))
}

// TestRunRecordsChance: a run's starting record holds its number of classes and chance level (the share of the
// test set's most frequent class); a run that never learns is reported as ended at chance, in its result and its
// summary, and one that learns is not.
func TestRunRecordsChance(t *testing.T) {
	idle := tinyConfig(t, "bp")
	idle.Steps, idle.LogEvery, idle.EvalEvery, idle.CheckpointEvery = 4, 4, 2, 4
	idle.LearningRate = 1e-9 // the network stays as it was initialised
	res, err := Train(gocontext.Background(), idle, nil, false)
	require.NoError(t, err)
	records, err := ReadRecords(filepath.Join(idle.OutDir, metricsFileName))
	require.NoError(t, err)
	test, err := input.Open("mnist", "", "test", input.Options{BatchSize: 1, Limit: idle.TestLimit})
	require.NoError(t, err)
	defer test.Close()
	require.Equal(t, 0, records[0].Step)
	require.Equal(t, 10, records[0].Classes)
	require.Equal(t, MajorityTop1(test.ClassCounts()), records[0].ChanceTop1)
	require.Greater(t, records[0].ChanceTop1, 0.1, "the first 256 MNIST test digits are not balanced")
	require.Equal(t, 256, records[0].TestExamples)
	for _, r := range records[1:] {
		require.Zero(t, r.Classes, "only the starting record holds them")
		require.Zero(t, r.ChanceTop1)
		require.Zero(t, r.TestExamples)
	}
	require.NotNil(t, res.AtChance, "top-1 %g, chance %g", res.TestTop1, records[0].ChanceTop1)
	require.False(t, res.AtChance.Collapsed())
	require.Equal(t, 0, res.AtChance.Since)
	var summary strings.Builder
	require.NoError(t, WriteSummary(&summary, res))
	require.Contains(t, summary.String(), "the run ended at chance (")

	learner := tinyConfig(t, "bp")
	res, err = Train(gocontext.Background(), learner, nil, false)
	require.NoError(t, err)
	require.Nil(t, res.AtChance, "top-1 %g", res.TestTop1)
	// Read back from their logs (nowt report), the two runs say the same.
	reused, err := LoadComparison(filepath.Dir(learner.OutDir))
	require.NoError(t, err)
	require.Len(t, reused.Results, 2)
	for name, r := range reused.Results {
		require.Equal(t, r.Config.LearningRate == idle.LearningRate, r.AtChance != nil, name)
	}
}

// zeroWeights rewrites the newest checkpoint of the run in dir with every layer's weights W and biases set to
// zero, and the optimizer's velocities for them: a network as dead as a collapse leaves it. Its output is zero for
// every image, no error reaches its layers and every weight gradient is zero, at any learning rate.
func zeroWeights(t *testing.T, dir string) {
	t.Helper()
	checkpointDir := filepath.Join(dir, checkpointDirName)
	bases, err := listCheckpoints(checkpointDir)
	require.NoError(t, err)
	base := bases[len(bases)-1]
	ctx := context.New()
	meta, err := os.ReadFile(base + checkpoints.JsonNameSuffix)
	require.NoError(t, err)
	data, err := os.ReadFile(base + checkpoints.BinDataSuffix)
	require.NoError(t, err)
	handler, err := checkpoints.Build(ctx).FromEmbed(string(meta), data).Done()
	require.NoError(t, err)
	zeroed := 0
	for _, key := range slices.Sorted(maps.Keys(handler.LoadedVariables())) {
		scope, name := context.VariableScopeAndNameFromParameterName(key)
		v := ctx.GetVariableByScopeAndName(scope, name)
		if v == nil {
			v = ctx.InAbsPath(scope).VariableWithValue(name, 0) // takes the checkpoint's value
		}
		if name == feedback.WeightsName || name == feedback.BiasesName {
			require.NoError(t, v.SetValue(tensors.FromShape(v.Shape())))
			zeroed++
		}
	}
	require.Equal(t, 2*2*2, zeroed, "the MLP's two layers' W and biases, and their velocities")
	require.NoError(t, os.Remove(base+checkpoints.JsonNameSuffix))
	require.NoError(t, os.Remove(base+checkpoints.BinDataSuffix))
	_, err = saveCheckpoint(ctx, checkpointDir, int64(checkpointStep(base)), 5)
	require.NoError(t, err)
}

// TestCollapseWarned: a run resumed from weights that predict one class falls to chance after it had learned:
// the trainer warns once, and the result, the summary and the log read back say it collapsed, and when.
func TestCollapseWarned(t *testing.T) {
	c := tinyConfig(t, "bp")
	c.Steps, c.EvalEvery = 16, 8
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	learned, err := EvaluateWith(c.OutDir, EvalOptions{}, nil)
	require.NoError(t, err)
	require.Nil(t, learned.CheckpointAtChance, "a checkpoint that has learned (top-1 %.3f)", learned.TestTop1)
	zeroWeights(t, c.OutDir)
	c.Steps, c.LearningRate = 32, 1e-9 // the network stays collapsed
	var notices bytes.Buffer
	c.Notices = &notices
	res, err := Train(gocontext.Background(), c, nil, true)
	require.NoError(t, err)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	best := Summarize(records).Best
	require.Greater(t, best, 0.3, "it had learned before the collapse")
	require.Equal(t, 1, strings.Count(notices.String(), "warning: test top-1 fell to chance at step 24: "), notices.String())
	require.NotNil(t, res.AtChance)
	require.True(t, res.AtChance.Collapsed())
	require.Equal(t, 24, res.AtChance.Since)
	require.Equal(t, best, res.AtChance.Best)
	for _, r := range records {
		if r.TestTop1 != nil && *r.TestTop1 == best {
			require.Equal(t, r.Step, res.AtChance.BestStep)
			require.LessOrEqual(t, r.Step, 16, "before the collapse")
			break
		}
	}
	var summary strings.Builder
	require.NoError(t, WriteSummary(&summary, res))
	require.Contains(t, summary.String(), "the run collapsed to chance (")
	require.Contains(t, summary.String(), ") at step 24 and stayed there, after ")

	// nowt eval of the collapsed checkpoint says it is at chance, and that the run had learned before.
	eval, err := EvaluateWith(c.OutDir, EvalOptions{}, nil)
	require.NoError(t, err)
	require.NotNil(t, eval.CheckpointAtChance)
	require.Equal(t, 32, eval.CheckpointAtChance.Since)
	require.Equal(t, eval.TestTop1, eval.CheckpointAtChance.Final)
	require.Equal(t, res.AtChance.Chance, eval.CheckpointAtChance.Chance)
	require.Equal(t, best, eval.CheckpointAtChance.Best)
	require.Equal(t, res.AtChance.BestStep, eval.CheckpointAtChance.BestStep)
	summary.Reset()
	require.NoError(t, WriteSummary(&summary, eval))
	require.Contains(t, summary.String(), "this checkpoint (step 32) is at chance (")
	require.Contains(t, summary.String(), fmt.Sprintf("the run had reached %.2f %% at step %d: it collapsed", 100*best,
		res.AtChance.BestStep))
	require.NotContains(t, summary.String(), "the run collapsed", "an evaluation is not a run's ending")

	// No error reaches the dead network's layers: its angles are recorded as undefined, not as unmeasured.
	for _, r := range records {
		if r.Step <= 16 {
			continue
		}
		for _, l := range r.Layers {
			require.Nil(t, l.GradientAngle, "step %d %s", r.Step, l.Layer)
			require.True(t, l.GradientUndefined, "step %d %s", r.Step, l.Layer)
			require.Equal(t, "undefined", l.GradientStatus())
			require.Equal(t, "undefined", l.DeltaStatus())
		}
	}
	for _, r := range records[:2] {
		for _, l := range r.Layers {
			require.NotNil(t, l.GradientAngle, "step %d %s: before the collapse", r.Step, l.Layer)
			require.False(t, l.GradientUndefined)
		}
	}
}

// TestChanceGuard: -chance-guard stops a collapsed run at its N-th evaluation at chance in a row, with a checkpoint
// and a mark; nowt compare then reports the run as collapsed instead of training it on, until -chance-guard 0
// resumes it, which clears the mark.
func TestChanceGuard(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, "bp")
	c.OutDir = filepath.Join(dir, "bp")
	c.Steps, c.EvalEvery = 16, 8
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	zeroWeights(t, c.OutDir)
	collapsing := c
	collapsing.Steps, collapsing.LearningRate, collapsing.ChanceGuard = 64, 1e-9, 2
	var notices bytes.Buffer
	collapsing.Notices = &notices
	res, err := Train(gocontext.Background(), collapsing, nil, true)
	var collapseErr *CollapseError
	require.ErrorAs(t, err, &collapseErr)
	require.Equal(t, 32, collapseErr.Step, "evaluations at steps 24 and 32 at chance")
	require.Equal(t, 2, collapseErr.Evaluations)
	require.Equal(t, 24, collapseErr.Ending.Since)
	require.True(t, collapseErr.Ending.Collapsed())
	require.Equal(t, 32, checkpointStep(collapseErr.Checkpoint))
	require.Contains(t, notices.String(), "-chance-guard 2 stops the run if its next evaluation is at chance too")
	require.ErrorContains(t, err, "training stopped at step 32 by -chance-guard 2: the run collapsed to chance (")
	require.Equal(t, 32, res.Steps)
	require.NotNil(t, res.AtChance)
	mark, ok := readCollapse(c.OutDir)
	require.True(t, ok, "the run folder is marked")
	require.Equal(t, collapseErr, mark)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	require.Equal(t, 32, records[len(records)-1].Step, "the stopping evaluation is logged")

	// nowt compare with the guard on reports the run as it is; the command given is the original one (the
	// resume's changes are recorded in the run's config.json).
	base := c
	base.OutDir, base.Steps, base.ChanceGuard = dir, 64, 2
	var out bytes.Buffer
	cmp, err := Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err)
	require.Equal(t, StatusCollapsed, cmp.Status["bp"], out.String())
	require.Equal(t, 32, cmp.Results["bp"].Steps)
	require.Contains(t, out.String(), "run the same command with -chance-guard 0 to train it on")
	loaded, err := LoadComparison(dir)
	require.NoError(t, err)
	require.Equal(t, StatusCollapsed, loaded.Status["bp"])
	require.Equal(t, collapseErr, loaded.Collapse["bp"])

	// With the guard off, the run trains on: resumed from its step-32 checkpoint, and no longer marked.
	base.ChanceGuard = 0
	cmp, err = Compare(gocontext.Background(), base, []string{"bp"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, StatusResumed, cmp.Status["bp"])
	require.Equal(t, 64, cmp.Results["bp"].Steps)
	_, ok = readCollapse(c.OutDir)
	require.False(t, ok, "the mark is cleared")
	require.NotNil(t, cmp.Results["bp"].AtChance, "still at chance: nothing reaches the dead layers")
}
