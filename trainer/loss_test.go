package trainer

import (
	gocontext "context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// smoothedLossReference is the label-smoothed cross-entropy of logits [batch][classes] in plain Go, averaged over
// the batch, and its gradient with respect to the logits, (softmax − t)/batch with t = (1−ε)·onehot + ε/K.
func smoothedLossReference(logits [][]float64, labels []int32, smoothing float64) (loss float64, grad [][]float64) {
	grad = make([][]float64, len(logits))
	for i, z := range logits {
		k := float64(len(z))
		zMax := math.Inf(-1)
		for _, v := range z {
			zMax = math.Max(zMax, v)
		}
		var sum float64
		for _, v := range z {
			sum += math.Exp(v - zMax)
		}
		logZ := zMax + math.Log(sum)
		grad[i] = make([]float64, len(z))
		for c, v := range z {
			target := smoothing / k
			if c == int(labels[i]) {
				target += 1 - smoothing
			}
			loss -= target * (v - logZ)
			grad[i][c] = (math.Exp(v-logZ) - target) / float64(len(logits))
		}
	}
	return loss / float64(len(logits)), grad
}

// TestLabelSmoothing: the softmax loss with label smoothing ε against the plain-Go cross-entropy with the
// smoothed target, value and gradient with respect to the logits, in a training graph; in an evaluation graph
// (the test set's, the alignment's) the same loss function gives the plain cross-entropy, as with ε = 0.
func TestLabelSmoothing(t *testing.T) {
	backend, err := xla.New(xla.TestBackendSpec(), nil)
	require.NoError(t, err)
	defer backend.Finalize()
	rng := rand.New(rand.NewPCG(3, 4))
	const batch, classes = 6, 5
	logits := make([][]float64, batch)
	labels := make([][]int32, batch)
	flatLabels := make([]int32, batch)
	for i := range logits {
		logits[i] = make([]float64, classes)
		for c := range logits[i] {
			logits[i][c] = 4 * rng.NormFloat64() // margins large enough for the smoothing to matter
		}
		flatLabels[i] = int32(rng.IntN(classes))
		labels[i] = []int32{flatLabels[i]}
	}
	for _, tc := range []struct {
		name      string
		smoothing float64
		training  bool
		want      float64 // the ε the loss must be computed with
	}{
		{"none, training", 0, true, 0},
		{"0.1, training", 0.1, true, 0.1},
		{"0.5, training", 0.5, true, 0.5},
		{"0.1, evaluation", 0.1, false, 0},
		{"0.5, evaluation", 0.5, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.New()
			loss, err := lossFn("softmax", tc.smoothing, ctx)
			require.NoError(t, err)
			outs := context.MustExecOnceN(backend, ctx, func(ctx *context.Context, z, y *Node) []*Node {
				ctx.SetTraining(z.Graph(), tc.training)
				l := loss([]*Node{y}, []*Node{z})
				return []*Node{l, Gradient(l, z)[0]}
			}, logits, labels)
			wantLoss, wantGrad := smoothedLossReference(logits, flatLabels, tc.want)
			require.InDelta(t, wantLoss, tensors.ToScalar[float64](outs[0]), 1e-12)
			gotGrad := outs[1].Value().([][]float64)
			for i := range wantGrad {
				require.InDeltaSlice(t, wantGrad[i], gotGrad[i], 1e-12, "example %d", i)
			}
			if tc.want == 0 {
				return
			}
			// Not the plain cross-entropy: the margins above make the two differ by far more than the tolerance.
			plain, _ := smoothedLossReference(logits, flatLabels, 0)
			require.Greater(t, math.Abs(plain-wantLoss), 0.1)
		})
	}
	_, err = lossFn("sigmoid", 0.1, context.New())
	require.ErrorContains(t, err, `label smoothing 0.1 applies to the softmax loss, not to "sigmoid"`)
}

// TestLabelSmoothingRun: a run trained with label smoothing ε logs training losses that are the smoothed
// cross-entropy — never under the entropy of the smoothed target, its minimum — and a test loss that is the plain
// cross-entropy (under that floor once the net has learned), the same as its checkpoint's evaluation.
func TestLabelSmoothingRun(t *testing.T) {
	c := tinyConfig(t, "bp")
	c.LabelSmoothing = 0.5 // test loss about 1.4 nats after the 32 steps, training losses 1.9–2.2
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
	require.NoError(t, err)
	const classes = 10
	high, low := 1-c.LabelSmoothing+c.LabelSmoothing/classes, c.LabelSmoothing/classes
	floor := -high*math.Log(high) - (classes-1)*low*math.Log(low) // 1.68 nats at ε = 0.5
	var trainLosses int
	var testLoss float64
	for _, r := range records {
		if r.Step > 0 {
			require.GreaterOrEqual(t, r.Loss, floor-1e-5, "step %d: a smoothed loss", r.Step)
			trainLosses++
		}
		if r.TestLoss != nil {
			testLoss = *r.TestLoss
		}
	}
	require.Positive(t, trainLosses)
	require.Less(t, testLoss, floor, "the test loss is the plain cross-entropy, under the smoothed loss's minimum")
	evaluated, err := EvaluateWith(c.OutDir, EvalOptions{}, nil)
	require.NoError(t, err)
	require.InDelta(t, testLoss, evaluated.TestLoss, 1e-5)
}
