// Package virtualmesh is a GoMLX backend with several virtual devices on one CPU, for running and testing
// data-parallel code where there is only one device: it executes GoMLX's distributed AutoSharding programs
// with the semantics XLA gives them, by gathering each sharded input's per-device shards into the global
// array, running the program once on an inner (pure-Go) backend, and handing every device its shard of each
// output (the whole output where it is replicated).
//
// What it checks is everything around the partitioner — how a program's inputs are split over devices and
// its outputs collected, replicated variables updated and merged, per-device batches assembled — not XLA's
// partitioning itself, nor speed: the devices take turns on the same cores. nowt selects it with
// -backend virtual:<n> (see package xla).
//
// Only AutoSharding programs are supported (SPMD programs need cross-device collectives), with the default
// device assignment.
package virtualmesh

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/pkg/errors"
)

// BackendName is the Name of a virtual-mesh backend.
const BackendName = "virtual"

// Backend is a backend of NumDevices virtual devices over one inner backend, which holds every buffer and
// runs every program. Its methods not written here are the inner backend's.
type Backend struct {
	backends.Backend
	numDevices int
}

// New returns a backend with numDevices (≥ 1) virtual devices over inner, a one-device backend such as
// GoMLX's pure-Go backend.
func New(inner backends.Backend, numDevices int) (*Backend, error) {
	if inner == nil {
		return nil, errors.New("virtual mesh: nil inner backend")
	}
	if numDevices < 1 {
		return nil, errors.Errorf("virtual mesh: number of devices must be at least 1, got %d", numDevices)
	}
	if inner.NumDevices() != 1 {
		return nil, errors.Errorf("virtual mesh: inner backend %q has %d devices, want 1", inner.Name(), inner.NumDevices())
	}
	return &Backend{Backend: inner, numDevices: numDevices}, nil
}

// Name returns BackendName.
func (b *Backend) Name() string { return BackendName }

// String returns BackendName.
func (b *Backend) String() string { return BackendName }

// Description says how many virtual devices run on which backend.
func (b *Backend) Description() string {
	return fmt.Sprintf("%d virtual devices on %s", b.numDevices, b.Backend.Description())
}

// NumDevices returns the number of virtual devices.
func (b *Backend) NumDevices() int { return b.numDevices }

// DeviceDescription names a virtual device.
func (b *Backend) DeviceDescription(deviceNum backends.DeviceNum) string {
	return fmt.Sprintf("virtual device #%d", deviceNum)
}

// Inner returns the backend that holds the buffers and runs the programs.
func (b *Backend) Inner() backends.Backend { return b.Backend }

// buffer is an inner buffer with the virtual device it belongs to.
type buffer struct {
	inner  backends.Buffer
	device backends.DeviceNum
}

func (b *Backend) unwrap(buf backends.Buffer) (*buffer, error) {
	vb, ok := buf.(*buffer)
	if !ok || vb == nil {
		return nil, errors.Errorf("virtual mesh: buffer %T is not a %q backend buffer", buf, BackendName)
	}
	return vb, nil
}

func (b *Backend) checkDevice(deviceNum backends.DeviceNum) error {
	if deviceNum < 0 || int(deviceNum) >= b.numDevices {
		return errors.Errorf("virtual mesh: device %d does not exist (%d devices)", deviceNum, b.numDevices)
	}
	return nil
}

// BufferFinalize frees the buffer.
func (b *Backend) BufferFinalize(buf backends.Buffer) error {
	vb, err := b.unwrap(buf)
	if err != nil {
		return err
	}
	return b.Backend.BufferFinalize(vb.inner)
}

// BufferShape returns the buffer's shape.
func (b *Backend) BufferShape(buf backends.Buffer) (shapes.Shape, error) {
	vb, err := b.unwrap(buf)
	if err != nil {
		return shapes.Shape{}, err
	}
	return b.Backend.BufferShape(vb.inner)
}

// BufferDeviceNum returns the virtual device of the buffer.
func (b *Backend) BufferDeviceNum(buf backends.Buffer) (backends.DeviceNum, error) {
	vb, err := b.unwrap(buf)
	if err != nil {
		return 0, err
	}
	return vb.device, nil
}

