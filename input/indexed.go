package input

import (
	"fmt"
	"runtime/debug"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// MaxIndexedBytes bounds the images an indexed Dataset (Options.Indexed) holds as one tensor: a split whose
// float32 images take more is batched as usual (Dataset.Indexed reports false). 2 GiB holds MNIST's and
// Fashion-MNIST's training splits (188 MB) and CIFAR-10's or CIFAR-100's (614 MB).
const MaxIndexedBytes = 2 << 30

// Indexed reports whether Yield returns indexed batches (see Options.Indexed): the option was given, the examples'
// pixels are in memory, they are not augmented, and their float32 images fit in MaxIndexedBytes.
func (d *Dataset) Indexed() bool {
	return d.opts.Indexed && d.inline() && d.indexedBytes() <= MaxIndexedBytes
}

// indexedBytes is the size of the indexed images tensor: the dataset's examples as float32.
func (d *Dataset) indexedBytes() int64 {
	return int64(d.n) * int64(d.src.h*d.src.w*d.src.c) * 4
}

// yieldIndexed returns the current batch of an indexed Dataset: {images [N,H,W,C], indices [B,1]} and {labels
// [B,1]}. The images are converted at the first call; the indices and labels are written into the tensors of the
// batch returned two batches before (see reusable), so that a step's inputs cost a few hundred bytes. Once a step
// has moved the images to its device, their host copy is freed.
func (d *Dataset) yieldIndexed() (spec any, inputs, labels []*tensors.Tensor, err error) {
	if d.images == nil {
		d.images = d.allImages()
	} else if !d.imagesMoved && d.images.IsOnAnyDevice() {
		// A step has taken the images to its device (and finished with them: the caller asks for the next batch).
		// Their host copy is not needed again (where the device shares the host's memory, GoMLX has already
		// dropped it), and the Go heap it took is given back at once: left to the collector it would be kept, and
		// let garbage grow to twice its size before the next collection (MNIST: 188 MB for the images, up to 350 MB
		// more in the process).
		d.imagesMoved = true
		d.images.FinalizeLocal()
		debug.FreeOSMemory()
	}
	number := d.returned + 1
	ids := d.inlineIDs(d.epoch, d.batch)
	b := batchTensors{}
	if into := d.reusable(number, len(ids)); into != nil && into.fillIndices(d, ids) == nil {
		b = *into
	} else { // new tensors (also where a consumer freed those it should have left alone)
		b = batchTensors{inputs: []*tensors.Tensor{tensors.FromShape(shapes.Make(dtypes.Int32, len(ids), 1))},
			labels: []*tensors.Tensor{tensors.FromShape(shapes.Make(dtypes.Int32, len(ids), 1))}}
		if err := b.fillIndices(d, ids); err != nil {
			return nil, nil, nil, fmt.Errorf("input: %s: writing batch %d's indices: %w", d.name, d.batch, err)
		}
	}
	d.batch++
	d.returned = number
	d.recycled = append(d.recycled, returnedBatch{tensors: b, number: number})
	return nil, []*tensors.Tensor{d.images, b.inputs[0]}, b.labels, nil
}

// fillIndices writes the rows of the examples ids in the indexed images (b.inputs[0]) and their labels (b.labels[0]).
func (b batchTensors) fillIndices(d *Dataset, ids []int) error {
	err := tensors.MutableFlatData(b.inputs[0], func(flat []int32) {
		for k, id := range ids {
			flat[k] = d.row(id)
		}
	})
	if err != nil {
		return err
	}
	return b.fillLabels(d, ids)
}

// row returns the row of source example id in the indexed images: id itself, or its place among the examples
// Options.Limit kept.
func (d *Dataset) row(id int) int32 {
	if d.rowOf == nil {
		return int32(id)
	}
	return d.rowOf[id]
}

// allImages converts the dataset's examples, in their fixed order, into one images tensor [N,H,W,C], the same
// values as the batches of the inline path (through the same lookup tables), and, under Options.Limit, maps each
// kept source example to its row.
func (d *Dataset) allImages() *tensors.Tensor {
	h, w, c := d.src.h, d.src.w, d.src.c
	sz := h * w * c
	images := tensors.FromShape(shapes.Make(dtypes.Float32, d.n, h, w, c))
	if d.ids != nil {
		d.rowOf = make([]int32, d.src.n)
		for k, id := range d.ids {
			d.rowOf[id] = int32(k)
		}
	}
	tensors.MustMutableFlatData(images, func(flat []float32) { // a new local tensor: writing cannot fail
		for k := range d.n {
			id := k
			if d.ids != nil {
				id = d.ids[k]
			}
			d.pixelMap.convert(d.src.pixels(id), flat[k*sz:(k+1)*sz])
		}
	})
	return images
}

// BatchImages returns the images of a batch that a Dataset yielded, as a graph's inputs: inputs[0] itself, or,
// for an indexed batch ({images [N,H,W,C], indices int32 [B,1]}, see Options.Indexed), the rows the indices name,
// gathered where the images are.
func BatchImages(inputs []*graph.Node) *graph.Node {
	if len(inputs) == 2 {
		return graph.Gather(inputs[0], inputs[1])
	}
	return inputs[0]
}
