package trainer

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/pkg/errors"
)

// devicePrefetch hands the training loop batches that are already on the device: while one step runs, the next
// batch is taken from the source and transferred in a goroutine of its own, so that the step does not wait for
// its batch's transfer (on a GPU, 77 MB a ResNet batch of 128 at 224² in float32; docs/perf-gpu.md). One batch is
// in flight at a time, the batches come in the source's order, and a source error is handed over in its turn,
// after which nothing more is read ahead. (GoMLX's datasets.OnDevice does the same transfer but reads ahead from
// the moment it is made, before a resumed run has sought its data, and cannot be stopped: a run's last batch would
// stay in flight, and its reader inside the source, when the run closes the source.)
//
// The source must hand its batches over (train.DatasetCustomOwnership's IsOwnershipTransferred, the default): the
// source's Yield runs while the step uses the batch before, and a source that writes its batches again
// (input.Options.ReuseBatches) reads its earlier batches' tensors in Yield — among them the one the step is
// transferring (a data race, found by go test -race). Not safe for concurrent use: the training loop calls Yield,
// the run calls stop when it is done.
type devicePrefetch struct {
	source  train.Dataset
	backend backends.Backend
	next    chan prefetchedBatch // the batch in flight, when inFlight
	// inFlight is set while a goroutine is taking and transferring the next batch.
	inFlight bool
	stopped  bool
}

// yielded is what one Yield of a train.Dataset returned, but its error.
type yielded struct {
	spec           any
	inputs, labels []*tensors.Tensor
}

// tensors lists the batch's inputs and labels.
func (b *yielded) tensors() []*tensors.Tensor {
	return append(slices.Clone(b.inputs), b.labels...)
}

// prefetchedBatch is one Yield of the source, its tensors on the device.
type prefetchedBatch struct {
	yielded
	err error
}

var _ train.Dataset = (*devicePrefetch)(nil)

// newDevicePrefetch wraps source; nothing is read until the first Yield.
func newDevicePrefetch(backend backends.Backend, source train.Dataset) *devicePrefetch {
	return &devicePrefetch{source: source, backend: backend, next: make(chan prefetchedBatch, 1)}
}

// Name implements train.Dataset.
func (p *devicePrefetch) Name() string { return p.source.Name() }

// Yield implements train.Dataset: the batch taken ahead (taken now at the first call), and the next one started.
func (p *devicePrefetch) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	if p.stopped {
		return nil, nil, nil, errors.New("training batches read after the run stopped reading them")
	}
	if !p.inFlight {
		p.fetch()
	}
	b := <-p.next
	p.inFlight = false
	if b.err == nil {
		p.fetch()
	}
	return b.spec, b.inputs, b.labels, b.err
}

// fetch takes the source's next batch and transfers it to the device in a goroutine of its own.
func (p *devicePrefetch) fetch() {
	p.inFlight = true
	go func() {
		var b prefetchedBatch
		b.spec, b.inputs, b.labels, b.err = p.source.Yield()
		if b.err == nil {
			for _, t := range b.tensors() {
				if err := t.MaterializeOnDevice(p.backend, false, 0); err != nil {
					b.err = errors.WithMessage(err, "transferring a training batch to the device")
					break
				}
			}
		}
		p.next <- b
	}()
}

// drain waits for the batch in flight, if any, and frees it (the source handed it over).
func (p *devicePrefetch) drain() {
	if !p.inFlight {
		return
	}
	b := <-p.next
	p.inFlight = false
	for _, t := range b.tensors() {
		if t != nil {
			_ = t.FinalizeAll() // a batch no step will use: its device and host memory go now
		}
	}
}

// Reset implements train.Dataset: the batch in flight is dropped and the source reset.
func (p *devicePrefetch) Reset() {
	p.drain()
	p.source.Reset()
}

// stop waits for the batch in flight and frees it; Yield then fails. The run calls it before it closes the source,
// so that no goroutine is inside the source's Yield when it does.
func (p *devicePrefetch) stop() {
	p.drain()
	p.stopped = true
}