// BufferToFlatData copies the buffer's values into flat.
func (b *Backend) BufferToFlatData(buf backends.Buffer, flat any) error {
	vb, err := b.unwrap(buf)
	if err != nil {
		return err
	}
	return b.Backend.BufferToFlatData(vb.inner, flat)
}

// BufferFromFlatData creates a buffer on a virtual device from flat values.
func (b *Backend) BufferFromFlatData(deviceNum backends.DeviceNum, flat any, shape shapes.Shape) (backends.Buffer, error) {
	if err := b.checkDevice(deviceNum); err != nil {
		return nil, err
	}
	inner, err := b.Backend.BufferFromFlatData(0, flat, shape)
	if err != nil {
		return nil, err
	}
	return &buffer{inner: inner, device: deviceNum}, nil
}

// NewSharedBuffer creates a buffer on a virtual device whose values the caller may write directly.
func (b *Backend) NewSharedBuffer(deviceNum backends.DeviceNum, shape shapes.Shape) (backends.Buffer, any, error) {
	if err := b.checkDevice(deviceNum); err != nil {
		return nil, nil, err
	}
	inner, flat, err := b.Backend.NewSharedBuffer(0, shape)
	if err != nil {
		return nil, nil, err
	}
	return &buffer{inner: inner, device: deviceNum}, flat, nil
}

// BufferData returns the buffer's values, shared.
func (b *Backend) BufferData(buf backends.Buffer) (any, error) {
	vb, err := b.unwrap(buf)
	if err != nil {
		return nil, err
	}
	return b.Backend.BufferData(vb.inner)
}

// BufferCopyToDevice copies the buffer to another virtual device.
func (b *Backend) BufferCopyToDevice(source backends.Buffer, deviceNum backends.DeviceNum) (backends.Buffer, error) {
	if err := b.checkDevice(deviceNum); err != nil {
		return nil, err
	}
	vb, err := b.unwrap(source)
	if err != nil {
		return nil, err
	}
	inner, err := b.copyInner(vb.inner)
	if err != nil {
		return nil, err
	}
	return &buffer{inner: inner, device: deviceNum}, nil
}

// copyInner copies an inner buffer through the host.
func (b *Backend) copyInner(src backends.Buffer) (backends.Buffer, error) {
	t, err := b.toLocal(src)
	if err != nil {
		return nil, err
	}
	return b.fromLocal(t)
}

// toLocal copies an inner buffer into a host tensor.
func (b *Backend) toLocal(buf backends.Buffer) (*tensors.Tensor, error) {
	shape, err := b.Backend.BufferShape(buf)
	if err != nil {
		return nil, err
	}
	t := tensors.FromShape(shape)
	var copyErr error
	if err := t.MutableFlatData(func(flat any) { copyErr = b.Backend.BufferToFlatData(buf, flat) }); err != nil {
		return nil, err
	}
	return t, copyErr
}

// fromLocal copies a host tensor into a new inner buffer.
func (b *Backend) fromLocal(t *tensors.Tensor) (backends.Buffer, error) {
	var buf backends.Buffer
	var copyErr error
	if err := t.ConstFlatData(func(flat any) { buf, copyErr = b.Backend.BufferFromFlatData(0, flat, t.Shape()) }); err != nil {
		return nil, err
	}
	return buf, copyErr
}

// Builder returns a builder whose programs run on the virtual devices.
func (b *Backend) Builder(name string) backends.Builder {
	return &builder{Builder: b.Backend.Builder(name), backend: b}
}

// builder records the distribution set-up and parameter shardings of a program; the inner builder builds it.
type builder struct {
	backends.Builder
	backend *Backend
	meshes  []backends.Mesh
	devices []backends.DeviceNum
	params  []*backends.ShardingSpec
}

// Parameter records the parameter's sharding and creates it, unsharded (global shape), in the inner builder.
func (bld *builder) Parameter(name string, shape shapes.Shape, sharding *backends.ShardingSpec) (backends.Op, error) {
	bld.params = append(bld.params, sharding)
	return bld.Builder.Parameter(name, shape, nil)
}

