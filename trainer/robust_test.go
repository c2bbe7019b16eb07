package trainer

import (
	"bufio"
	"bytes"
	gocontext "context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestLockHelper is not a test: run by TestRunLock as a separate process, it holds the lock of
// $NOWT_LOCK_HELPER until killed.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv("NOWT_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process of TestRunLock")
	}
	if _, err := lockRun(dir); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// TestRunLock: a run folder held by another process is refused, naming the holder's process id; once that
// process is killed with SIGKILL its lock is gone and a run may lock the folder.
func TestRunLock(t *testing.T) {
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestLockHelper$", "-test.count=1")
	helper.Env = append(os.Environ(), "NOWT_LOCK_HELPER="+dir)
	stdout, err := helper.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, helper.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = lockRun(dir)
	require.ErrorContains(t, err, "in use by another run")
	require.ErrorContains(t, err, "pid "+strconv.Itoa(helper.Process.Pid))
	c := tinyConfig(t, "bp")
	c.OutDir = dir
	_, err = Train(gocontext.Background(), c, nil, false)
	require.ErrorContains(t, err, "in use by another run", "Train refuses a locked folder")

	require.NoError(t, helper.Process.Kill()) // kill -9: no chance to unlock
	_ = helper.Wait()
	lock, err := lockRun(dir)
	require.NoError(t, err, "a lock left by a killed process never blocks")
	_, err = lockRun(dir)
	require.ErrorContains(t, err, "pid "+strconv.Itoa(os.Getpid()), "the same process's second lock is refused too")
	lock.release()
	lock, err = lockRun(dir)
	require.NoError(t, err)
	lock.release()
}

// TestResumeSettings: resume says where it resumes from; a changed setting outside ResumableSettings is
// refused listing every difference but other rules' hyperparameters; allowed changes (more steps, other logging)
// are applied and recorded.
func TestResumeSettings(t *testing.T) {
	c := tinyConfig(t, "kp")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 4, 2
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	firstWallTime, ok := readWallTime(c.OutDir)
	require.True(t, ok, "Train records the run's wall time")

	changed := c
	changed.WeightDecay, changed.Momentum = 0.5, 0.5
	changed.Params = map[string]any{"mlp_hidden": "32", "mlp_activation": "relu", "feedback_init_scale": 2.0, "bn_momentum": 0.5}
	_, err = Train(gocontext.Background(), changed, nil, true)
	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	// Hyperparameters are named as they are set: by their flag, or -set where they have none.
	for _, s := range []string{"-wd 0.0001 → 0.5", "-momentum 0.9 → 0.5", "-init-scale (unset) → 2", `-hidden "64" → "32"`,
		"-set bn_momentum (unset) → 0.5", "Only these may change", "-epochs", "-lr"} {
		require.ErrorContains(t, err, s)
	}
	require.NotContains(t, err.Error(), "params.", "config.json's keys are no names the user gave")
	require.NotContains(t, err.Error(), "wm_warmup_steps", "WM's warm-up (dropped from Params) does not concern a kp run")
	fewer := c
	fewer.Steps = 2
	_, err = Train(gocontext.Background(), fewer, nil, true)
	require.ErrorContains(t, err, "-steps 4 → 2")

	more := c
	more.Steps, more.LogEvery, more.ClipNorm = 6, 1, 5 // a bound on the gradients may be added on resuming
	var notices bytes.Buffer
	more.Notices = &notices
	res, err := Train(gocontext.Background(), more, nil, true)
	require.NoError(t, err)
	require.Equal(t, 6, res.Steps)
	require.Contains(t, notices.String(), "Resuming "+c.OutDir+" from step 4 of 6")
	require.Contains(t, notices.String(), "-log-every 2 → 1")
	require.Contains(t, notices.String(), "-clip-norm (unset) → 5")
	stored, err := ReadConfig(c.OutDir)
	require.NoError(t, err)
	require.Equal(t, 6, stored.Steps)
	require.Equal(t, []string{"resumed at step 4: -clip-norm (unset) → 5, -log-every 2 → 1, -steps 4 → 6"}, stored.Changes)
	require.Equal(t, 5.0, stored.ClipNorm)
	wallTime, _ := readWallTime(c.OutDir)
	require.Greater(t, wallTime, firstWallTime, "the resume's time is added (refused invocations add none)")
	require.Less(t, wallTime, firstWallTime+res.Duration+time.Second)

	// Each invocation that trained is in provenance.jsonl (the refused ones are not): the fresh run from step 0,
	// the resume from step 4, both naming the engine and the toolchain.
	entries, err := ReadProvenance(c.OutDir)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	for i, from := range []int{0, 4} {
		require.Equal(t, from, entries[i].FromStep)
		require.NotEmpty(t, entries[i].Engine)
		require.Equal(t, runtime.Version(), entries[i].GoVersion)
		require.False(t, entries[i].Started.IsZero())
	}
}

