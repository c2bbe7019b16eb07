package trainer

import (
	gocontext "context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestResumeBetweenRecordsIsExact: resumed from a checkpoint written between two records (step 6, records every 4
// steps: what Ctrl-C, SIGTERM or a -checkpoint-every that is not a multiple of -log-every leave), a run logs what
// the run never stopped logged, record for record: the record at step 8 averages steps 5–8, not only 7–8. Before
// the checkpoints kept the steps since the last record, its training accuracy and gradient norms differed. The
// checkpoints hold no kernel a step only writes (SS's, feedback.SentKernels): the resumed SS run is exact without.
func TestResumeBetweenRecordsIsExact(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the run's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	for _, rule := range []string{"kp", "wm", "ss"} {
		t.Run(rule, func(t *testing.T) {
			c := tinyConfig(t, rule)
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery, c.KeepCheckpoints = 12, 4, 12, 3, 10
			c.ClipNorm = 1 // the clipped fraction is kept too
			_, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			want, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
			require.NoError(t, err)
			// SS's kernels, which every step writes anew (feedback.SentKernels), stay out of the checkpoints.
			saved, err := os.ReadFile(filepath.Join(c.OutDir, checkpointDirName, fmt.Sprintf(checkpointNameFormat, 6, 6)+checkpoints.JsonNameSuffix))
			require.NoError(t, err)
			require.NotContains(t, string(saved), feedback.SentKernelName)

			// A crash after step 6's checkpoint: those of steps 9 and 12 never written.
			for _, step := range []int{9, 12} {
				files, err := filepath.Glob(filepath.Join(c.OutDir, checkpointDirName, fmt.Sprintf(checkpointNameFormat, step, step)+".*"))
				require.NoError(t, err)
				require.NotEmpty(t, files)
				for _, f := range files {
					require.NoError(t, os.Remove(f))
				}
			}
			res, err := Train(gocontext.Background(), c, nil, true)
			require.NoError(t, err)
			require.Equal(t, c.Steps, res.Steps)
			got, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
			require.NoError(t, err)
			require.Len(t, got, len(want))
			for i, w := range want {
				g := got[i]
				require.Equal(t, w.Step, g.Step)
				if w.Step == 0 {
					continue
				}
				require.Equal(t, w.Loss, g.Loss, "loss at step %d", w.Step)
				require.Equal(t, w.TrainAccuracy, g.TrainAccuracy, "training accuracy at step %d", w.Step)
				require.Equal(t, w.GradientNorm, g.GradientNorm, "mean gradient norm at step %d", w.Step)
				require.Equal(t, w.GradientNormMax, g.GradientNormMax, "largest gradient norm at step %d", w.Step)
				require.Equal(t, w.ClippedFraction, g.ClippedFraction, "clipped fraction at step %d", w.Step)
			}
		})
	}
}

// TestDivergenceCount: a resumed run's divergence guard starts from the count its records up to the checkpoint
// give (it started from zero: a run resumed after two records over 10× its start loss stopped one record later
// than the run never stopped).
func TestDivergenceCount(t *testing.T) {
	records := func(losses ...float64) []Record {
		out := []Record{{Step: 0}}
		for i, l := range losses {
			out = append(out, Record{Step: 5 * (i + 1), Loss: l})
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		earlier        []Record
		start          float64
		grown, lastOne int
	}{
		{"no records", records(), 2.3, 0, 0},
		{"in range", records(2.0, 1.5), 2.3, 0, 10},
		{"two over at the end", records(2.0, 30, 40), 2.3, 2, 5},
		{"over, then back in range", records(30, 2.0, 40), 2.3, 1, 10},
		{"all over", records(30, 40), 2.3, 2, 0},
		{"no starting loss: the first record's", records(2.0, 30), math.NaN(), 1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := guardFromRecords(tc.earlier, tc.start)
			require.Equal(t, tc.grown, g.grown)
			require.Equal(t, tc.lastOne, g.lastFine)
		})
	}
}

