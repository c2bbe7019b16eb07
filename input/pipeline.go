package input

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ErrTooFewExamples is returned (wrapped) by [Open] when a split with DropRemainder has fewer examples than one
// batch.
var ErrTooFewExamples = errors.New("fewer examples than one batch")

// TooFewError is the error [Open] returns (errors.Is ErrTooFewExamples) for a split with DropRemainder that has
// fewer examples than one batch, with the numbers.
type TooFewError struct {
	Name            string
	Examples, Batch int
	// Limited says that Options.Limit left out some of the split's examples (a higher limit would give more).
	Limited bool
}

// Error implements error.
func (e *TooFewError) Error() string {
	return fmt.Sprintf("input: dataset %s: %d examples are fewer than one batch of %d", e.Name, e.Examples, e.Batch)
}

// Is reports whether target is ErrTooFewExamples.
func (e *TooFewError) Is(target error) bool { return target == ErrTooFewExamples }

// errCorrupt marks an example whose file is corrupt or truncated: with Options.SkipCorrupt it is skipped
// and counted, otherwise Yield fails with it.
var errCorrupt = errors.New("corrupt image")

// source is one dataset format, as seen by the pipeline.
type source struct {
	n          int      // number of examples
	h, w, c    int      // output image shape
	numClasses int      // number of classes
	classNames []string // nil where unknown
	labels     []int32  // label of each example
	mean, std  []float32
	// limitShuffle makes Options.Limit take a fixed shuffle rather than the file order.
	limitShuffle bool
	// load writes example i into dst (h*w*c values, channels-last, in [0,1]); with a non-nil rng it applies
	// the training augmentation drawn from rng. Corrupt files return an error wrapping errCorrupt.
	load func(i int, dst []float32, rng *rand.Rand) error
	// pixels, where set, returns example i's 8-bit pixels (h*w*c values, channels-last) held in memory: the
	// pipeline then converts and normalises an example without augmentation in one pass (see pixelMap).
	pixels func(i int) []uint8
}

// Dataset is a batched, shuffled, augmented and prefetched view of one split of a dataset. It implements
// GoMLX's train.Dataset: Yield returns inputs = {images float32 [B,H,W,C]} (indexed: the split's images and the
// batch's indices into them, see Options.Indexed) and labels = {int32 [B,1]}, and io.EOF at the end of an epoch;
// Reset starts the next epoch.
//
// Batches are prepared ahead across an epoch's end: while the last batches of epoch e are trained on, the first
// ones of epoch e+1 are being made, so that the step after Reset does not wait for its batch (a dataset of a few
// batches an epoch, or an evaluation pass, would otherwise wait at every epoch's start). A batch's content
// depends only on (Seed, epoch, batch), never on when it was made.
//
// A Dataset is not meant to be used from several goroutines at once (calls are serialised by a mutex).
type Dataset struct {
	name       string
	src        *source
	opts       Options
	ids        []int // dataset example -> source example (Limit); nil for the identity
	n          int
	numBatches int
	mean, std  []float32 // nil without Normalize
	pixelMap   *pixelMap // for sources with in-memory pixels; nil otherwise

	mu    sync.Mutex
	epoch int
	batch int // next batch to yield
	// fromStart is set when the epoch's batches are yielded from its first one (Reset, or Seek to batch 0), and
	// yielded counts the batches returned since: an epoch that yields none skipped every example as corrupt.
	fromStart   bool
	yielded     int
	run         *run
	tasks       chan task
	poolStarted bool
	closed      bool
	corrupt     map[int]bool
	permEpoch   int
	perm        []int
	ahead       *aheadBatch // the inline path's next batch, being made while the caller trains on this one
	// Under ReuseBatches: how many batches the inline path has returned, and the last ones it returned, oldest
	// first, whose tensors its next batches are written into (see reusable).
	returned int
	recycled []returnedBatch
	// images are an indexed Dataset's examples (Options.Indexed), made at its first Yield; rowOf maps a source
	// example to its row where Options.Limit kept some (nil: the identity).
	images      *tensors.Tensor
	rowOf       []int32
	imagesMoved bool // a step has taken the images to a device: their host copy was freed
}

// returnedBatch is a batch the inline path returned under ReuseBatches: its tensors, and its number among the
// batches returned.
type returnedBatch struct {
	tensors batchTensors
	number  int
}