// TestRecordProvenance: a fresh run replaces what the folder held, a resume appends, and a damaged line is an
// error naming the file and line.
func TestRecordProvenance(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	_, err := ReadProvenance(dir)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, recordProvenance(dir, newProvenance(0, "go (pure Go, 1 device)", "", at), false))
	require.NoError(t, recordProvenance(dir, newProvenance(7, "xla:cpu (4 devices)", "libjpeg-turbo (libturbojpeg.so.0)", at.Add(time.Hour)), true))
	entries, err := ReadProvenance(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.Equal(t, []int{0, 7}, []int{entries[0].FromStep, entries[1].FromStep})
	require.Equal(t, "xla:cpu (4 devices)", entries[1].Engine)
	require.Equal(t, []string{"", "libjpeg-turbo (libturbojpeg.so.0)"}, []string{entries[0].JPEGDecoder, entries[1].JPEGDecoder})
	require.Equal(t, at.Add(time.Hour), entries[1].Started)

	require.NoError(t, recordProvenance(dir, newProvenance(0, "go (pure Go, 1 device)", "", at), false))
	entries, err = ReadProvenance(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "a fresh run starts the file again")

	path := filepath.Join(dir, provenanceFileName)
	require.NoError(t, os.WriteFile(path, []byte(`{"from_step": 0}`+"\n{broken\n"), 0o644))
	_, err = ReadProvenance(dir)
	require.ErrorContains(t, err, path+", line 2")
}

// TestCorruptCheckpointFallback: a truncated newest checkpoint is skipped with a warning, resume continues from
// the previous one, eval too, and what a killed checkpoint write left is removed.
func TestCorruptCheckpointFallback(t *testing.T) {
	c := tinyConfig(t, "fa")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 2, 2
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	dir := filepath.Join(c.OutDir, checkpointDirName)
	bases, err := listCheckpoints(dir)
	require.NoError(t, err)
	require.Len(t, bases, 2)
	newest := bases[1]
	data, err := os.ReadFile(newest + ".bin")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(newest+".bin", data[:len(data)/2], 0o644))
	staging := filepath.Join(dir, ".staging-12345")
	require.NoError(t, os.MkdirAll(filepath.Join(staging, "x"), 0o755))
	orphan := filepath.Join(dir, "checkpoint-n000000099-step-000000099.bin")
	require.NoError(t, os.WriteFile(orphan, []byte("partial"), 0o644))

	var notices bytes.Buffer
	res, err := EvaluateWith(c.OutDir, EvalOptions{Notices: &notices}, nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Steps, "eval falls back to the step-2 checkpoint")
	require.Contains(t, notices.String(), "warning: checkpoint "+newest)
	require.Contains(t, notices.String(), "falling back to the previous checkpoint")
	if !strings.Contains(notices.String(), "cannot be read") { // GoMLX's loader may panic on the cut data
		require.NotContains(t, notices.String(), "runtime error", "a recovered panic's text is no message")
	}

	notices.Reset()
	c.Notices, c.Steps = &notices, 6
	res, err = Train(gocontext.Background(), c, nil, true)
	require.NoError(t, err)
	require.Equal(t, 6, res.Steps)
	require.Contains(t, notices.String(), "from step 2 of 6")
	stored, err := ReadConfig(c.OutDir)
	require.NoError(t, err)
	require.Equal(t, []string{"resumed at step 2: -steps 4 → 6"}, stored.Changes, "the step of the checkpoint loaded")
	require.NoDirExists(t, staging)
	require.NoFileExists(t, orphan)
	require.Contains(t, notices.String(), "Removed "+staging)

	// With no readable checkpoint left, the error says what can still be done.
	bases, err = listCheckpoints(dir)
	require.NoError(t, err)
	for _, base := range bases {
		require.NoError(t, os.WriteFile(base+".bin", nil, 0o644))
	}
	_, err = EvaluateWith(c.OutDir, EvalOptions{Notices: io.Discard}, nil)
	require.ErrorContains(t, err, "no readable checkpoint")
	require.ErrorContains(t, err, "into a new -out")
	require.NotContains(t, err.Error(), "runtime error")
}

// TestUnreadableCheckpointsAdvice: where no checkpoint of a run can be read, the error's advice is one that nowt
// train then accepts: deleting checkpoints/ for a run that had not finished (it trains anew into the folder), the
// whole folder for a finished one (whose log, with its checkpoints gone, train refuses to overwrite).
func TestUnreadableCheckpointsAdvice(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the run folder's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	for _, tc := range []struct {
		name     string
		finished bool
		advice   string // what the error says to delete
	}{
		{"unfinished", false, "delete its checkpoints/"},
		{"finished", true, "delete the run's folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(t, "bp")
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 2, 2
			_, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			if !tc.finished { // as if stopped at step 4 of 8
				stored, err := ReadConfig(c.OutDir)
				require.NoError(t, err)
				stored.Steps = 8
				require.NoError(t, WriteConfig(stored, c.OutDir))
				c.Steps = 8
			}
			dir := filepath.Join(c.OutDir, checkpointDirName)
			bases, err := listCheckpoints(dir)
			require.NoError(t, err)
			for _, base := range bases {
				require.NoError(t, os.WriteFile(base+".bin", nil, 0o644))
			}
			c.Notices = io.Discard
			_, err = Train(gocontext.Background(), c, nil, true)
			require.ErrorContains(t, err, "no readable checkpoint")
			require.ErrorContains(t, err, tc.advice)
			if tc.finished {
				require.NotContains(t, err.Error(), "delete its checkpoints/")
				require.NoError(t, os.RemoveAll(c.OutDir))
			} else {
				require.NoError(t, os.RemoveAll(dir))
			}
			_, err = Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err, "the advice given must be one that train accepts")
		})
	}
}

