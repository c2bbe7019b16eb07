package trainer

import (
	"bytes"
	gocontext "context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

func TestCompare(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	base := DefaultConfig()
	base.Dataset, base.DataPath = "synthetic", "examples=64,size=8,channels=1,classes=4"
	base.Model, base.Params = "mlp", map[string]any{"mlp_hidden": "16", "mlp_activation": "relu"}
	base.Steps, base.Epochs, base.BatchSize, base.LogEvery, base.Progress = 4, 0, 16, 2, false
	base.OutDir = filepath.Join(t.TempDir(), "cmp")

	var out bytes.Buffer
	c, err := Compare(gocontext.Background(), base, []string{"bp", "kp"}, &out)
	require.NoError(t, err, out.String())
	t.Log(out.String())
	require.Equal(t, []string{"bp", "kp"}, c.Rules)
	for _, rule := range c.Rules {
		require.Equal(t, StatusTrained, c.Status[rule])
		require.Equal(t, 4, c.Results[rule].Steps)
		require.NotEmpty(t, c.Records[rule])
		require.NotEmpty(t, c.Results[rule].Layers)
		require.FileExists(t, filepath.Join(base.OutDir, rule, "config.json"))
	}
	for _, l := range c.Results["kp"].Layers {
		require.NotNil(t, l.WeightAngle, l.Layer)
		require.NotNil(t, l.DeltaAngle, l.Layer)
		require.Equal(t, 16, l.DeltaExamples+l.DeltaUndefined, "%s: the alignment batch", l.Layer)
	}

	// Running it again reuses both finished runs: no training, same metrics.
	metricsPath := filepath.Join(base.OutDir, "kp", metricsFileName)
	before, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	checkpoints, err := listCheckpoints(filepath.Join(base.OutDir, "kp", checkpointDirName))
	require.NoError(t, err)
	require.NotEmpty(t, checkpoints)
	newest := checkpoints[len(checkpoints)-1] + ".json"
	statBefore, err := os.Stat(newest)
	require.NoError(t, err)
	out.Reset()
	c2, err := Compare(gocontext.Background(), base, []string{"bp", "kp"}, &out)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "Reusing the finished run")
	after, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	require.Equal(t, before, after)
	statAfter, err := os.Stat(newest)
	require.NoError(t, err)
	require.Equal(t, statBefore.ModTime(), statAfter.ModTime(), "reusing should not train (nor checkpoint)")
	for _, rule := range c2.Rules {
		require.Equal(t, StatusReused, c2.Status[rule])
		require.InDelta(t, c.Results[rule].TestTop1, c2.Results[rule].TestTop1, 1e-9)
		require.Equal(t, c.Results[rule].Duration.Round(time.Millisecond), c2.Results[rule].Duration.Round(time.Millisecond))
	}

	// A comparison assembled from links to runs kept elsewhere reads each run under its link's name; a link
	// that leads nowhere is named, not skipped.
	assembled := filepath.Join(t.TempDir(), "assembled")
	require.NoError(t, os.MkdirAll(assembled, 0o755))
	require.NoError(t, os.Symlink(filepath.Join(base.OutDir, "kp"), filepath.Join(assembled, "kp-linked")))
	require.NoError(t, os.WriteFile(filepath.Join(assembled, "notes.txt"), []byte("not a run"), 0o644))
	linked, err := LoadComparison(assembled)
	require.NoError(t, err)
	require.Equal(t, []string{"kp-linked"}, linked.Rules)
	require.Equal(t, "kp", linked.Results["kp-linked"].Config.Rule)
	require.InDelta(t, c.Results["kp"].TestTop1, linked.Results["kp-linked"].TestTop1, 1e-9)
	require.Len(t, linked.Records["kp-linked"], len(c.Records["kp"]))
	require.NoError(t, os.Symlink(filepath.Join(base.OutDir, "gone"), filepath.Join(assembled, "fa-gone")))
	_, err = LoadComparison(assembled)
	require.ErrorContains(t, err, "fa-gone is a link to a run that cannot be read")
	// A comparison's folder that is a link to nothing (a seed-<n> linked to a comparison since moved) says where it leads.
	goneComparison := filepath.Join(t.TempDir(), "seed-2")
	require.NoError(t, os.Symlink(filepath.Join(base.OutDir, "moved"), goneComparison))
	_, err = LoadComparison(goneComparison)
	require.ErrorContains(t, err, "it is a link to "+filepath.Join(base.OutDir, "moved")+", which does not exist")

	// A different configuration in the same folder is refused, not silently mixed.
	changed := base
	changed.LearningRate = 0.01
	_, err = Compare(gocontext.Background(), changed, []string{"bp"}, &out)
	require.ErrorContains(t, err, "-lr 0.05 → 0.01")

	// Another rule's hyperparameter does not concern a run: bp and kp are reused when only WM's noise samples
	// change. The run's own hyperparameter does: kp's decay.
	otherRule := base
	otherRule.Params = map[string]any{"mlp_hidden": "16", "mlp_activation": "relu", feedback.ParamWMBatch: 512}
	out.Reset()
	c4, err := Compare(gocontext.Background(), otherRule, []string{"bp", "kp"}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, map[string]string{"bp": StatusReused, "kp": StatusReused}, c4.Status)
	ownRule := base
	ownRule.Params = map[string]any{"mlp_hidden": "16", "mlp_activation": "relu", feedback.ParamKPDecay: 0.5}
	c5, err := Compare(gocontext.Background(), ownRule, []string{"bp", "kp"}, &out)
	require.ErrorContains(t, err, "rule kp:")
	require.ErrorContains(t, err, "-kp-decay (unset) → 0.5")
	require.Equal(t, StatusReused, c5.Status["bp"])

	_, err = Compare(gocontext.Background(), base, []string{"bp", "nope"}, &out)
	require.ErrorContains(t, err, "valid rules are")

	// More epochs than a finished run had: it is resumed, and its records continue.
	byEpochs := base
	byEpochs.Steps, byEpochs.Epochs, byEpochs.OutDir = 0, 1, filepath.Join(t.TempDir(), "epochs")
	_, err = Compare(gocontext.Background(), byEpochs, []string{"kp"}, &out)
	require.NoError(t, err)
	byEpochs.Epochs = 2
	byEpochs.Params = map[string]any{"mlp_hidden": "16", "mlp_activation": "relu", feedback.ParamWMLearningRate: 0.5}
	out.Reset()
	c3, err := Compare(gocontext.Background(), byEpochs, []string{"kp"}, &out)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "Resuming the unfinished run")
	require.Equal(t, StatusResumed, c3.Status["kp"])
	require.Equal(t, 8, c3.Results["kp"].Steps)
	require.Equal(t, 8, c3.Records["kp"][len(c3.Records["kp"])-1].Step)
	require.Equal(t, 0, c3.Records["kp"][0].Step)
	resumed, err := ReadConfig(filepath.Join(byEpochs.OutDir, "kp"))
	require.NoError(t, err)
	require.NotContains(t, resumed.Params, feedback.ParamWMLearningRate, "a kp run keeps its own hyperparameters")
	require.Len(t, resumed.Changes, 1)
	require.Contains(t, resumed.Changes[0], "-epochs 1 → 2")
	require.NotContains(t, resumed.Changes[0], "wm")
}