// batchTensors are one batch's tensors as Yield returns them.
type batchTensors struct {
	inputs, labels []*tensors.Tensor
}

// aheadBatch is one batch of the inline path (see Dataset.inline) made by a goroutine of its own: while the
// training step that consumes the batch before it runs, instead of between two steps, when the device would idle.
type aheadBatch struct {
	epoch, batch int
	done         chan struct{} // closed when tensors is set
	tensors      batchTensors
}

// run is one stretch of batches being prepared in the background, from one (epoch, batch) position on, through
// the end of that epoch and into the following ones until it is stopped.
type run struct {
	epoch, next int // the position of the next batch that out delivers (read and advanced by Yield alone)
	out         chan *batchJob
	stop        chan struct{}
	done        chan struct{}
	cancelled   atomic.Bool
}

// batchJob is one batch being decoded by the workers.
type batchJob struct {
	epoch int
	ids   []int // source example indices
	// images is the batch as Yield returns it, [len(ids), h, w, c]: each worker copies in the examples it
	// decoded, so that no copy of the whole batch is left to Yield (28 ms for an ImageNet batch of 128 at 224²,
	// during which an accelerator would wait for its next step).
	images *tensors.Tensor
	errs   []error
	wg     sync.WaitGroup
}

// task is a contiguous chunk [lo, hi) of a batch for one worker.
type task struct {
	run    *run
	job    *batchJob
	lo, hi int
}

func newDataset(name string, src *source, opts Options) (*Dataset, error) {
	d := &Dataset{name: name, src: src, opts: opts, n: src.n, corrupt: map[int]bool{}, permEpoch: -1, fromStart: true}
	if opts.Limit > 0 && opts.Limit < src.n {
		d.n = opts.Limit
		if src.limitShuffle {
			d.ids = rand.New(rand.NewPCG(0x6e6f7774, 0x6c696d6974)).Perm(src.n)[:opts.Limit]
			slices.Sort(d.ids)
		} else {
			d.ids = make([]int, opts.Limit)
			for i := range d.ids {
				d.ids[i] = i
			}
		}
	}
	if d.n == 0 {
		return nil, fmt.Errorf("input: dataset %s has no examples", name)
	}
	if opts.DropRemainder {
		// Whole multiples of BatchMultiple batches (data parallelism: one global batch is that many batches).
		multiple := max(1, opts.BatchMultiple)
		d.numBatches = d.n / opts.BatchSize / multiple * multiple
		if d.numBatches == 0 {
			return nil, &TooFewError{Name: name, Examples: d.n, Batch: opts.BatchSize * multiple, Limited: d.n < src.n}
		}
	} else {
		d.numBatches = (d.n + opts.BatchSize - 1) / opts.BatchSize
	}
	if opts.Normalize {
		if len(src.mean) != src.c || len(src.std) != src.c {
			return nil, fmt.Errorf("input: dataset %s has no normalisation constants for %d channels", name, src.c)
		}
		d.mean, d.std = src.mean, src.std
	}
	if src.pixels != nil {
		d.pixelMap = newPixelMap(src.c, d.mean, d.std)
	}
	return d, nil
}

// Name implements train.Dataset: the dataset name and split, e.g. "cifar10/train".
func (d *Dataset) Name() string { return d.name }

// NumExamples is the number of examples in one epoch (after Limit).
func (d *Dataset) NumExamples() int { return d.n }

// NumBatches is the number of batches in one epoch (before any skipped all-corrupt batch).
func (d *Dataset) NumBatches() int { return d.numBatches }

// NumClasses is the number of classes of the labels.
func (d *Dataset) NumClasses() int { return d.src.numClasses }

// ClassCounts returns the number of examples of each class (indexed by label) among the dataset's examples (after
// Limit).
func (d *Dataset) ClassCounts() []int {
	counts := make([]int, d.src.numClasses)
	for i := range d.n {
		id := i
		if d.ids != nil {
			id = d.ids[i]
		}
		counts[d.src.labels[id]]++
	}
	return counts
}

// ImageShape is the shape of one yielded image: height, width and channels.
func (d *Dataset) ImageShape() (h, w, c int) { return d.src.h, d.src.w, d.src.c }