// TestDivergenceGuard: a loss that grows far past its start for several records stops the run, naming the
// step; the checkpoints written after the last loss in range are set aside, so that -resume continues from the last
// good one, with a lower learning rate as the message says; with the guard off the run goes on until the loss is
// not finite.
func TestDivergenceGuard(t *testing.T) {
	c := tinyConfig(t, "bp")
	c.Momentum, c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 0, 8, 1, 32, 1
	_, err := Train(gocontext.Background(), c, nil, false) // 8 good steps
	require.NoError(t, err)
	c.LearningRate, c.Steps = 30, 32 // then a rate that diverges
	res, err := Train(gocontext.Background(), c, nil, true)
	var nanErr *NaNError
	require.ErrorAs(t, err, &nanErr)
	require.Greater(t, nanErr.Start, 0.0, "stopped by the guard, not by a non-finite loss: %v", err)
	require.Greater(t, nanErr.Loss, DivergenceFactor*nanErr.Start)
	require.ErrorContains(t, err, fmt.Sprintf("at step %d", nanErr.Step))
	require.ErrorContains(t, err, "-divergence-guard=false")
	require.NotNil(t, res)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	last := records[len(records)-1]
	require.Equal(t, nanErr.Step, last.Step)
	// The checkpoint kept is from before the last loss in range (a checkpoint's weights give the next step's loss):
	// the first step at the new rate updated the step-8 weights, so step 8's checkpoint is the last good one.
	good := checkpointStep(nanErr.Checkpoint)
	require.Equal(t, 8, good, "%v", err)
	bases, err := listCheckpoints(filepath.Join(c.OutDir, checkpointDirName))
	require.NoError(t, err)
	require.Equal(t, nanErr.Checkpoint, bases[len(bases)-1], "-resume continues from it")
	aside, err := filepath.Glob(filepath.Join(c.OutDir, checkpointDirName, divergedCheckpointPrefix+"checkpoint-*.json"))
	require.NoError(t, err)
	require.Len(t, aside, nanErr.SetAside)
	require.Positive(t, nanErr.SetAside, "the checkpoints after step 8 were written before the guard saw the growth")
	require.ErrorContains(t, nanErr, "renamed "+divergedCheckpointPrefix)

	// The result and the summary describe the whole run, not only what this invocation evaluated.
	require.Equal(t, nanErr.Step, res.Steps)
	require.InDelta(t, float64(nanErr.Step)/float64(16), res.Epochs, 1e-9, "512 examples in batches of 32")
	require.Positive(t, res.Duration)
	summary := Summarize(records)
	require.Equal(t, 2, summary.Evaluations, "steps 0 and 8, in the first invocation")
	require.Equal(t, summary.Best, res.BestTestTop1)
	require.Equal(t, *summary.Final.TestLoss, res.TestLoss, "step 8's evaluation")
	require.Equal(t, nanErr.Checkpoint, res.Checkpoint)
	mark, ok := readDivergence(c.OutDir)
	require.True(t, ok, "the run folder is marked as diverged")
	require.Equal(t, nanErr.Step, mark.Step)
	require.Equal(t, nanErr.Checkpoint, mark.Checkpoint)

	// What the message says to do works: resume with a lower learning rate, recorded as a change.
	lower := c
	lower.LearningRate = 0.05
	var notices bytes.Buffer
	lower.Notices = &notices
	res, err = Train(gocontext.Background(), lower, nil, true)
	require.NoError(t, err)
	require.Equal(t, c.Steps, res.Steps)
	require.Contains(t, notices.String(), "from step 8 of 32")
	stored, err := ReadConfig(c.OutDir)
	require.NoError(t, err)
	require.Equal(t, []string{"resumed at step 8: -lr 0.05 → 30, -steps 8 → 32", "resumed at step 8: -lr 30 → 0.05"},
		stored.Changes)
	_, ok = readDivergence(c.OutDir)
	require.False(t, ok, "a resumed run is no longer marked as diverged")
	records, err = ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	require.Less(t, records[len(records)-1].Loss, nanErr.Start, "trained on from the good checkpoint")

	off := c
	off.OutDir, off.NoDivergenceGuard = t.TempDir(), true
	_, err = Train(gocontext.Background(), off, nil, false)
	if errors.As(err, &nanErr) {
		require.Zero(t, nanErr.Start, "the guard is off: only a non-finite loss stops the run")
	} else {
		require.NoError(t, err)
	}
}

// TestOverflowStopsCleanly: a learning rate that overflows the weights in one step stops the run as a
// divergence, guard on or off, whether the training loss or the test evaluation sees it first; nothing that is
// not a finite number reaches metrics.jsonl (JSON has no NaN), which stays readable.
func TestOverflowStopsCleanly(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the guard's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	for _, tc := range []struct {
		name      string
		evalEvery int
		guardOff  bool
	}{
		{"evaluated after every step, guard off", 1, true},
		{"not evaluated", 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(t, "fa")
			c.LearningRate, c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 1e30, 6, 1, tc.evalEvery, 1
			c.NoDivergenceGuard = tc.guardOff
			_, err := Train(gocontext.Background(), c, nil, false)
			var nanErr *NaNError
			require.ErrorAs(t, err, &nanErr, "%v", err)
			require.NotContains(t, err.Error(), "encoding metrics")
			require.ErrorContains(t, err, "lower -lr")
			records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
			require.NoError(t, err)
			require.NotEmpty(t, records)
			mark, ok := readDivergence(c.OutDir)
			require.True(t, ok, "marked as diverged")
			require.Equal(t, nanErr.Step, mark.Step)
		})
	}
}