// TestCompareDivergedRun: a rule whose run diverged is reported as diverged, and a second invocation reports it
// again from its mark without training it again (the same settings diverge the same way), its wall time unchanged.
func TestCompareDivergedRun(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the comparison's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	base := tinyConfig(t, "bp")
	base.LearningRate, base.Momentum, base.LogEvery, base.CheckpointEvery = 30, 0, 1, 1
	base.OutDir = filepath.Join(t.TempDir(), "cmp")
	var out bytes.Buffer
	c, err := Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, StatusDiverged, c.Status["bp"], out.String())
	wallTime, ok := readWallTime(filepath.Join(base.OutDir, "bp"))
	require.True(t, ok)

	out.Reset()
	c, err = Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, StatusDiverged, c.Status["bp"])
	require.Contains(t, out.String(), "diverged in an earlier invocation")
	require.NotContains(t, out.String(), "Resuming")
	again, _ := readWallTime(filepath.Join(base.OutDir, "bp"))
	require.Equal(t, wallTime, again, "nothing was trained")
}

// cancelOnRecord cancels a context when a training record ("step …") is written to it.
type cancelOnRecord struct {
	bytes.Buffer
	cancel func()
}

func (w *cancelOnRecord) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "step ") {
		w.cancel()
	}
	return w.Buffer.Write(p)
}

