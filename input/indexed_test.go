package input

import (
	"errors"
	"io"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/require"
)

// gatherOnHost returns the images an indexed batch names: the rows of images at indices, as BatchImages gathers them.
func gatherOnHost(images, indices *tensors.Tensor) []float32 {
	all, idx := tensors.MustCopyFlatData[float32](images), tensors.MustCopyFlatData[int32](indices)
	sz := images.Shape().Size() / images.Shape().Dim(0)
	var out []float32
	for _, i := range idx {
		out = append(out, all[int(i)*sz:(int(i)+1)*sz]...)
	}
	return out
}

// TestIndexedBatchesMatch: an indexed Dataset yields the same batches as the plain one — the images its indices
// name, bit for bit, and the same labels — across epochs, a Seek back, a Reset in the middle of an epoch and an
// epoch's short last batch, with Limit's subset of the examples (rows that are not the source's ids) and without;
// its images are one tensor at every call, its indices follow ReuseBatches's contract (each batch still readable
// when the next is yielded), and train.Loop is told to free none of it.
func TestIndexedBatchesMatch(t *testing.T) {
	const n, h, w, c = 37, 4, 5, 3 // 5 batches of 8, the last of 5 examples
	for _, limit := range []int{0, 29} {
		opts := Options{BatchSize: 8, Shuffle: true, Seed: 4, Normalize: true, Limit: limit}
		open := func(indexed bool) *Dataset {
			src := randomPixelSource(n, h, w, c, true)
			src.limitShuffle = true // Limit keeps a shuffled subset: rows are not source ids
			o := opts
			o.Indexed = indexed
			ds, err := newDataset("test", src, o)
			require.NoError(t, err)
			t.Cleanup(ds.Close)
			return ds
		}
		plain, indexed := open(false), open(true)
		require.False(t, plain.Indexed())
		require.True(t, indexed.Indexed())
		require.False(t, indexed.IsOwnershipTransferred(), "the images are handed over at every call")

		var images *tensors.Tensor
		var prevImages []float32
		var prevIndices *tensors.Tensor
		for k := range 24 {
			switch k {
			case 9:
				for _, ds := range []*Dataset{plain, indexed} {
					require.NoError(t, ds.Seek(0, 2))
				}
			case 15:
				plain.Reset()
				indexed.Reset()
			}
			_, want, wantLabels, err := plain.Yield()
			_, got, gotLabels, gotErr := indexed.Yield()
			if errors.Is(err, io.EOF) {
				require.ErrorIs(t, gotErr, io.EOF, "limit %d, call %d", limit, k)
				plain.Reset()
				indexed.Reset()
				continue
			}
			require.NoError(t, err)
			require.NoError(t, gotErr)
			require.Len(t, got, 2, "images and indices")
			if images == nil {
				images = got[0]
				rows := n
				if limit > 0 {
					rows = limit
				}
				require.Equal(t, []int{rows, h, w, c}, images.Shape().Dimensions, "the dataset's examples")
			}
			require.Same(t, images, got[0], "one images tensor")
			require.Equal(t, tensors.MustCopyFlatData[float32](want[0]), gatherOnHost(got[0], got[1]), "limit %d, call %d", limit, k)
			require.Equal(t, tensors.MustCopyFlatData[int32](wantLabels[0]), tensors.MustCopyFlatData[int32](gotLabels[0]))
			if prevIndices != nil {
				require.Equal(t, prevImages, gatherOnHost(images, prevIndices), "the batch before is still readable")
			}
			prevImages, prevIndices = gatherOnHost(got[0], got[1]), got[1]
		}
		indexed.Close()
		require.False(t, images.Ok(), "Close frees the images")
	}
}

// TestIndexedOnlyInMemory: Options.Indexed applies only to in-memory pixels without augmentation; elsewhere Yield
// returns plain batches.
func TestIndexedOnlyInMemory(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inMemory bool
		augment  bool
		want     bool
	}{
		{"in-memory", true, false, true},
		{"augmented", true, true, false},
		{"decoded-by-workers", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := newDataset("test", randomPixelSource(16, 4, 4, 3, tc.inMemory),
				Options{BatchSize: 4, Seed: 1, Normalize: true, Augment: tc.augment, Indexed: true, Workers: 1})
			require.NoError(t, err)
			defer ds.Close()
			require.Equal(t, tc.want, ds.Indexed())
			_, inputs, _, err := ds.Yield()
			require.NoError(t, err)
			if tc.want {
				require.Len(t, inputs, 2)
			} else {
				require.Len(t, inputs, 1)
				require.Equal(t, []int{4, 4, 4, 3}, inputs[0].Shape().Dimensions)
			}
		})
	}
}

// TestBatchImages: in a graph, an indexed batch's images are gathered as the host reads them, and once a step has
// taken them to the device the next Yield keeps no host copy; a plain batch's images are its first input.
func TestBatchImages(t *testing.T) {
	backend, err := backends.NewWithConfig("go")
	require.NoError(t, err)
	defer backend.Finalize()
	ds, err := newDataset("test", randomPixelSource(21, 3, 2, 3, true), Options{BatchSize: 6, Shuffle: true, Seed: 9,
		Normalize: true, Indexed: true})
	require.NoError(t, err)
	defer ds.Close()
	_, inputs, _, err := ds.Yield()
	require.NoError(t, err)
	gathered := graph.MustExecOnce(backend, func(images, indices *graph.Node) *graph.Node {
		return BatchImages([]*graph.Node{images, indices})
	}, inputs[0], inputs[1])
	require.Equal(t, []int{6, 3, 2, 3}, gathered.Shape().Dimensions)
	require.Equal(t, gatherOnHost(inputs[0], inputs[1]), tensors.MustCopyFlatData[float32](gathered))
	// The step took the images to the device: the next Yield frees their host copy; they read the same.
	before := tensors.MustCopyFlatData[float32](inputs[0])
	require.True(t, inputs[0].IsOnAnyDevice())
	_, next, _, err := ds.Yield()
	require.NoError(t, err)
	require.Same(t, inputs[0], next[0])
	require.True(t, ds.imagesMoved)
	require.False(t, inputs[0].HasLocal(), "no host copy beside the device's (shared or not)")
	require.Equal(t, before, tensors.MustCopyFlatData[float32](next[0]))
	same := graph.MustExecOnce(backend, func(images *graph.Node) *graph.Node {
		return BatchImages([]*graph.Node{images})
	}, gathered)
	require.Equal(t, tensors.MustCopyFlatData[float32](gathered), tensors.MustCopyFlatData[float32](same))
}