// ClassNames returns the class names indexed by label, or nil where unknown.
func (d *Dataset) ClassNames() []string { return slices.Clone(d.src.classNames) }

// Normalization returns the per-channel mean and standard deviation applied with Options.Normalize
// (nil, nil when Normalize is off).
func (d *Dataset) Normalization() (mean, std []float32) {
	return slices.Clone(d.mean), slices.Clone(d.std)
}

// Epoch is the current epoch, counted from 0.
func (d *Dataset) Epoch() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch
}

// Position returns the epoch and the index of the batch that the next Yield returns (batch ==
// NumBatches() at the end of an epoch). Save it with a checkpoint and pass it to Seek on resume.
func (d *Dataset) Position() (epoch, batch int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch, d.batch
}

// Seek moves to the given epoch and batch, so that the next Yield returns exactly the batch that a
// run from the start would have yielded there (same examples, same augmentation).
func (d *Dataset) Seek(epoch, batch int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("input: %s: Seek on a closed dataset", d.name)
	}
	if epoch < 0 || batch < 0 || batch > d.numBatches {
		return fmt.Errorf("input: %s: Seek(%d, %d) out of range: epoch must be >= 0 and batch in [0, %d]",
			d.name, epoch, batch, d.numBatches)
	}
	d.epoch, d.batch = epoch, batch
	d.fromStart, d.yielded = batch == 0, 0
	return nil
}

// Reset implements train.Dataset: it starts the next epoch (with the next permutation), also when
// called in the middle of an epoch.
func (d *Dataset) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.epoch++
	d.batch = 0
	d.fromStart, d.yielded = true, 0
}

// Skipped is the number of distinct corrupt examples skipped so far (Options.SkipCorrupt).
func (d *Dataset) Skipped() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.corrupt)
}

// Close stops the background workers. The Dataset cannot be used afterwards. It is safe to call twice, and on a
// nil *Dataset (what a failed Open returns).
func (d *Dataset) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	d.stopRun()
	if d.ahead != nil {
		<-d.ahead.done
		d.ahead = nil
	}
	if d.poolStarted {
		close(d.tasks)
	}
	if d.images != nil { // an indexed Dataset's images, on the device that used them
		_ = d.images.FinalizeAll()
		d.images = nil
	}
}

// Yield implements train.Dataset. It returns inputs = {images float32 [B,H,W,C]} with values in [0,1]
// (before normalisation) and labels = {int32 [B,1]}; spec is nil. An indexed Dataset (Options.Indexed) returns
// inputs = {images [N,H,W,C], indices int32 [B,1]} instead (BatchImages gathers the batch). At the end of an epoch
// it returns io.EOF (again on every call, until Reset or Seek).
func (d *Dataset) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, nil, fmt.Errorf("input: %s: Yield on a closed dataset", d.name)
	}
	for {
		if d.batch >= d.numBatches {
			if d.fromStart && d.yielded == 0 && len(d.corrupt) > 0 {
				return nil, nil, nil, fmt.Errorf("input: %s: every example of the epoch is unreadable (%d files skipped; "+
					"the warnings above name them): check the data with nowt check", d.name, len(d.corrupt))
			}
			return nil, nil, nil, io.EOF
		}
		if d.Indexed() {
			return d.yieldIndexed()
		}
		if d.inline() {
			return d.yieldInline()
		}
		if d.run == nil || d.run.epoch != d.epoch || d.run.next != d.batch {
			d.stopRun()
			d.startRun()
		}
		job, ok := <-d.run.out
		if !ok {
			return nil, nil, nil, fmt.Errorf("input: %s: internal error: pipeline stopped early", d.name)
		}
		job.wg.Wait()
		if d.run.next++; d.run.next == d.numBatches { // the run goes on into the next epoch
			d.run.epoch, d.run.next = d.run.epoch+1, 0
		}
		images, labs, err := d.assemble(job)
		if err != nil {
			d.stopRun()
			return nil, nil, nil, err
		}
		d.batch++
		if images == nil { // every example of the batch was corrupt and skipped
			continue
		}
		d.yielded++
		return nil, []*tensors.Tensor{images}, labelTensors(labs), nil
	}
}

// labelTensors wraps a batch's labels as Yield returns them: {labels int32 [B,1]}.
func labelTensors(labs []int32) []*tensors.Tensor {
	return []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labs, len(labs), 1)}
}