// TestCompareInterrupted: a comparison interrupted mid-run says to run the same command again (compare has no
// -resume), and doing so resumes the interrupted rule and trains the rest.
func TestCompareInterrupted(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the comparison's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	base := tinyConfig(t, "bp")
	base.Steps, base.LogEvery, base.CheckpointEvery = 8, 2, 2
	base.OutDir = filepath.Join(t.TempDir(), "cmp")
	ctx, cancel := gocontext.WithCancel(gocontext.Background())
	defer cancel()
	out := &cancelOnRecord{cancel: cancel}
	_, err := Compare(ctx, base, []string{"bp", "fa"}, out)
	var interrupted *InterruptedError
	require.ErrorAs(t, err, &interrupted, out.String())
	require.Positive(t, interrupted.Step)
	require.ErrorContains(t, err, "run the same command again")
	require.NotContains(t, err.Error(), "-resume")
	require.NotContains(t, err.Error(), "compare:", "the command names itself")

	var again bytes.Buffer
	c, err := Compare(gocontext.Background(), base, []string{"bp", "fa"}, &again)
	require.NoError(t, err, again.String())
	require.Equal(t, StatusResumed, c.Status["bp"])
	require.Equal(t, base.Steps, c.Results["bp"].Steps)
	require.Equal(t, base.Steps, c.Results["fa"].Steps)
}

// TestCompareKeepsLogWithoutCheckpoints: a finished run whose checkpoints are gone (deleted to save space, or a
// folder of collected logs) keeps its metrics log: nowt compare reuses it from the log, nowt train refuses to
// start over it, and neither a different configuration nor more epochs than it ran overwrite it. A log that stops
// before the run's end with no checkpoint (a crash before the first one) is still trained anew.
func TestCompareKeepsLogWithoutCheckpoints(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the comparison's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	base := DefaultConfig()
	base.Dataset, base.DataPath = "synthetic", "examples=64,size=8,channels=1,classes=4"
	base.Model, base.Params = "mlp", map[string]any{"mlp_hidden": "16", "mlp_activation": "relu"}
	base.Steps, base.Epochs, base.BatchSize, base.LogEvery, base.Progress = 0, 1, 16, 2, false // 4 steps
	base.OutDir = filepath.Join(t.TempDir(), "cmp")
	var out bytes.Buffer
	c, err := Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err, out.String())
	runDir := filepath.Join(base.OutDir, "bp")
	metricsPath := filepath.Join(runDir, metricsFileName)
	logged, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(filepath.Join(runDir, checkpointDirName)))

	out.Reset()
	again, err := Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, StatusReused, again.Status["bp"])
	require.Contains(t, out.String(), "from its metrics log (4 of 4 steps; it keeps no checkpoint)")
	require.InDelta(t, c.Results["bp"].TestTop1, again.Results["bp"].TestTop1, 1e-9)
	require.Equal(t, 4, again.Results["bp"].Steps)

	cfg := base
	cfg.Rule, cfg.OutDir = "bp", runDir
	_, err = Train(gocontext.Background(), cfg, io.Discard, false)
	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	require.ErrorContains(t, err, "already holds a finished run (its metrics log reaches step 4 of 4; it keeps no checkpoint)")

	_, err = Train(gocontext.Background(), cfg, io.Discard, true)
	require.ErrorContains(t, err, "cannot resume: "+runDir+" holds a finished run (its metrics log reaches step 4 of 4) whose checkpoints are gone")
	_, err = Evaluate(runDir, "", io.Discard)
	require.ErrorContains(t, err, "the run finished (its metrics log reaches step 4 of 4) and its checkpoints are gone")
	_, err = LoadComparison(runDir)
	require.ErrorContains(t, err, "is one run")
	require.NotContains(t, err.Error(), "nowt eval", "a run without checkpoints cannot be evaluated")

	longer := base
	longer.Epochs = 2
	_, err = Compare(gocontext.Background(), longer, []string{"bp"}, &out)
	require.ErrorContains(t, err, "finished at step 4 and keeps no checkpoint to continue it to step 8")

	changed := base
	changed.LearningRate = base.LearningRate / 2
	_, err = Compare(gocontext.Background(), changed, []string{"bp"}, &out)
	require.ErrorContains(t, err, "already holds a different run")
	after, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	require.Equal(t, logged, after, "no invocation touched the finished run's log")

	// A crash before the first checkpoint: the log stops at step 2, and the run is trained anew.
	require.NoError(t, truncateRecords(metricsPath, 2))
	out.Reset()
	anew, err := Compare(gocontext.Background(), base, []string{"bp"}, &out)
	require.NoError(t, err, out.String())
	require.Equal(t, StatusTrained, anew.Status["bp"])
	require.Equal(t, 4, anew.Results["bp"].Steps)
}