// writeImages writes an image folder with 2 classes of small PNGs (n per class and split) and returns it.
func writeImages(t *testing.T, n int) string {
	root := t.TempDir()
	for _, split := range []string{"train", "val"} {
		for k, class := range []string{"a", "b"} {
			require.NoError(t, os.MkdirAll(filepath.Join(root, split, class), 0o755))
			for i := range n {
				img := image.NewRGBA(image.Rect(0, 0, 8, 8))
				for p := range 64 {
					img.Set(p%8, p/8, color.RGBA{uint8(100 * k), uint8(i * 7), uint8(p), 255})
				}
				f, err := os.Create(filepath.Join(root, split, class, fmt.Sprintf("%02d.png", i)))
				require.NoError(t, err)
				require.NoError(t, png.Encode(f, img))
				require.NoError(t, f.Close())
			}
		}
	}
	return root
}

// TestSkipUnreadableImages: corrupt, empty and unsupported images are skipped with a warning naming each,
// counted in the records and the result; Strict stops at the first, naming it.
func TestSkipUnreadableImages(t *testing.T) {
	root := writeImages(t, 16)
	bad := map[string][]byte{
		filepath.Join(root, "train", "a", "corrupt.png"): []byte("\x89PNG\r\n\x1a\nnot really"),
		filepath.Join(root, "train", "b", "empty.jpg"):   nil,
		filepath.Join(root, "val", "a", "gif.png"):       []byte("GIF89a\x01\x00\x01\x00"),
	}
	for path, data := range bad {
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	c := tinyConfig(t, "bp")
	c.Dataset, c.DataPath, c.ImageSize, c.TrainLimit, c.TestLimit = "imagefolder", root, 8, 0, 0
	c.BatchSize, c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 8, 8, 4, 4, 8
	var notices bytes.Buffer
	c.Notices = &notices
	res, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	require.Equal(t, 3, res.SkippedImages)
	for path := range bad {
		require.Contains(t, notices.String(), path)
	}
	require.Equal(t, 3, strings.Count(notices.String(), "warning: skipping an unreadable image"), "one warning per file")
	// The JPEG decoder shapes the pixels: the run names it, and records it with the engine.
	require.Contains(t, notices.String(), "JPEG decoder: "+input.JPEGDecoder())
	entries, err := ReadProvenance(c.OutDir)
	require.NoError(t, err)
	require.Equal(t, input.JPEGDecoder(), entries[0].JPEGDecoder)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	require.Equal(t, 3, records[len(records)-1].SkippedImages)
	var summary bytes.Buffer
	require.NoError(t, WriteSummary(&summary, res))
	require.Contains(t, summary.String(), "skipped 3 unreadable images")

	strict := c
	strict.OutDir, strict.Strict = t.TempDir(), true
	_, err = Train(gocontext.Background(), strict, nil, false)
	require.Error(t, err)
	require.ErrorContains(t, err, "corrupt image")
	require.ErrorContains(t, err, "evaluating: reading the test set: ")
	require.NotContains(t, err.Error(), "during Eval", "GoMLX's evaluation wrapping is no news to the user")

	// A corrupt training image alone: the error names the step whose batch held it, without the loop's wrapping.
	trainOnly := writeImages(t, 16)
	require.NoError(t, os.WriteFile(filepath.Join(trainOnly, "train", "b", "empty.jpg"), nil, 0o644))
	strict.OutDir, strict.DataPath = t.TempDir(), trainOnly
	_, err = Train(gocontext.Background(), strict, nil, false)
	require.ErrorContains(t, err, "corrupt image")
	require.Regexp(t, `^reading the training batch of step \d+: `, err.Error())
	require.NotContains(t, err.Error(), "Loop.RunSteps", "the training loop's wrapping is no news to the user")
}

// TestManyRunsBoundedHeap trains 24 tiny runs in one process, as compare or a notebook does, and bounds the
// growth of the live heap between the 4th and the last: nothing of a finished run (its graphs, the feedback
// layers' captures) stays reachable.
func TestManyRunsBoundedHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 24 runs")
	}
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	live := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const runs, settle = 24, 4
	var base uint64
	for i := range runs {
		c := DefaultConfig()
		c.Rule, c.Model, c.Dataset = []string{"bp", "fa", "ss", "wm", "kp"}[i%5], "mlp", "synthetic"
		c.DataPath = "examples=64,size=8,channels=1,classes=4"
		c.BatchSize, c.Steps, c.Epochs, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 16, 4, 0, 2, 4, 4
		c.Schedule, c.Progress, c.OutDir, c.Backend = "constant", false, t.TempDir(), "go"
		c.Params = map[string]any{"mlp_hidden": "32", "wm_warmup_steps": 2}
		_, err := Train(gocontext.Background(), c, nil, false)
		require.NoError(t, err, "run %d", i)
		if i == settle-1 {
			base = live()
		}
	}
	grown := int64(live()) - int64(base)
	t.Logf("live heap after %d runs: %+d bytes since run %d (%.1f KiB per run)", runs, grown, settle,
		float64(grown)/1024/float64(runs-settle))
	require.Less(t, grown, int64(2<<20), "live heap grew by %d bytes over %d runs", grown, runs-settle)
}

