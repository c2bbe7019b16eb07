package trainer

import (
	gocontext "context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/stretchr/testify/require"
)

// TestDeferredFeedbackMatchesEveryStep: with its update deferred, the first layer's KP B (which no step reads)
// stays as it was while the steps run — W and the second layer's B go exactly as when every B is updated at
// every step — and, once brought up to date, equals the B updated at every step to rounding, through a change of
// rate and a second deferral after the first settlement, under every setting of kpOptimizerCases. Only the first
// layer's B is deferred.
func TestDeferredFeedbackMatchesEveryStep(t *testing.T) {
	for _, c := range kpOptimizerCases {
		t.Run(c.name, func(t *testing.T) {
			everyStep := newKPNet(t, c.params, &c.opt, 0.05)
			deferring := c.opt
			deferring.deferUnread = true
			deferred := newKPNet(t, c.params, &deferring, 0.05)
			settle := context.MustNewExec(deferred.backend, deferred.ctx, func(ctx *context.Context, g *Graph) *Node {
				require.Equal(t, 1, settleDeferredGraph(ctx, g), "one deferred B")
				return Scalar(g, dtypes.Float64, 0)
			})
			value := func(v *context.Variable) []float64 { return tensors.MustCopyFlatData[float64](v.MustValue()) }
			first, second := deferred.layers[0], deferred.layers[1]
			settledB := value(first.Feedback)
			for step := 1; step <= 30; step++ {
				if step == 15 { // a schedule's change of rate
					setRate(t, 0.2, everyStep, deferred)
				}
				everyStep.step()
				deferred.step()
				for i, l := range everyStep.layers {
					require.Equal(t, value(l.Weights), value(deferred.layers[i].Weights), "step %d: W of %s", step, l.Scope)
				}
				require.Equal(t, value(everyStep.layers[1].Feedback), value(second.Feedback), "step %d: the second layer's B", step)
				if step == 10 || step == 30 {
					settle.MustExec()
					want, got := value(everyStep.layers[0].Feedback), value(first.Feedback)
					require.NotEqual(t, settledB, got, "step %d: B brought up to date", step)
					for j := range want {
						require.InDelta(t, want[j], got[j], 1e-12*math.Max(1, math.Abs(want[j])), "step %d: first layer's B [%d]", step, j)
					}
					settledB = got
				} else {
					require.Equal(t, settledB, value(first.Feedback), "step %d: the first layer's B is not written", step)
				}
			}
			var state []string
			for _, v := range deferralState(deferred.ctx) {
				state = append(state, v.Scope()+"/"+v.Name())
			}
			require.ElementsMatch(t, []string{
				velocityScope + first.Feedback.Scope() + "/" + first.Feedback.Name() + deferredWeightsSuffix,
				velocityScope + first.Feedback.Scope() + "/" + first.Feedback.Name() + deferredFactorSuffix,
			}, state)
		})
	}
}

// TestDeferredFeedbackTrainsAsEveryStep: a KP run whose first layer's B is brought up to date only where it is
// read (the alignment metrics, the checkpoints) logs the same losses, accuracies, gradient norms and alignment as
// the run that updates it at every step, but for what the first layer's B gives to rounding (its angles within
// 1e-3°, ‖B‖/‖W‖ within 1e-5); resumed
// from its middle checkpoint it logs the same records again, bit for bit; its checkpoints hold no deferral
// state.
func TestDeferredFeedbackTrainsAsEveryStep(t *testing.T) {
	deferred := tinyConfig(t, "kp")
	everyStep := deferred
	everyStep.OutDir, everyStep.noDeferredFeedback = t.TempDir(), true
	logs := map[string][]Record{}
	for name, c := range map[string]Config{"deferred": deferred, "every step": everyStep} {
		_, err := Train(gocontext.Background(), c, nil, false)
		require.NoError(t, err, name)
		logs[name], err = ReadRecords(filepath.Join(c.OutDir, metricsFileName))
		require.NoError(t, err, name)
		for i := range logs[name] {
			logs[name][i].ImagesPerSecond = 0 // the one thing measured, not computed
		}
	}
	// The deferred run's records as logged, for its resumed run below (the comparison clears some of them).
	uninterrupted, err := ReadRecords(filepath.Join(deferred.OutDir, metricsFileName))
	require.NoError(t, err)
	want, got := logs["every step"], logs["deferred"]
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Len(t, g.Layers, 2)
		// What the first layer's B gives: its angle to Wᵀ, its signal's angle to backprop's, ‖B‖/‖W‖.
		gl, wl := &g.Layers[0], &w.Layers[0]
		for _, m := range []struct {
			name      string
			want, got **float64
			delta     float64
		}{
			{"weight angle", &wl.WeightAngle, &gl.WeightAngle, 1e-3},
			{"delta angle", &wl.DeltaAngle, &gl.DeltaAngle, 1e-3},
			{"norm ratio", &wl.NormRatio, &gl.NormRatio, 1e-5},
		} {
			if *m.want == nil {
				require.Nil(t, *m.got, "step %d: the first layer's %s", w.Step, m.name)
				continue
			}
			require.NotNil(t, *m.got, "step %d: the first layer's %s", w.Step, m.name)
			require.InDelta(t, **m.want, **m.got, m.delta, "step %d: the first layer's %s", w.Step, m.name)
			*m.want, *m.got = nil, nil
		}
		require.Equal(t, w, g, "step %d: all else", w.Step)
	}

	// Resumed from its middle checkpoint (16 of 32 steps), the deferred run logs the same records.
	for _, step := range []int{24, 32} {
		files, err := filepath.Glob(filepath.Join(deferred.OutDir, checkpointDirName, fmt.Sprintf(checkpointNameFormat, step, step)+".*"))
		require.NoError(t, err)
		for _, f := range files {
			require.NoError(t, os.Remove(f))
		}
	}
	_, err = Train(gocontext.Background(), deferred, nil, true)
	require.NoError(t, err)
	resumed, err := ReadRecords(filepath.Join(deferred.OutDir, metricsFileName))
	require.NoError(t, err)
	for i := range resumed {
		resumed[i].ImagesPerSecond, uninterrupted[i].ImagesPerSecond = 0, 0
	}
	require.Equal(t, uninterrupted, resumed, "the resumed run's records")

	metas, err := filepath.Glob(filepath.Join(deferred.OutDir, checkpointDirName, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, metas)
	for _, m := range metas {
		meta, err := os.ReadFile(m)
		require.NoError(t, err)
		require.True(t, strings.Contains(string(meta), feedback.FeedbackName), "%s holds B", m)
		require.False(t, strings.Contains(string(meta), "_deferred_"), "%s holds no deferral state", m)
	}
}