// TestSameRunKeepsResumeChanges: a run resumed with a lower -lr after a divergence (recorded in its config's
// Changes) is still the comparison's run, and resuming it keeps the lower rate; a setting no resume changed still
// makes another run.
func TestSameRunKeepsResumeChanges(t *testing.T) {
	want := DefaultConfig()
	want.Rule, want.LearningRate, want.Steps, want.Epochs = "kp", 5, 100, 0
	stored := want
	stored.LearningRate, stored.Steps = 0.01, 100
	stored.Changes = []string{"resumed at step 70: -lr 5 → 0.01"}
	require.NoError(t, sameRun(stored, want))
	require.Equal(t, 0.01, want.withStoredResumeChanges(stored).LearningRate, "resuming keeps the lower rate")
	require.Equal(t, want.Steps, want.withStoredResumeChanges(stored).Steps)

	unrecorded := stored
	unrecorded.Changes = nil
	require.ErrorContains(t, sameRun(unrecorded, want), "-lr 0.01 → 5")

	other := want
	other.Momentum = 0.5
	require.ErrorContains(t, sameRun(stored, other), "-momentum 0.9 → 0.5", "-lr's change does not excuse another setting")

	// Differences are named as the user sets them: a flag, or -set for a hyperparameter without one.
	params := want
	params.Params = map[string]any{"mlp_hidden": "16", "bn_momentum": 0.5}
	err := sameRun(want, params)
	for _, s := range []string{`-hidden (unset) → "16"`, "-set bn_momentum (unset) → 0.5"} {
		require.ErrorContains(t, err, s)
	}
	require.NotContains(t, err.Error(), "params", "config.json's keys are no names the user gave")
}

// TestLoadComparisonLogProblems: a run whose metrics log holds nothing, is missing, or does not decode whole is
// reported with a note that says so and what to do, never as a run of 0 steps without a word.
func TestLoadComparisonLogProblems(t *testing.T) {
	const good = `{"step":0,"epoch":0,"test_top1":0.1}` + "\n" + `{"step":5,"epoch":0.5,"test_top1":0.5}` + "\n"
	for _, tc := range []struct {
		name, log string // log "-": no metrics.jsonl
		records   int
		problem   string // "" for none
	}{
		{"whole", good, 2, ""},
		{"empty", "", 0, "kp/metrics.jsonl holds no records: nothing to report"},
		{"blank lines only", "\n\n", 0, "kp/metrics.jsonl holds no records: nothing to report"},
		{"missing", "-", 0, "kp/ has no metrics.jsonl: no record to report"},
		{"torn last line", good + `{"step":10,"ep`, 2,
			"kp/metrics.jsonl, line 3, does not decode (unexpected end of JSON input): reported from the 2 records before it " +
				"(nowt train -resume -out "},
		{"damaged line with lines after it", `{"step":0,"epoch":0,"test_loss":NaN}` + "\n" + good, 0,
			"kp/metrics.jsonl, line 1, does not decode (invalid character 'N' looking for beginning of value), and 2 more lines " +
				"follow it: damaged, not cut short by a crash; reported from the 0 records before it (repair or delete that line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			run := filepath.Join(dir, "kp")
			c := DefaultConfig()
			c.OutDir = run
			require.NoError(t, os.MkdirAll(run, 0o755))
			require.NoError(t, WriteConfig(c, run))
			if tc.log != "-" {
				require.NoError(t, os.WriteFile(filepath.Join(run, metricsFileName), []byte(tc.log), 0o644))
			}
			loaded, err := LoadComparison(dir)
			require.NoError(t, err)
			require.Len(t, loaded.Records["kp"], tc.records)
			problem, ok := loaded.LogProblems["kp"]
			if tc.problem == "" {
				require.False(t, ok, "no problem with a whole log, got %q", problem)
				return
			}
			require.True(t, ok, "the problem is noted")
			require.Contains(t, problem, tc.problem)
		})
	}
}