// newImages returns a new images tensor of n examples, [n, h, w, c].
func (d *Dataset) newImages(n int) *tensors.Tensor {
	return tensors.FromShape(shapes.Make(dtypes.Float32, n, d.src.h, d.src.w, d.src.c))
}

// inline reports whether batches are made in Yield itself rather than by the worker pool: for in-memory 8-bit
// pixels without augmentation, where converting a batch through the lookup tables costs less than handing it to
// the workers, whose wake-ups compete with the training step for the cores.
func (d *Dataset) inline() bool {
	return d.pixelMap != nil && !d.opts.Augment
}

// yieldInline returns the current batch of the inline path (see inline), made ahead by the previous call where it
// could be, and starts making the next one (after an epoch's last batch, the next epoch's first) in the
// background: the step that trains on this batch runs meanwhile, so that converting the pixels (a few tenths of a
// millisecond for an MNIST batch of 128) does not sit between two steps. The batches are the same, bit for bit, as
// when each is made on the spot.
//
// Under ReuseBatches a batch is written into the tensors of one returned before (see reusable).
func (d *Dataset) yieldInline() (spec any, inputs, labels []*tensors.Tensor, err error) {
	number := d.returned + 1 // this call's batch, among those returned
	var b batchTensors
	if a := d.ahead; a != nil {
		<-a.done // also when it is not the batch wanted (after a Seek or Reset): no goroutine outlives its use
		d.ahead = nil
		if a.epoch == d.epoch && a.batch == d.batch {
			b = a.tensors
		}
	}
	if b.inputs == nil {
		ids := d.inlineIDs(d.epoch, d.batch)
		b = d.inlineBatch(ids, d.reusable(number, len(ids)))
	}
	d.batch++
	a := &aheadBatch{epoch: d.epoch, batch: d.batch, done: make(chan struct{})}
	if a.batch == d.numBatches { // after an epoch's last batch, the next epoch's first
		a.epoch, a.batch = d.epoch+1, 0
	}
	ids := d.inlineIDs(a.epoch, a.batch)
	into := d.reusable(number, len(ids))
	go func() {
		defer close(a.done)
		a.tensors = d.inlineBatch(ids, into)
	}()
	d.ahead = a
	d.returned = number
	if d.opts.ReuseBatches {
		d.recycled = append(d.recycled, returnedBatch{tensors: b, number: number})
	}
	return nil, b.inputs, b.labels, nil
}

// reusable returns, under ReuseBatches, the tensors of a batch of n examples returned before, for the call that
// returns batch number to write a batch into (nil when there are none: new ones are made): the oldest of those of
// batch number−2 or earlier, so that a batch's tensors stay valid until Yield is asked for the second batch after
// it. Batches of another size (an epoch's last, partial batch) wait for their turn, up to maxRecycled in all.
func (d *Dataset) reusable(number, n int) *batchTensors {
	d.recycled = slices.DeleteFunc(d.recycled, func(r returnedBatch) bool { // freed by a consumer after all
		return !r.tensors.inputs[0].Ok() || !r.tensors.labels[0].Ok()
	})
	if len(d.recycled) > maxRecycled {
		d.recycled = slices.Delete(d.recycled, 0, len(d.recycled)-maxRecycled)
	}
	for i, r := range d.recycled {
		if r.number > number-2 {
			break
		}
		if r.tensors.inputs[0].Shape().Dim(0) == n {
			d.recycled = slices.Delete(d.recycled, i, i+1)
			return &r.tensors
		}
	}
	return nil
}

// maxRecycled bounds the batches kept for reuse: the two a consumer may still read, one to write the next batch
// into, and an epoch's shorter last batch.
const maxRecycled = 4

// IsOwnershipTransferred implements GoMLX's train.DatasetCustomOwnership: false under ReuseBatches on the inline
// path and for an indexed Dataset, whose batches' tensors the Dataset writes again or hands over at every call (a
// training loop must not free them), true otherwise.
func (d *Dataset) IsOwnershipTransferred() bool {
	return !(d.opts.ReuseBatches && d.inline()) && !d.Indexed()
}