// TestLoggedEvaluationsMatchCheckpoints: every test evaluation a run logs is what a fresh evaluation of the
// checkpoint saved at that step gives. On XLA the MLP has the demo's 784×500 first layer at batch 128, the shape
// with which the XLA CPU plugin's XNNPACK dots used stale weights (see xla.TestDotWithFreshOperands): in-run
// evaluations then disagreed with their checkpoints' (on pure Go, where that shape is slow, a narrower one).
func TestLoggedEvaluationsMatchCheckpoints(t *testing.T) {
	c := tinyConfig(t, "bp")
	if xla.TestBackendIsXLA() {
		c.Params["mlp_hidden"] = "500"
	}
	c.TrainLimit, c.TestLimit, c.BatchSize = 1536, 256, 128
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery, c.KeepCheckpoints = 12, 2, 2, 2, 100
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	checked := 0
	for _, rec := range records {
		if rec.Step == 0 || rec.TestTop1 == nil {
			continue
		}
		name := fmt.Sprintf(checkpointNameFormat, rec.Step, rec.Step)
		res, err := EvaluateWith(c.OutDir, EvalOptions{Checkpoint: name}, nil)
		require.NoError(t, err)
		require.Equal(t, *rec.TestTop1, res.TestTop1, "step %d: logged top-1 against its checkpoint's", rec.Step)
		require.InDelta(t, *rec.TestLoss, res.TestLoss, 1e-5*math.Abs(res.TestLoss), "step %d: logged loss", rec.Step)
		checked++
	}
	require.Equal(t, c.Steps/c.EvalEvery, checked)
}

// TestReadBuild: the binary's own build as `nowt version` and provenance.jsonl report it: this test binary's
// module and toolchain, and no VCS time or modified flag without a commit.
func TestReadBuild(t *testing.T) {
	b := ReadBuild()
	require.Equal(t, runtime.Version(), b.GoVersion)
	require.Equal(t, "github.com/nowt-ml/nowt", b.Module)
	if b.Commit == "" {
		require.Empty(t, b.CommitTime)
		require.False(t, b.Modified)
	}
	p := newProvenance(3, "go", "", time.Now())
	require.Equal(t, b.Commit, p.Commit)
	require.Equal(t, b.Modified, p.Modified)
	require.Equal(t, b.GoVersion, p.GoVersion)
}

