package trainer

import (
	gocontext "context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGradientNormRecords: every record after step 0 holds the mean and the largest gradient norm of the steps
// since the previous one (the mean no larger than the largest, both positive), and the fraction of those steps
// clipped: all of them under a bound far below the norms, none under one far above, absent without a bound. The
// console line shows them.
func TestGradientNormRecords(t *testing.T) {
	for _, tc := range []struct {
		name     string
		clip     float64
		fraction float64 // the clipped fraction in every record; NaN: absent
	}{
		{"no clip", 0, math.NaN()},
		{"clip below every norm", 1e-6, 1},
		{"clip above every norm", 1e6, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(t, "fa")
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery, c.ClipNorm = 8, 4, 8, 8, tc.clip
			var out strings.Builder
			_, err := Train(gocontext.Background(), c, &out, false)
			require.NoError(t, err)
			records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
			require.NoError(t, err)
			var logged int
			for _, r := range records {
				if r.Step == 0 {
					require.Zero(t, r.GradientNormMax, "nothing trained at step 0")
					require.Nil(t, r.ClippedFraction)
					continue
				}
				logged++
				require.Positive(t, r.GradientNorm, "step %d", r.Step)
				require.GreaterOrEqual(t, r.GradientNormMax, r.GradientNorm, "step %d", r.Step)
				if math.IsNaN(tc.fraction) {
					require.Nil(t, r.ClippedFraction, "step %d", r.Step)
				} else {
					require.NotNil(t, r.ClippedFraction, "step %d", r.Step)
					require.Equal(t, tc.fraction, *r.ClippedFraction, "step %d", r.Step)
				}
			}
			require.Equal(t, 2, logged)
			require.Contains(t, out.String(), "|g| ")
			require.Equal(t, !math.IsNaN(tc.fraction), strings.Contains(out.String(), "  clipped "), out.String())
		})
	}
}

// TestNaNErrorMessages: each way a run stops on a bad number names what was bad, at which step, and what to do.
func TestNaNErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  NaNError
		want []string
	}{
		{"loss", NaNError{Step: 7, Loss: math.NaN(), Checkpoint: "ck/checkpoint-n00000005"},
			[]string{"the loss is NaN at step 7", "ck/checkpoint-n00000005", "-resume", "-clip-norm"}},
		{"test loss", NaNError{Step: 8, Loss: math.Inf(1), OnTest: true},
			[]string{"the test loss is +Inf after step 8", "no checkpoint from before it", "-lr"}},
		{"gradient", NaNError{Step: 9, Loss: math.Inf(1), OnGradient: true, LastLoss: 2.5},
			[]string{"the gradient norm is +Inf at step 9", "its loss, 2.5, was finite", "-lr"}},
		{"diverged", NaNError{Step: 30, Loss: 90, Start: 2.3, SetAside: 2},
			[]string{"the loss diverged, 90 at step 30", "2 newer checkpoint(s)", "diverged-", "-divergence-guard=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			for _, want := range tc.want {
				require.Contains(t, msg, want)
			}
		})
	}
}
