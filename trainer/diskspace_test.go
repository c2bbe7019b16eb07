package trainer

import (
	gocontext "context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

func TestSpaceWarning(t *testing.T) {
	for _, tc := range []struct {
		name                string
		free, perCheckpoint uint64
		keep, existing      int
		want                string // "" for no warning
	}{
		{"room for keep + 1", 3_000_000, 1_000_000, 2, 0, ""},
		{"free space unknown", 0, 1_000_000, 2, 0, ""},
		{"room for keep only", 2_500_000, 1_000_000, 2, 0, "warning: /runs/a has 2.5 MB free, and this run's checkpoints take " +
			"about 1.0 MB each (2 kept, and one more while the next is written: 3.0 MB more): the disk may fill before the " +
			"run ends; free space, lower -keep, or choose another -out"},
		{"a ResNet-50 on a small disk", 700_000_000, 300_000_000, 3, 0, "has 700.0 MB free, and this run's checkpoints take about 300.0 MB each (3 kept"},
		// A resumed run's checkpoints already take their room: one more is needed beside them.
		{"resumed, room for one more", 1_500_000, 1_000_000, 2, 2, ""},
		{"resumed with one of two", 1_500_000, 1_000_000, 2, 1, "(2 kept, 1 already written, and one more while the next is written: 2.0 MB more)"},
		{"resumed with more than kept", 500_000, 1_000_000, 1, 3, "(1 kept, 1 already written, and one more while the next is written: 1.0 MB more)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := spaceWarning("/runs/a/", tc.free, tc.perCheckpoint, tc.keep, tc.existing)
			if tc.want == "" {
				require.Empty(t, got)
			} else {
				require.Contains(t, got, tc.want)
			}
		})
	}
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" || runtime.GOOS == "freebsd" {
		require.Positive(t, freeBytes(t.TempDir()), "statfs of a temporary folder")
		require.Zero(t, freeBytes(filepath.Join(t.TempDir(), "missing")), "unknown: no warning")
	}
}

// TestCheckpointBytes: the estimate a fresh run makes from its model's variables (before the optimizer has made
// its velocities) is within 15 % of the checkpoint the run then writes, and a resumed run's is that checkpoint's
// size exactly. Under ss the kernels each step writes anew (feedback.SentKernels) are in the context, not in the
// checkpoint: counted, they put the estimate 50 % over.
func TestCheckpointBytes(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("a checkpoint's size against its estimate, the same on every backend: the pure-Go pass runs it")
	}
	for _, rule := range []string{"fa", "kp", "ss"} {
		t.Run(rule, func(t *testing.T) {
			c := tinyConfig(t, rule)
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 2, 2, 2, 2
			r, err := setup(c, nil, "", true)
			require.NoError(t, err)
			_, err = r.align() // builds the model's variables, as trainRun does before it estimates
			require.NoError(t, err)
			estimate := checkpointBytes(r.ctx, "", c.Momentum > 0)
			r.close()

			_, err = Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			bases, err := listCheckpoints(filepath.Join(c.OutDir, checkpointDirName))
			require.NoError(t, err)
			require.NotEmpty(t, bases)
			var actual uint64
			for _, suffix := range []string{checkpoints.BinDataSuffix, checkpoints.JsonNameSuffix} {
				st, err := os.Stat(bases[len(bases)-1] + suffix)
				require.NoError(t, err)
				actual += uint64(st.Size())
			}
			t.Logf("estimate %d, checkpoint %d bytes", estimate, actual)
			require.InEpsilon(t, float64(actual), float64(estimate), 0.15, "estimate %d, checkpoint %d bytes", estimate, actual)
			require.Equal(t, actual, checkpointBytes(r.ctx, bases[len(bases)-1], true))
			require.Equal(t, actual, checkpointBytes(r.ctx, bases[len(bases)-1]+checkpoints.JsonNameSuffix, true))
		})
	}
}