// TestStartingLoss: the divergence guard of a resumed run compares with the step-0 test loss, also in a WM run,
// whose log starts with warm-up records that hold none (it used the first loss after the resume instead).
func TestStartingLoss(t *testing.T) {
	loss := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name    string
		records []Record
		want    float64
	}{
		{"bp", []Record{{Step: 0, TestLoss: loss(2.3)}, {Step: 10, Loss: 1.1}}, 2.3},
		{"wm warm-up first", []Record{{Step: 0}, {Step: 0}, {Step: 0, TestLoss: loss(2.4)}, {Step: 8, Loss: 0.2, TestLoss: loss(0.3)}}, 2.4},
		{"no step-0 evaluation", []Record{{Step: 0}, {Step: 8, TestLoss: loss(0.3)}}, math.NaN()},
		{"empty", nil, math.NaN()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := startingLoss(tc.records)
			if math.IsNaN(tc.want) {
				require.True(t, math.IsNaN(got), "got %g", got)
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestTruncateRecordsKeepsUnreadableLog: a resume drops a torn last line of the metrics log, but a log it cannot
// read, or one damaged before its last line, is an error and stays as it is (it was rewritten from the records
// read so far: none, or those before the damage).
func TestTruncateRecordsKeepsUnreadableLog(t *testing.T) {
	dir := t.TempDir()
	torn := filepath.Join(dir, "torn.jsonl")
	require.NoError(t, os.WriteFile(torn, []byte(`{"step":1}`+"\n"+`{"step":2}`+"\n"+`{"st`), 0o644))
	require.NoError(t, truncateRecords(torn, 5))
	records, err := ReadRecords(torn)
	require.NoError(t, err)
	require.Len(t, records, 2)

	// A line that does not decode with records after it is no crash's doing: rewriting the log would drop them.
	damaged := filepath.Join(dir, "damaged.jsonl")
	content := []byte(`{"step":1}` + "\n" + `{"st` + "\n" + `{"step":3}` + "\n" + `{"step":4}` + "\n")
	require.NoError(t, os.WriteFile(damaged, content, 0o644))
	err = truncateRecords(damaged, 5)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, "2 more lines follow it")
	require.ErrorContains(t, err, "the log is left as it is")
	left, err := os.ReadFile(damaged)
	require.NoError(t, err)
	require.Equal(t, content, left)

	unreadable := filepath.Join(dir, "metrics.jsonl")
	require.NoError(t, os.Mkdir(unreadable, 0o755)) // reading it fails, as an I/O error would
	err = truncateRecords(unreadable, 5)
	require.ErrorContains(t, err, "the log is left as it is")
	require.DirExists(t, unreadable)
	require.NoError(t, truncateRecords(filepath.Join(dir, "absent.jsonl"), 5), "no log yet: nothing to do")
}

// TestRunsReleaseTheirBackend: training, evaluation and benchmarking each finalize the backend they created
// (an XLA client holds threads and device memory: nowt compare trains several runs in one process), also when
// they fail after creating it; and a model that does not fit its input is an error, not a panic.
func TestRunsReleaseTheirBackend(t *testing.T) {
	var made []backends.Backend
	orig := newBackend
	t.Cleanup(func() { newBackend = orig })
	newBackend = func(spec string, devices int, w io.Writer) (backends.Backend, error) {
		b, err := orig(spec, devices, w)
		if err == nil {
			made = append(made, b)
		}
		return b, err
	}
	requireReleased := func(what string) {
		t.Helper()
		require.NotEmpty(t, made, what)
		for _, b := range made {
			require.True(t, b.IsFinalized(), "%s left its backend open", what)
		}
		made = nil
	}
	c := tinyConfig(t, "kp")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 4, 4
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	requireReleased("Train")
	_, err = Evaluate(c.OutDir, "", nil)
	require.NoError(t, err)
	requireReleased("Evaluate")
	_, err = Benchmark(c, 1, 1, nil)
	require.NoError(t, err)
	requireReleased("Benchmark")

	small := c
	small.Model, small.Dataset, small.DataPath, small.Params = "cnn", "synthetic", "examples=64,size=8,channels=1,classes=4", nil
	small.TrainLimit, small.TestLimit, small.OutDir = 0, 0, t.TempDir()
	_, err = Train(gocontext.Background(), small, nil, false)
	require.ErrorContains(t, err, "cnn under rule kp")
	require.ErrorContains(t, err, "smaller than the 5x5 kernel")
	requireReleased("a failed Train")

	// Rounds: one backend for every configuration, released with the sessions, also when the second fails.
	_, err = BenchmarkRounds([]Config{c, small}, 1, 1, 2, nil)
	require.ErrorContains(t, err, "cnn under rule kp")
	require.ErrorContains(t, err, "smaller than the 5x5 kernel")
	require.Len(t, made, 1, "the configurations share one backend")
	requireReleased("a failed BenchmarkRounds")
}

// TestGradientAngleRecorded: every record holds each layer's angle between the rule's weight gradient and
// backprop's: 0 everywhere under bp and at FA's output layer, far from 0 at FA's hidden layer. And each layer's
// ‖W‖ and ‖B‖/‖W‖: W moves while FA's B stays fixed, so their product, ‖B‖, is the same in every record.
func TestGradientAngleRecorded(t *testing.T) {
	for _, rule := range []string{"bp", "fa"} {
		c := tinyConfig(t, rule)
		c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 4, 4
		_, err := Train(gocontext.Background(), c, nil, false)
		require.NoError(t, err)
		records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
		require.NoError(t, err)
		for _, rec := range records {
			require.Len(t, rec.Layers, 2)
			for i, l := range rec.Layers {
				first := records[0].Layers[i]
				require.NotNil(t, l.WeightNorm, "%s step %d %s", rule, rec.Step, l.Layer)
				if rule == "bp" {
					require.InDelta(t, 1, *l.NormRatio, 1e-6, "%s step %d %s: B is W", rule, rec.Step, l.Layer)
				} else {
					require.InEpsilon(t, *first.NormRatio**first.WeightNorm, *l.NormRatio**l.WeightNorm, 1e-5,
						"%s step %d %s: ‖B‖ of FA's fixed B", rule, rec.Step, l.Layer)
				}
				require.NotNil(t, l.GradientAngle, "%s step %d %s", rule, rec.Step, l.Layer)
				if rule == "bp" || i == 1 {
					require.InDelta(t, 0, *l.GradientAngle, 0.05, "%s step %d %s", rule, rec.Step, l.Layer)
				} else {
					require.Greater(t, *l.GradientAngle, 30.0, "%s step %d %s: FA's random B", rule, rec.Step, l.Layer)
				}
			}
		}
		for i, last := range records[len(records)-1].Layers {
			require.NotEqual(t, *records[0].Layers[i].WeightNorm, *last.WeightNorm, "%s %s: W trained", rule, last.Layer)
		}
	}
}

// TestCPUModelName: the CPU model provenance.jsonl records, read from /proc/cpuinfo as x86, arm64, ppc64 and
// riscv kernels write it.
func TestCPUModelName(t *testing.T) {
	for _, tc := range []struct{ name, cpuinfo, want string }{
		{"x86", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n\n" +
			"processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n", "Intel(R) Xeon(R) Processor"},
		{"amd first of two", "model name\t: AMD EPYC 7B13\nmodel name\t: other\n", "AMD EPYC 7B13"},
		{"arm64 with hardware", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: Neoverse-N1\n", "Neoverse-N1"},
		{"ppc64", "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n", "POWER9 (architected), altivec supported"},
		{"riscv", "processor\t: 0\nisa\t\t: rv64imafdc\nuarch\t\t: sifive,u74-mc\n", "sifive,u74-mc"},
		{"empty model name skipped", "model name\t:\nHardware\t: board\n", "board"},
		{"none", "processor\t: 0\nBogoMIPS\t: 50.00\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, cpuModelName([]byte(tc.cpuinfo)))
		})
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		require.Equal(t, cpuModelName(data), newProvenance(0, "go", "", time.Now()).CPUModel)
	}
}

// TestCheckpointWriteFailure: a checkpoint that cannot be written (here a full disk) stops the run with an error
// that names the step, the cause and the newest checkpoint, without the training loop's wrapping, and says how to
// go on: -resume continues from that checkpoint; where none was written yet, the same command starts anew.
func TestCheckpointWriteFailure(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("storage errors and how to go on, the same on every backend: the pure-Go pass runs it")
	}
	save := saveCheckpointFunc
	t.Cleanup(func() { saveCheckpointFunc = save })
	failAt := func(failing int64) {
		saveCheckpointFunc = func(ctx *context.Context, dir string, step int64, keep int) (string, error) {
			if step == failing {
				return "", fmt.Errorf("writing the checkpoint: %w",
					&os.PathError{Op: "write", Path: filepath.Join(dir, "x.bin"), Err: syscall.ENOSPC})
			}
			return save(ctx, dir, step, keep)
		}
	}

	c := tinyConfig(t, "kp")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 6, 2, 2, 2
	failAt(4)
	res, err := Train(gocontext.Background(), c, nil, false)
	var storageErr *StorageError
	require.ErrorAs(t, err, &storageErr)
	require.ErrorIs(t, err, syscall.ENOSPC)
	msg := err.Error()
	for _, want := range []string{"the checkpoint of step 4 into " + filepath.Join(c.OutDir, checkpointDirName),
		"the disk is full", "step-000000002", "-resume"} {
		require.Contains(t, msg, want)
	}
	require.NotContains(t, msg, "Loop.RunSteps", "the training loop's wrapping says nothing to the user")
	require.NotNil(t, res, "the run so far, for its summary")

	saveCheckpointFunc = save
	res, err = Train(gocontext.Background(), c, nil, true)
	require.NoError(t, err)
	require.Equal(t, 6, res.Steps)

	c = tinyConfig(t, "fa")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 2, 2
	failAt(2)
	_, err = Train(gocontext.Background(), c, nil, false)
	require.ErrorAs(t, err, &storageErr)
	require.ErrorContains(t, err, "no checkpoint was written yet")
	require.ErrorContains(t, err, "run the same command again")
	saveCheckpointFunc = save
	res, err = Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err, "the same command again")
	require.Equal(t, 4, res.Steps)
}

