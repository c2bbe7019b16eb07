package trainer

import (
	"io"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/datasets"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/nowt-ml/nowt/xla"
)

// distributedBatches is GoMLX's distributed accumulator (the global batches of data parallelism, sharded over
// the devices) with a way to stop it. The accumulator prepares the next batch in a goroutine of its own — taking
// per-device batches from the source and moving them onto the devices — as soon as it hands one over, and has no
// way to stop that goroutine or to wait for it: a run that finalized its backend while it was moving a shard
// crashed (SIGSEGV in the PJRT plugin's PJRT_Device_IsAddressable; `nowt bench -devices 2` on xla:cpu crashed at
// its end in 4 runs of 6). stop ends the source and waits for that goroutine.
type distributedBatches struct {
	*datasets.DistributedAccumulator
	source *stoppableSource
	// inFlight: the accumulator's goroutine is preparing a batch (it starts one when it is created and after
	// each batch it hands over; one that hands over an error, the end of the source included, starts none).
	inFlight bool
}

var _ train.DistributedDataset = (*distributedBatches)(nil)

// newDistributedBatches returns the global batches of dp made from source's per-device batches.
func newDistributedBatches(backend backends.Backend, source train.Dataset, dp *xla.DataParallel) (*distributedBatches, error) {
	stoppable := &stoppableSource{Dataset: source}
	specs := []*distributed.ShardingSpec{dp.BatchSharding}
	acc, err := datasets.NewDistributedAccumulator(backend, stoppable, dp.Strategy, specs, specs, dp.DeviceAssignment)
	if err != nil {
		return nil, err
	}
	return &distributedBatches{DistributedAccumulator: acc, source: stoppable, inFlight: true}, nil
}

// DistributedYield implements train.DistributedDataset.
func (d *distributedBatches) DistributedYield() (spec any, inputs, labels []*distributed.Tensor, err error) {
	spec, inputs, labels, err = d.DistributedAccumulator.DistributedYield()
	d.inFlight = err == nil
	return spec, inputs, labels, err
}

// Reset implements train.Dataset: the accumulator's own Reset starts another goroutine without waiting for the
// one in flight, so that one is stopped first.
func (d *distributedBatches) Reset() {
	d.stop()
	d.source.stopped.Store(false)
	d.DistributedAccumulator.Reset()
	d.inFlight = true
}

// stop ends the source (its Yield returns io.EOF from now on) and takes what the accumulator's goroutine was
// preparing, freeing it on the devices, until the goroutine hands over the end: after stop no goroutine of the
// accumulator uses the source or the devices, and the backend can be finalized. Call it from the goroutine that
// takes the batches.
func (d *distributedBatches) stop() {
	d.source.stopped.Store(true)
	for d.inFlight {
		_, inputs, labels, err := d.DistributedYield()
		for _, t := range append(inputs, labels...) {
			_ = t.Finalize()
		}
		if err != nil {
			break
		}
	}
}

// stoppableSource is a dataset that can be made to end: once stopped, Yield returns io.EOF without reading it.
type stoppableSource struct {
	train.Dataset
	stopped atomic.Bool
}

// Yield implements train.Dataset.
func (s *stoppableSource) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	if s.stopped.Load() {
		return nil, nil, nil, io.EOF
	}
	return s.Dataset.Yield()
}
