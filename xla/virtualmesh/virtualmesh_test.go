package virtualmesh

import (
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/require"
)

func newBackend(t *testing.T, n int) *Backend {
	t.Helper()
	inner, err := backends.NewWithConfig("go:ops_sequential")
	require.NoError(t, err)
	b, err := New(inner, n)
	require.NoError(t, err)
	return b
}

// TestAutoSharding: a program with a batch-sharded input x [n·k, 3], a replicated w [3] and outputs Σ(x·w)
// (replicated: every device gets the global sum, not its shard's) and 2x (sharded: each device its rows),
// on 2 and 4 devices.
func TestAutoSharding(t *testing.T) {
	x := tensors.FromValue([][]float32{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}, {13, 14, 15}, {16, 17, 18}, {19, 20, 21}, {22, 23, 24}})
	w := tensors.FromValue([]float32{1, -1, 2})
	fn := func(x, w *Node) (*Node, *Node) { return ReduceAllSum(Mul(x, ExpandLeftToRank(w, 2))), MulScalar(x, 2) }
	const wantSum = float32(1*1 - 2 + 6 + 4 - 5 + 12 + 7 - 8 + 18 + 10 - 11 + 24 + 13 - 14 + 30 + 16 - 17 + 36 + 19 - 20 + 42 + 22 - 23 + 48)
	for _, n := range []int{2, 4} {
		b := newBackend(t, n)
		require.Equal(t, n, b.NumDevices())
		mesh, err := distributed.NewDeviceMesh([]int{n}, []string{"batch"})
		require.NoError(t, err)
		batchSpec, err := distributed.NewShardingSpec(mesh, distributed.AxisSpec{"batch"})
		require.NoError(t, err)
		replicated := distributed.NewReplicatedShardingSpec(mesh)
		exec, err := NewExec(b, fn)
		require.NoError(t, err)
		exec.AutoSharding(mesh).WithInputShardingSpecs(batchSpec, replicated).WithOutputShardingSpecs(replicated, batchSpec)
		xs, err := distributed.ShardTensor(batchSpec, x)
		require.NoError(t, err)
		ws, err := distributed.ShardTensor(replicated, w)
		require.NoError(t, err)
		outs, err := exec.DistributedExec(xs, ws)
		require.NoError(t, err)
		require.Len(t, outs, 2)
		require.Len(t, outs[0].Shards(), n)
		for d, shard := range outs[0].Shards() {
			require.Equal(t, wantSum, tensors.ToScalar[float32](shard), "device %d: the replicated sum is the global one", d)
		}
		for d, shard := range outs[1].Shards() {
			require.Equal(t, []int{8 / n, 3}, shard.Shape().Dimensions, "device %d's shard of 2x", d)
		}
		doubled, err := outs[1].Merge()
		require.NoError(t, err)
		require.Equal(t, [][]float32{{2, 4, 6}, {8, 10, 12}, {14, 16, 18}, {20, 22, 24}, {26, 28, 30}, {32, 34, 36}, {38, 40, 42}, {44, 46, 48}},
			doubled.Value())
	}
}

// TestBuffers: buffers live on the virtual device they were made for and move between devices by copy.
func TestBuffers(t *testing.T) {
	b := newBackend(t, 3)
	x := tensors.FromValue([]float32{1, 2, 3})
	buf, err := x.Buffer(b, 2)
	require.NoError(t, err)
	dev, err := b.BufferDeviceNum(buf)
	require.NoError(t, err)
	require.Equal(t, backends.DeviceNum(2), dev)
	moved, err := b.BufferCopyToDevice(buf, 1)
	require.NoError(t, err)
	dev, err = b.BufferDeviceNum(moved)
	require.NoError(t, err)
	require.Equal(t, backends.DeviceNum(1), dev)
	got := make([]float32, 3)
	require.NoError(t, b.BufferToFlatData(moved, got))
	require.Equal(t, []float32{1, 2, 3}, got)
	_, err = b.BufferFromFlatData(3, []float32{1}, x.Shape())
	require.ErrorContains(t, err, "device 3 does not exist (3 devices)")
}

// TestErrors: what the virtual mesh refuses, by name.
func TestErrors(t *testing.T) {
	inner, err := backends.NewWithConfig("go")
	require.NoError(t, err)
	_, err = New(inner, 0)
	require.ErrorContains(t, err, "at least 1")
	_, err = New(nil, 2)
	require.ErrorContains(t, err, "nil inner backend")

	b := newBackend(t, 2)
	mesh, err := distributed.NewDeviceMesh([]int{2}, []string{"batch"})
	require.NoError(t, err)
	exec, err := NewExec(b, func(x *Node) *Node { return Neg(x) })
	require.NoError(t, err)
	exec.SPMD(mesh)
	_, err = exec.DistributedExec(tensors.FromValue([]float32{1}), tensors.FromValue([]float32{2}))
	require.ErrorContains(t, err, "SPMD programs are not supported")

	big, err := distributed.NewDeviceMesh([]int{4}, []string{"batch"})
	require.NoError(t, err)
	exec, err = NewExec(b, func(x *Node) *Node { return Neg(x) })
	require.NoError(t, err)
	exec.AutoSharding(big)
	one := func() *tensors.Tensor { return tensors.FromValue([]float32{1}) }
	_, err = exec.DistributedExec(one(), one(), one(), one())
	require.ErrorContains(t, err, "device 2 does not exist (2 devices)")
}