// TestStorageErrorMessage: the message names what was written and the system's word once, says when the disk is
// full, and how to go on, with or without a checkpoint to resume from.
func TestStorageErrorMessage(t *testing.T) {
	full := &os.PathError{Op: "write", Path: "/runs/a/metrics.jsonl", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name string
		err  *StorageError
		want string
	}{
		{"the log, no checkpoint", &StorageError{What: "the metrics log /runs/a/metrics.jsonl",
			Err: fmt.Errorf("writing metrics: %w", full)},
			"writing the metrics log /runs/a/metrics.jsonl: no space left on device: the disk is full; free space " +
				"there (each run keeps its -keep newest checkpoints) or train into another -out; no checkpoint was " +
				"written yet: then run the same command again, which starts the run anew"},
		{"a checkpoint, resumable", &StorageError{What: "the checkpoint of step 20 into /runs/a/checkpoints",
			Err:        fmt.Errorf("writing the checkpoint: %w", &os.PathError{Op: "write", Path: "/runs/a/checkpoints/.staging-1/x.bin", Err: syscall.EROFS}),
			Checkpoint: "/runs/a/checkpoints/checkpoint-n000000010-step-000000010"},
			"writing the checkpoint of step 20 into /runs/a/checkpoints: write /runs/a/checkpoints/.staging-1/x.bin: " +
				"read-only file system: the folder cannot be written; make it writable or train into another -out; " +
				"the newest checkpoint is /runs/a/checkpoints/checkpoint-n000000010-step-000000010; " +
				"then go on with -resume"},
		{"nowt compare's way on", &StorageError{What: "the metrics log /runs/a/metrics.jsonl", Err: full,
			Continue: "then run the same command again to go on"},
			"writing the metrics log /runs/a/metrics.jsonl: no space left on device: the disk is full; free space " +
				"there (each run keeps its -keep newest checkpoints) or train into another -out; then run the same " +
				"command again to go on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.err.Error())
			require.ErrorIs(t, tc.err, tc.err.Err)
		})
	}
}

// TestDamagedConfig: a run whose config.json was cut short is refused by -resume and eval with an error naming
// the file, saying it is damaged and what can be done.
func TestDamagedConfig(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("reading a damaged settings file, the same on every backend: the pure-Go pass runs it")
	}
	c := tinyConfig(t, "fa")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 2, 2, 2, 2
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	path := filepath.Join(c.OutDir, configFileName)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)/2], 0o644))
	_, err = Train(gocontext.Background(), c, nil, true)
	require.ErrorContains(t, err, "decoding "+path)
	require.ErrorContains(t, err, "damaged")
	_, err = EvaluateWith(c.OutDir, EvalOptions{Notices: io.Discard}, nil)
	require.ErrorContains(t, err, "restore it from a copy, or train anew into another -out")
}