// DistributedSPMD is not supported: SPMD programs need cross-device collectives.
func (bld *builder) DistributedSPMD(numDevices int) error {
	return errors.Errorf("virtual mesh: SPMD programs are not supported (only AutoSharding), asked for %d devices", numDevices)
}

// DistributedAutoSharding records the meshes.
func (bld *builder) DistributedAutoSharding(meshes ...backends.Mesh) error {
	if len(meshes) == 0 {
		return errors.New("virtual mesh: AutoSharding needs at least one mesh")
	}
	for _, m := range meshes {
		if n := meshSize(m); n > bld.backend.numDevices {
			return errors.Errorf("virtual mesh: mesh %q has %d devices, the backend %d", m.Name, n, bld.backend.numDevices)
		}
		for i, d := range m.LogicalDeviceAssignment {
			if d != i {
				return errors.Errorf("virtual mesh: mesh %q: only the default logical device assignment is supported", m.Name)
			}
		}
	}
	bld.meshes = slices.Clone(meshes)
	return nil
}

// DeviceAssignment records the devices the program runs on, which must be 0, 1, ..., n−1.
func (bld *builder) DeviceAssignment(devices ...backends.DeviceNum) error {
	for i, d := range devices {
		if d != backends.DeviceNum(i) {
			return errors.Errorf("virtual mesh: only the device assignment 0..n-1 is supported, got %v", devices)
		}
	}
	if len(devices) > bld.backend.numDevices {
		return errors.Errorf("virtual mesh: %d devices assigned, the backend has %d", len(devices), bld.backend.numDevices)
	}
	bld.devices = slices.Clone(devices)
	return nil
}

// Compile compiles the program on the inner backend, keeping the input and output shardings.
func (bld *builder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	exe, err := bld.Builder.Compile(outputs, nil)
	if err != nil {
		return nil, err
	}
	e := &executable{Executable: exe, backend: bld.backend, params: bld.params, outputs: shardings, numDevices: 1}
	if len(bld.meshes) > 0 {
		e.numDevices = len(bld.devices)
		if e.numDevices == 0 {
			e.numDevices = meshSize(bld.meshes[0])
		}
		for _, m := range bld.meshes {
			mesh, err := distributed.NewDeviceMesh(m.AxesSizes, m.AxesNames)
			if err != nil {
				return nil, errors.WithMessagef(err, "virtual mesh: mesh %q", m.Name)
			}
			mesh.SetName(m.Name)
			e.meshes = append(e.meshes, mesh)
		}
	}
	return e, nil
}

func meshSize(m backends.Mesh) int {
	n := 1
	for _, size := range m.AxesSizes {
		n *= size
	}
	return n
}

// executable runs a program compiled by the inner backend on the virtual devices.
type executable struct {
	backends.Executable
	backend    *Backend
	params     []*backends.ShardingSpec // per parameter, nil: replicated
	outputs    []*backends.ShardingSpec // per output, nil or missing: replicated
	meshes     []*distributed.DeviceMesh
	numDevices int
}

