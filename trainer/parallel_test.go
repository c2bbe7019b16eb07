package trainer

import (
	gocontext "context"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/input"
	"github.com/stretchr/testify/require"
)

// TestDataParallelFeedsGlobalBatches: with data parallelism the dataset yields per-device batches of
// BatchSize/n and GoMLX's accumulator joins n consecutive ones into a global batch. Those joined batches must be
// exactly the one-device run's batches — same examples, order and augmentation — across epoch ends (even when the
// per-device batch count of an epoch is not a multiple of n) and after a resume's Seek. The accumulator itself
// needs several devices (XLA), so this checks what it is fed, on the pure-Go backend's host tensors.
func TestDataParallelFeedsGlobalBatches(t *testing.T) {
	const examples, global = 100, 12
	open := func(batch int) *input.Dataset {
		ds, err := input.Open("synthetic", "examples=100,size=4,channels=3,classes=5", "train", input.Options{
			BatchSize: batch, Seed: 7, Shuffle: true, DropRemainder: true, Augment: true, Workers: 2})
		require.NoError(t, err)
		t.Cleanup(ds.Close)
		return ds
	}
	flat := func(ts []*tensors.Tensor) ([]float32, []int32) {
		return tensors.MustCopyFlatData[float32](ts[0]), tensors.MustCopyFlatData[int32](ts[1])
	}
	single := open(global)
	stepsPerEpoch := single.NumBatches()
	require.Equal(t, examples/global, stepsPerEpoch)
	oneDevice := epochLooper{Dataset: single}
	var want [][]*tensors.Tensor
	for range 3 * stepsPerEpoch {
		_, in, lab, err := oneDevice.Yield()
		require.NoError(t, err)
		want = append(want, []*tensors.Tensor{in[0], lab[0]})
	}

	for _, devices := range []int{2, 3, 4} {
		for _, start := range []int{0, stepsPerEpoch + 3} {
			perDevice := open(global / devices)
			require.Equal(t, stepsPerEpoch, perDevice.NumBatches()/devices, "devices %d", devices)
			require.NoError(t, perDevice.Seek(start/stepsPerEpoch, (start%stepsPerEpoch)*devices))
			looper := epochLooper{Dataset: perDevice, batchesPerEpoch: stepsPerEpoch * devices}
			for step := start; step < len(want); step++ {
				var images []float32
				var labels []int32
				for range devices {
					_, in, lab, err := looper.Yield()
					require.NoError(t, err)
					im, l := flat([]*tensors.Tensor{in[0], lab[0]})
					images, labels = append(images, im...), append(labels, l...)
				}
				wantImages, wantLabels := flat(want[step])
				require.Equal(t, wantLabels, labels, "devices %d, resumed at %d: labels of step %d", devices, start, step)
				require.Equal(t, wantImages, images, "devices %d, resumed at %d: images of step %d", devices, start, step)
			}
		}
	}
}

// TestDevicesErrors: asking for several devices where the backend has one names the fault and the way out;
// -devices -1 (all) on a one-device backend trains on that device.
func TestDevicesErrors(t *testing.T) {
	c := tinyConfig(t, "kp")
	c.Devices = 2
	_, err := Train(gocontext.Background(), c, nil, false)
	require.ErrorContains(t, err, "-devices 2")
	require.ErrorContains(t, err, `backend "go" has no distributed execution`)
	require.ErrorContains(t, err, "-devices 1")

	c = tinyConfig(t, "kp")
	c.Devices, c.BatchSize = 3, 32
	require.ErrorContains(t, c.Validate(), "batch size 32 is not a multiple of the 3 devices")
	c.Devices = -2
	require.ErrorContains(t, c.Validate(), "devices must be -1 (all)")

	c = tinyConfig(t, "kp")
	c.Devices, c.Steps = -1, 4
	c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 4, 4
	res, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	require.Equal(t, 4, res.Steps)
}