// TestPruneOnResume: a run resumed with a lower -keep removes the older checkpoints before it writes a new one,
// keeping the one it loaded (and a newer one the loader could not read, which its step's next checkpoint
// replaces): resumed onto a full disk with -keep 1 it had needed room for a third checkpoint beside two old ones.
func TestPruneOnResume(t *testing.T) {
	dir := t.TempDir()
	var bases []string
	for _, step := range []int{2, 4, 6, 8} {
		base := filepath.Join(dir, fmt.Sprintf(checkpointNameFormat, step, step))
		bases = append(bases, base)
		for _, suffix := range []string{".json", ".bin"} {
			require.NoError(t, os.WriteFile(base+suffix, []byte("{}"), 0o644))
		}
	}
	for _, tc := range []struct {
		keep, left int
		kept       []string
	}{
		{5, 4, bases},
		{2, 3, bases[1:]},
		{1, 2, bases[2:]},
	} {
		n, err := pruneOnResume(dir, bases[2]+".json", tc.keep)
		require.NoError(t, err)
		require.Equal(t, tc.left, n, "keep %d", tc.keep)
		listed, err := listCheckpoints(dir)
		require.NoError(t, err)
		require.Equal(t, tc.kept, listed, "keep %d: step 6 loaded, step 8 unreadable", tc.keep)
	}

	// A whole run: checkpoints at steps 2, 4 and 6 kept; resumed with -keep 1 onto a disk that takes no more.
	if xla.TestBackendIsXLA() {
		return
	}
	c := tinyConfig(t, "bp")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery, c.KeepCheckpoints = 6, 2, 6, 2, 10
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	saveCheckpointFunc = func(*context.Context, string, int64, int) (string, error) {
		return "", errors.New("write checkpoint: no space left on device")
	}
	defer func() { saveCheckpointFunc = saveCheckpoint }()
	c.Steps, c.KeepCheckpoints = 8, 1
	_, err = Train(gocontext.Background(), c, nil, true)
	var full *StorageError
	require.ErrorAs(t, err, &full)
	listed, err := listCheckpoints(filepath.Join(c.OutDir, checkpointDirName))
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(c.OutDir, checkpointDirName, fmt.Sprintf(checkpointNameFormat, 6, 6))}, listed)
}

// TestWallTimeBankedAtCheckpoints: a run adds its wall time to wall_time.json at each checkpoint, not only when
// it ends, so that a process killed outright still counts its time up to its newest checkpoint; the additions
// never count a stretch twice.
func TestWallTimeBankedAtCheckpoints(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("bookkeeping, the same on every engine: run by the pure-Go pass")
	}
	c := tinyConfig(t, "bp")
	c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 6, 2, 6, 2
	var seen []time.Duration // wall_time.json as each checkpoint is written (0: none yet)
	saveCheckpointFunc = func(ctx *context.Context, dir string, step int64, keep int) (string, error) {
		wt, _ := readWallTime(c.OutDir)
		seen = append(seen, wt)
		return saveCheckpoint(ctx, dir, step, keep)
	}
	defer func() { saveCheckpointFunc = saveCheckpoint }()
	began := time.Now()
	_, err := Train(gocontext.Background(), c, nil, false)
	elapsed := time.Since(began)
	require.NoError(t, err)
	require.Len(t, seen, 3, "checkpoints at steps 2, 4 and 6")
	require.Zero(t, seen[0], "a new run has no wall time before its first checkpoint")
	require.Positive(t, seen[1], "the time up to step 2's checkpoint is on disk by step 4's")
	require.Greater(t, seen[2], seen[1])
	total, ok := readWallTime(c.OutDir)
	require.True(t, ok)
	require.GreaterOrEqual(t, total, seen[2])
	require.LessOrEqual(t, total, elapsed, "each stretch counted once")
}