// inlineIDs returns the source examples of batch b of epoch e.
func (d *Dataset) inlineIDs(e, b int) []int {
	perm, bs := d.permutation(e), d.opts.BatchSize
	return perm[b*bs : min((b+1)*bs, len(perm))]
}

// inlineBatch converts the in-memory pixels of the examples ids straight into an images tensor, and their labels:
// new tensors, or those of into (a batch of as many examples returned before, see reusable). It reads only what
// does not change after the Dataset is made (the source, the lookup tables), so it may run beside the Dataset's
// other methods.
func (d *Dataset) inlineBatch(ids []int, into *batchTensors) batchTensors {
	if into != nil && into.fill(d, ids) == nil {
		return *into
	}
	// New tensors (also where a consumer freed those it should have left alone): writing into them cannot fail.
	b := batchTensors{inputs: []*tensors.Tensor{d.newImages(len(ids))},
		labels: []*tensors.Tensor{tensors.FromShape(shapes.Make(dtypes.Int32, len(ids), 1))}}
	_ = b.fill(d, ids)
	return b
}

// fill writes the pixels and labels of the examples ids into b's tensors: in place, whether they are local or
// buffers a backend shares with the host (a tensor only on a device is brought back first). It fails on a
// finalized tensor.
func (b batchTensors) fill(d *Dataset, ids []int) error {
	sz := d.src.h * d.src.w * d.src.c
	err := tensors.MutableFlatData(b.inputs[0], func(flat []float32) {
		for k, id := range ids {
			d.pixelMap.convert(d.src.pixels(id), flat[k*sz:(k+1)*sz])
		}
	})
	if err != nil {
		return err
	}
	return b.fillLabels(d, ids)
}

// fillLabels writes the labels of the examples ids into b.labels[0], in place. It fails on a finalized tensor.
func (b batchTensors) fillLabels(d *Dataset, ids []int) error {
	return tensors.MutableFlatData(b.labels[0], func(flat []int32) {
		for k, id := range ids {
			flat[k] = d.src.labels[id]
		}
	})
}