// TestOutOfMemoryAdvice: the backend's failure to allocate device memory becomes an OutOfMemoryError that names
// the settings to change, only those not already at their lightest; other errors pass unchanged.
func TestOutOfMemoryAdvice(t *testing.T) {
	xlaErr := errors.New("executing the step: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"float32 on one device", Config{BatchSize: 256, Devices: 1},
			"the device ran out of memory: lower -batch (256) or -eval-batch (256), or compute in -dtype bfloat16 (on an " +
				"accelerator), or split each batch over several devices (-devices -1); training: executing the step: RESOURCE_EXHAUSTED"},
		{"bfloat16 on every device", Config{BatchSize: 1024, EvalBatchSize: 500, Devices: -1, DType: "bfloat16"},
			"the device ran out of memory: lower -batch (1024) or -eval-batch (500); training: executing the step"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := withMemoryAdvice(fmt.Errorf("training: %w", xlaErr), tc.cfg)
			var oom *OutOfMemoryError
			require.ErrorAs(t, err, &oom)
			require.ErrorIs(t, err, xlaErr)
			require.Contains(t, err.Error(), tc.want)
			require.Equal(t, err, withMemoryAdvice(err, tc.cfg), "advice is given once")
		})
	}
	pjrtErr := errors.New("executing: PJRT error (code=8): Failed to allocate request for 2.00GiB (2147483648B) on device ordinal 0")
	require.ErrorContains(t, withMemoryAdvice(pjrtErr, Config{BatchSize: 8, Devices: 1}), "the device ran out of memory: lower -batch (8)")
	cpuErr := errors.New(`failed to execute computation "VariableInitialization": PJRT error (code=13): Compute error: Error preparing computation: Out of memory allocating 62720000000 bytes.`)
	require.ErrorContains(t, withMemoryAdvice(cpuErr, Config{BatchSize: 64}),
		"the device ran out of memory creating the model's variables: its weights (W and B in float32, on every "+
			"device) do not fit, whatever the batch; choose a smaller model; failed to execute")
	other := errors.New("no such file")
	require.Equal(t, other, withMemoryAdvice(other, Config{BatchSize: 1}))
	require.NoError(t, withMemoryAdvice(nil, Config{}))
}

// TestFailedStepKeepsItsError: a training step whose execution fails can leave the variables it was given without
// values (seen with XLA on CPU out of memory: the error became 'variable "/global_step" has no value'); the run's
// result is then dropped, not read, so that the step's own error is what the user sees.
func TestFailedStepKeepsItsError(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the result after a failed step, the same on every backend: the pure-Go pass runs it")
	}
	c := tinyConfig(t, "bp")
	r, err := setup(c, nil, "", true)
	require.NoError(t, err)
	defer r.close()
	_, err = r.align()
	require.NoError(t, err)
	result := &Result{Config: c}
	require.True(t, r.finishResultAfterFailure(result, filepath.Join(t.TempDir(), metricsFileName), time.Now()))
	require.NoError(t, optimizers.GetGlobalStepVar(r.ctx).Reset()) // what a failed execution leaves
	require.NotPanics(t, func() {
		require.False(t, r.finishResultAfterFailure(result, filepath.Join(t.TempDir(), metricsFileName), time.Now()))
	})
}

// TestRestartWithoutCheckpointSaysWhatItReplaces: training anew into a folder whose run stopped before its first
// checkpoint (which nowt train and nowt compare do, there being nothing to continue from) says what it replaces: the
// old run's records and, for a different run, the settings that differ, named as the user sets them. A fresh
// folder gets no such notice.
func TestRestartWithoutCheckpointSaysWhatItReplaces(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the run folder's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	for _, tc := range []struct {
		name string
		rule string
		want []string
	}{
		{"same run", "bp", []string{"(mlp, rule bp; 3 records up to step 4)", "the same run, trained again from step 0"}},
		{"another rule", "fa", []string{"(mlp, rule bp; 3 records up to step 4)", "a different run", `-rule "bp" → "fa"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(t, "bp")
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 4, 4
			var notices bytes.Buffer
			c.Notices = &notices
			_, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			require.NotContains(t, notices.String(), "stopped before its first checkpoint", "a fresh folder replaces nothing")
			// As if the run, planned for 8 steps, had stopped at step 4 before any checkpoint.
			stored, err := ReadConfig(c.OutDir)
			require.NoError(t, err)
			stored.Steps = 8
			require.NoError(t, WriteConfig(stored, c.OutDir))
			require.NoError(t, os.RemoveAll(filepath.Join(c.OutDir, checkpointDirName)))

			again := c
			again.Rule, again.Steps = tc.rule, 8
			notices.Reset()
			_, err = Train(gocontext.Background(), again, nil, false)
			require.NoError(t, err)
			require.Contains(t, notices.String(), c.OutDir+" holds a run")
			require.Contains(t, notices.String(), "replaces its config.json and metrics.jsonl")
			for _, s := range tc.want {
				require.Contains(t, notices.String(), s)
			}
		})
	}
}

// TestUnreadableImagesCount: the records and the summary count skipped images in words that agree with the number.
func TestUnreadableImagesCount(t *testing.T) {
	for n, want := range map[int]string{1: "1 unreadable image", 2: "2 unreadable images", 40: "40 unreadable images"} {
		require.Equal(t, want, unreadableImages(n))
	}
}

// TestNilArguments: a nil context or result is an error naming the function, not a nil-pointer panic.
func TestNilArguments(t *testing.T) {
	//lint:ignore SA1012 a nil context is the misuse under test
	_, err := Train(nil, tinyConfig(t, "bp"), nil, false)
	require.ErrorContains(t, err, "trainer.Train: nil context.Context")
	require.ErrorContains(t, WriteSummary(io.Discard, nil), "trainer.WriteSummary: nil result")
}