// Execute runs the program. Inputs (and outputs) are ordered device first: all of device 0's, then device 1's,
// and so on. A sharded input is the concatenation of its shards; a replicated one is device 0's copy.
func (e *executable) Execute(inputs []backends.Buffer, donate []bool, defaultDevice backends.DeviceNum) ([]backends.Buffer, error) {
	b := e.backend
	if len(e.meshes) == 0 { // A one-device program.
		unwrapped := make([]backends.Buffer, len(inputs))
		for i, in := range inputs {
			vb, err := b.unwrap(in)
			if err != nil {
				return nil, err
			}
			unwrapped[i] = vb.inner
		}
		outs, err := e.Executable.Execute(unwrapped, donate, 0)
		if err != nil {
			return nil, err
		}
		wrapped := make([]backends.Buffer, len(outs))
		for i, out := range outs {
			wrapped[i] = &buffer{inner: out, device: defaultDevice}
		}
		return wrapped, nil
	}

	numParams := len(e.params)
	if len(inputs) != numParams*e.numDevices {
		return nil, errors.Errorf("virtual mesh: program takes %d parameters on each of %d devices, got %d buffers",
			numParams, e.numDevices, len(inputs))
	}
	globals := make([]backends.Buffer, numParams)
	var merged []backends.Buffer // buffers made here, freed after the run
	for p := range numParams {
		spec, err := e.shardingSpec(e.params[p])
		if err != nil {
			return nil, errors.WithMessagef(err, "parameter %d", p)
		}
		first, err := b.unwrap(inputs[p])
		if err != nil {
			return nil, err
		}
		if spec == nil || spec.IsReplicated() {
			globals[p] = first.inner
			continue
		}
		shards := make([]*tensors.Tensor, e.numDevices)
		for d := range e.numDevices {
			vb, err := b.unwrap(inputs[d*numParams+p])
			if err != nil {
				return nil, err
			}
			if shards[d], err = b.toLocal(vb.inner); err != nil {
				return nil, err
			}
		}
		dt, err := distributed.NewTensor(spec, shards)
		if err != nil {
			return nil, errors.WithMessagef(err, "virtual mesh: parameter %d", p)
		}
		whole, err := dt.Merge()
		if err != nil {
			return nil, errors.WithMessagef(err, "virtual mesh: merging parameter %d", p)
		}
		if globals[p], err = b.fromLocal(whole); err != nil {
			return nil, err
		}
		merged = append(merged, globals[p])
	}
	outs, err := e.Executable.Execute(globals, nil, 0)
	if err != nil {
		return nil, err
	}
	for _, buf := range merged {
		_ = b.Backend.BufferFinalize(buf)
	}
	for i, in := range inputs {
		if i < len(donate) && donate[i] {
			if vb, err := b.unwrap(in); err == nil {
				_ = b.Backend.BufferFinalize(vb.inner)
			}
		}
	}

	results := make([]backends.Buffer, len(outs)*e.numDevices)
	for o, out := range outs {
		var outSpec *backends.ShardingSpec
		if o < len(e.outputs) {
			outSpec = e.outputs[o]
		}
		spec, err := e.shardingSpec(outSpec)
		if err != nil {
			return nil, errors.WithMessagef(err, "output %d", o)
		}
		if spec == nil || spec.IsReplicated() {
			results[o] = &buffer{inner: out, device: 0}
			for d := 1; d < e.numDevices; d++ {
				c, err := b.copyInner(out)
				if err != nil {
					return nil, err
				}
				results[d*len(outs)+o] = &buffer{inner: c, device: backends.DeviceNum(d)}
			}
			continue
		}
		whole, err := b.toLocal(out)
		if err != nil {
			return nil, err
		}
		_ = b.Backend.BufferFinalize(out)
		dt, err := distributed.ShardTensor(spec, whole)
		if err != nil {
			return nil, errors.WithMessagef(err, "virtual mesh: sharding output %d", o)
		}
		for d, shard := range dt.Shards() {
			inner, err := b.fromLocal(shard)
			if err != nil {
				return nil, err
			}
			results[d*len(outs)+o] = &buffer{inner: inner, device: backends.DeviceNum(d)}
		}
	}
	return results, nil
}

// shardingSpec turns a backend sharding spec into a distributed one on the program's mesh (nil stays nil).
func (e *executable) shardingSpec(s *backends.ShardingSpec) (*distributed.ShardingSpec, error) {
	if s == nil {
		return nil, nil
	}
	var mesh *distributed.DeviceMesh
	for _, m := range e.meshes {
		if m.Name() == s.Mesh || s.Mesh == "" {
			mesh = m
			break
		}
	}
	if mesh == nil {
		return nil, errors.Errorf("virtual mesh: sharding names mesh %q, which the program does not have", s.Mesh)
	}
	if mesh.NumDevices() != e.numDevices {
		return nil, errors.Errorf("virtual mesh: mesh %q has %d devices, the program runs on %d", s.Mesh,
			mesh.NumDevices(), e.numDevices)
	}
	axes := make([]distributed.AxisSpec, len(s.Axes))
	for i, a := range s.Axes {
		axes[i] = distributed.AxisSpec(a)
	}
	return distributed.NewShardingSpec(mesh, axes...)
}
