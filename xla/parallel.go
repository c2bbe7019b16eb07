package xla

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/pkg/errors"
)

// BatchAxis is the name of the device-mesh axis DataParallel splits the batch over.
const BatchAxis = "batch"

// DataParallel is the set-up for data-parallel training over several devices of one backend with GoMLX's
// AutoSharding strategy: inputs and labels are split along their first (batch) axis, one slice per device;
// variables (weights, optimizer state, batch-norm averages) are replicated; XLA (Shardy) partitions the
// single-device program and inserts the all-reduces, so gradients and batch statistics are over the whole
// global batch, as on one device. See the package documentation for how a trainer uses it:
//
//	dp, err := xla.NewDataParallel(backend, 0)
//	perDevice, err := dp.PerDeviceBatch(globalBatch) // the source dataset yields batches of this size
//	specs := []*distributed.ShardingSpec{dp.BatchSharding}
//	ds, err := datasets.NewDistributedAccumulator(backend, source, dp.Strategy, specs, specs, dp.DeviceAssignment)
//	_, err = train.NewLoop(trainer).RunSteps(ds, steps) // runs distributed because ds is a train.DistributedDataset
type DataParallel struct {
	// Strategy is distributed.AutoSharding.
	Strategy distributed.Strategy
	// Mesh is a 1-D device mesh with one axis, BatchAxis, of NumDevices devices.
	Mesh *distributed.DeviceMesh
	// BatchSharding shards axis 0 of a tensor over Mesh (other axes replicated); used for inputs and labels.
	BatchSharding *distributed.ShardingSpec
	// DeviceAssignment is the devices used, 0..NumDevices-1.
	DeviceAssignment []backends.DeviceNum
}

// NewDataParallel returns the data-parallel set-up for the first numDevices devices of b (0 means all).
// It fails if b is not the XLA backend (GoMLX's pure-Go backend has one device and no distributed execution),
// or if fewer than 2 devices would be used: with one device, train normally.
func NewDataParallel(b backends.Backend, numDevices int) (*DataParallel, error) {
	if b == nil {
		return nil, errors.New("data-parallel set-up: nil backend")
	}
	have := NumDevices(b)
	if numDevices <= 0 {
		numDevices = have
	}
	if !hasDistributedExecution(b) {
		return nil, errors.Errorf("data-parallel set-up: backend %q has no distributed execution, only \"xla\" has "+
			"(on one machine, \"xla:cpu,devices=<n>\" exposes n host devices)", b.String())
	}
	if numDevices > have {
		return nil, errors.Errorf("data-parallel set-up: %d devices asked, backend %q has %d",
			numDevices, b.String(), have)
	}
	dp, err := newDataParallel(numDevices)
	if err != nil {
		return nil, errors.WithMessagef(err, "data-parallel set-up on backend %q", b.String())
	}
	return dp, nil
}

// newDataParallel builds the mesh and sharding for numDevices devices, without a backend.
func newDataParallel(numDevices int) (*DataParallel, error) {
	if numDevices < 2 {
		return nil, errors.Errorf("data parallelism needs at least 2 devices, got %d", numDevices)
	}
	mesh, err := distributed.NewDeviceMesh([]int{numDevices}, []string{BatchAxis})
	if err != nil {
		return nil, errors.WithMessage(err, "creating the device mesh")
	}
	spec, err := distributed.NewShardingSpec(mesh, distributed.AxisSpec{BatchAxis})
	if err != nil {
		return nil, errors.WithMessage(err, "creating the batch sharding spec")
	}
	assignment := make([]backends.DeviceNum, numDevices)
	for i := range assignment {
		assignment[i] = backends.DeviceNum(i)
	}
	return &DataParallel{Strategy: distributed.AutoSharding, Mesh: mesh, BatchSharding: spec,
		DeviceAssignment: assignment}, nil
}

// NumDevices is the number of devices the batch is split over.
func (dp *DataParallel) NumDevices() int { return len(dp.DeviceAssignment) }

// PerDeviceBatch returns globalBatch / NumDevices, the batch size the per-device source dataset given to
// datasets.NewDistributedAccumulator must yield (it gathers NumDevices such batches into one global batch). It fails if globalBatch is not a positive multiple of NumDevices.
func (dp *DataParallel) PerDeviceBatch(globalBatch int) (int, error) {
	n := dp.NumDevices()
	if globalBatch <= 0 || globalBatch%n != 0 {
		return 0, errors.Errorf("batch size %d is not a positive multiple of the %d devices", globalBatch, n)
	}
	return globalBatch / n, nil
}
