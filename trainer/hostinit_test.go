package trainer

import (
	gocontext "context"
	"math"
	"path/filepath"
	"testing"

	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestOneSeedOneNetworkOnEveryEngine: a run on XLA starts from the network the same run starts from on pure Go
// (the initial values are drawn on the host, whatever the engine): the step-0 alignment of every layer (the
// angle between W and B, ‖B‖/‖W‖, ‖W‖, the angles of δ and of the weight gradient to backprop's) and the step-0
// test loss agree, and so do the losses of the first steps. Before the initial values were drawn on the host each
// engine drew its own (XLA's generator and pure Go's differ), and the angles differed by tens of degrees.
// Rules whose every step is deterministic only: brsf and wm draw fresh random numbers during training, from each
// engine's own generator.
func TestOneSeedOneNetworkOnEveryEngine(t *testing.T) {
	if !xla.TestBackendIsXLA() {
		t.Skip("compares XLA's run with pure Go's: runs in make test's XLA pass (NOWT_TEST_BACKEND=xla:cpu)")
	}
	for _, tc := range []struct{ model, rule string }{{"mlp", "dfa"}, {"cnn", "kp"}} {
		t.Run(tc.model+"/"+tc.rule, func(t *testing.T) {
			records := map[string][]Record{}
			for _, engine := range []string{xla.SpecGo, xla.TestBackendSpec()} {
				c := tinyConfig(t, tc.rule)
				c.Model, c.Backend = tc.model, engine
				c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 1, 4, 4
				_, err := Train(gocontext.Background(), c, nil, false)
				require.NoError(t, err, engine)
				records[engine], err = ReadRecords(filepath.Join(c.OutDir, metricsFileName))
				require.NoError(t, err)
			}
			goRecs, xlaRecs := records[xla.SpecGo], records[xla.TestBackendSpec()]
			require.Len(t, xlaRecs, len(goRecs))
			close := func(what string, want, got *float64, tol float64) {
				t.Helper()
				require.Equal(t, want == nil, got == nil, "%s: measured on one engine only", what)
				if want != nil {
					require.LessOrEqual(t, math.Abs(*got-*want), tol*(1+math.Abs(*want)), "%s: pure Go %g, XLA %g", what, *want, *got)
				}
			}
			start0, start1 := goRecs[0], xlaRecs[0]
			require.Zero(t, start0.Step)
			require.NotEmpty(t, start0.Layers)
			require.Len(t, start1.Layers, len(start0.Layers))
			for i, l := range start0.Layers {
				x := start1.Layers[i]
				close(l.Layer+" angle(W, B) at step 0", l.WeightAngle, x.WeightAngle, 1e-3)
				close(l.Layer+" ‖B‖/‖W‖ at step 0", l.NormRatio, x.NormRatio, 1e-4)
				close(l.Layer+" ‖W‖ at step 0", l.WeightNorm, x.WeightNorm, 1e-4)
				close(l.Layer+" angle of δ at step 0", l.DeltaAngle, x.DeltaAngle, 1e-2)
				close(l.Layer+" angle of the weight gradient at step 0", l.GradientAngle, x.GradientAngle, 1e-2)
			}
			close("test loss at step 0", start0.TestLoss, start1.TestLoss, 1e-4)
			for i := 1; i < len(goRecs); i++ {
				require.Equal(t, goRecs[i].Step, xlaRecs[i].Step)
				close("loss", &goRecs[i].Loss, &xlaRecs[i].Loss, 1e-3)
			}
		})
	}
}