// assemble returns a decoded job's images and labels, handling corrupt examples: the job's own images tensor when
// every example was read, else a new one with the valid examples (refilled to the batch size by repeating them
// with DropRemainder), and nil images when every example was skipped.
func (d *Dataset) assemble(job *batchJob) (*tensors.Tensor, []int32, error) {
	labs := make([]int32, 0, len(job.ids))
	valid := make([]int, 0, len(job.ids)) // the batch positions of the examples read
	for k, id := range job.ids {
		if err := job.errs[k]; err != nil {
			if d.opts.SkipCorrupt && errors.Is(err, errCorrupt) {
				if !d.corrupt[id] && d.opts.OnSkip != nil {
					d.opts.OnSkip(err)
				}
				d.corrupt[id] = true
				continue
			}
			return nil, nil, fmt.Errorf("input: %s: epoch %d batch %d: %w", d.name, job.epoch, d.batch, err)
		}
		labs = append(labs, d.src.labels[id])
		valid = append(valid, k)
	}
	switch {
	case len(valid) == 0:
		return nil, nil, nil
	case len(valid) == len(job.ids):
		return job.images, labs, nil
	}
	n := len(valid)
	if d.opts.DropRemainder { // keep static shapes: refill with the valid examples of this batch, in order
		n = len(job.ids)
		for k := len(valid); k < n; k++ {
			labs = append(labs, labs[(k-len(valid))%len(valid)])
		}
	}
	sz := d.src.h * d.src.w * d.src.c
	images := d.newImages(n)
	err := tensors.ConstFlatData(job.images, func(src []float32) {
		tensors.MustMutableFlatData(images, func(dst []float32) { // a new local tensor: nothing can fail
			for k := range n {
				from := valid[k%len(valid)]
				copy(dst[k*sz:(k+1)*sz], src[from*sz:(from+1)*sz])
			}
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("input: %s: epoch %d batch %d: %w", d.name, job.epoch, d.batch, err)
	}
	return images, labs, nil
}

// permutation returns the order of the dataset examples in epoch e, kept for the next call (under d.mu).
func (d *Dataset) permutation(epoch int) []int {
	if d.permEpoch == epoch && d.perm != nil {
		return d.perm
	}
	d.perm, d.permEpoch = d.newPermutation(epoch), epoch
	return d.perm
}

// newPermutation computes the order of the dataset examples in epoch e. It reads only what newDataset set, so a
// run's producer calls it without d.mu.
func (d *Dataset) newPermutation(epoch int) []int {
	var perm []int
	if d.opts.Shuffle {
		perm = rand.New(rand.NewPCG(mix(uint64(d.opts.Seed), 0x7065726d), uint64(epoch))).Perm(d.n)
	} else {
		perm = make([]int, d.n)
		for i := range perm {
			perm[i] = i
		}
	}
	if d.ids != nil {
		for i, p := range perm {
			perm[i] = d.ids[p]
		}
	}
	return perm
}

// exampleRNG is the augmentation randomness of source example i in epoch e: a function of (Seed, e, i) only.
func exampleRNG(seed int64, epoch, i int) *rand.Rand {
	s1 := mix(uint64(seed), uint64(epoch))
	return rand.New(rand.NewPCG(s1, mix(s1^0x61756720, uint64(i))))
}

// mix combines two 64-bit values into a well-mixed one (splitmix64 finaliser).
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// startPool starts the worker goroutines once.
func (d *Dataset) startPool() {
	if d.poolStarted {
		return
	}
	d.poolStarted = true
	d.tasks = make(chan task)
	for range d.opts.workers() {
		go d.worker()
	}
}

// worker decodes the examples of the tasks it receives, each into its own scratch buffer and then into the
// batch's images tensor (whose lock is held for the copy alone, not for the decoding).
func (d *Dataset) worker() {
	sz := d.src.h * d.src.w * d.src.c
	scratch := make([]float32, sz)
	for t := range d.tasks {
		for k := t.lo; k < t.hi; k++ {
			if t.run.cancelled.Load() {
				break
			}
			err := d.loadOne(t.job.epoch, t.job.ids[k], scratch)
			if err == nil {
				err = tensors.MutableFlatData(t.job.images, func(flat []float32) { copy(flat[k*sz:(k+1)*sz], scratch) })
			}
			t.job.errs[k] = err
		}
		t.job.wg.Done()
	}
}

// loadOne loads, augments and normalises one example, turning a panic into an error.
func (d *Dataset) loadOne(epoch, id int, dst []float32) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("example %d: %w: internal panic while decoding: %v", id, errCorrupt, r)
		}
	}()
	var rng *rand.Rand
	if d.opts.Augment {
		rng = exampleRNG(d.opts.Seed, epoch, id)
	}
	if err := d.src.load(id, dst, rng); err != nil {
		return err
	}
	if d.mean != nil {
		normalizeChannels(dst, d.mean, d.std)
	}
	return nil
}

// startRun starts preparing batches from the current position in the background: the rest of the epoch, then
// the next epochs' batches, prefetch() ahead of Yield, until stopRun.
func (d *Dataset) startRun() {
	d.startPool()
	r := &run{
		epoch: d.epoch,
		next:  d.batch,
		out:   make(chan *batchJob, d.opts.prefetch()-1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	d.run = r
	perm := d.permutation(d.epoch)
	bs, workers := d.opts.BatchSize, d.opts.workers()
	chunk := max(1, (bs+workers-1)/workers)
	numBatches, tasks := d.numBatches, d.tasks
	epoch, batch := r.epoch, r.next
	go func() {
		defer close(r.done)
		defer close(r.out)
		for e, b := epoch, batch; ; b++ {
			if b == numBatches {
				e, b = e+1, 0
				perm = d.newPermutation(e)
			}
			lo, hi := b*bs, min((b+1)*bs, len(perm))
			job := &batchJob{epoch: e, ids: perm[lo:hi], images: d.newImages(hi - lo), errs: make([]error, hi-lo)}
			for c := 0; c < hi-lo; c += chunk {
				job.wg.Add(1)
				select {
				case tasks <- task{run: r, job: job, lo: c, hi: min(c+chunk, hi-lo)}:
				case <-r.stop:
					return
				}
			}
			select {
			case r.out <- job:
			case <-r.stop:
				return
			}
		}
	}()
}

// stopRun cancels the background preparation, if any, and waits for its producer to exit.
func (d *Dataset) stopRun() {
	if d.run == nil {
		return
	}
	d.run.cancelled.Store(true)
	close(d.run.stop)
	<-d.run.done
	d.run = nil
}
