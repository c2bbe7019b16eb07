package input

import (
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// benchPipeline opens a split of a dataset with opts and times its batches (see benchYield).
func benchPipeline(b *testing.B, name, path, split string, opts Options) {
	ds, err := Open(name, path, split, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	benchYield(b, ds)
}

// yieldOrReset returns ds's next batch's inputs, starting the next epoch (Reset) at the end of one, as a training
// loop does.
func yieldOrReset(b *testing.B, ds *Dataset) []*tensors.Tensor {
	_, inputs, _, err := ds.Yield()
	if errors.Is(err, io.EOF) {
		ds.Reset()
		_, inputs, _, err = ds.Yield()
	}
	if err != nil {
		b.Fatal(err)
	}
	return inputs
}

// benchYield yields b.N batches of ds (resetting at each epoch end) and reports images/s and images per
// CPU-second.
func benchYield(b *testing.B, ds *Dataset) {
	images := 0
	b.ResetTimer()
	cpu0 := processCPUTime()
	for range b.N {
		images += yieldOrReset(b, ds)[0].Shape().Dimensions[0]
	}
	b.StopTimer()
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
	// Images per CPU-second of the whole process: the per-core throughput, which (unlike images/s) holds
	// when other processes share the cores.
	if cpu := processCPUTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(images)/cpu.Seconds(), "images/cpu-s")
	}
}

// BenchmarkCIFAR10JPEG decodes and augments the CIFAR-10 JPEG copy (extracting it to the cache first if
// only the archive is present). Each iteration is one batch of 256.
func BenchmarkCIFAR10JPEG(b *testing.B) {
	dir, err := CIFAR10JPEGDir()
	if err != nil {
		b.Skip(err)
	}
	if _, err := os.Stat(dir); err != nil {
		if _, aerr := DefaultCIFAR10JPEGArchive(); aerr != nil {
			b.Skipf("CIFAR-10 JPEG copy neither extracted (%v) nor archived (%v)", err, aerr)
		}
		if dir, err = EnsureCIFAR10JPEG(""); err != nil {
			b.Fatal(err)
		}
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			benchPipeline(b, "cifar10-jpeg", dir, "train", Options{BatchSize: 256, Seed: 1, Shuffle: true,
				DropRemainder: true, Augment: true, Normalize: true, Workers: workers})
		})
	}
}

// writeImageNetJPEGs writes n textured ~500×375 JPEGs in 4 classes.
func writeImageNetJPEGs(b *testing.B, root string, n int) { writeSizedJPEGs(b, root, n, 500, 375) }

// writeSizedJPEGs writes n textured JPEGs of about w×h (±4% per side, like ILSVRC's varied sizes) in
// 4 classes, under root/train/<class>/.
func writeSizedJPEGs(b *testing.B, root string, n, w, h int) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range n {
		w, h := w*24/25+rng.IntN(w*2/25+1), h*24/25+rng.IntN(h*2/25+1)
		img := patternImage(w, h, i)
		for k := range img.Pix { // some noise, so the JPEG is not trivially compressible
			if k%4 != 3 {
				img.Pix[k] += uint8(rng.IntN(24))
			}
		}
		writeFile(b, filepath.Join(root, "train", fmt.Sprintf("n%08d", i%4), fmt.Sprintf("%03d.JPEG", i)), encodeJPEG(b, img))
	}
}

// workerCounts is 1, 2 and all cores (runtime.NumCPU), without repeats.
func workerCounts() []int {
	counts := []int{1, 2}
	if n := runtime.NumCPU(); n > 2 {
		counts = append(counts, n)
	}
	return counts
}

// BenchmarkImageNetJPEG decodes ~500×375 JPEGs with the ImageNet training transform (random-resized crop
// to 224 + flip) or the evaluation transform (resize 256 + centre crop 224), with the default decoder
// (see JPEGDecoder). Each iteration is one batch of 32.
func BenchmarkImageNetJPEG(b *testing.B) {
	root := b.TempDir()
	writeImageNetJPEGs(b, root, 64)
	b.Logf("decoder: %s", JPEGDecoder())
	for _, augment := range []bool{true, false} {
		for _, workers := range workerCounts() {
			b.Run(fmt.Sprintf("augment=%v/workers=%d", augment, workers), func(b *testing.B) {
				benchPipeline(b, "imagefolder", root, "train", Options{BatchSize: 32, Seed: 1, Shuffle: true,
					DropRemainder: true, Augment: augment, Normalize: true, Workers: workers})
			})
		}
	}
}

// BenchmarkImageNetDecoders compares the JPEG decoders on the ImageNet training pipeline (read file,
// decode, random-resized crop to 224, flip, float conversion, normalisation, batches of 32) for ~500×375
// images (ILSVRC-2012's typical size) and ~1000×750 images, with 1, 2 and all workers. The decoders:
// go (image/jpeg), turbo (libjpeg-turbo, full-size decode) and turbo+dct (libjpeg-turbo with DCT scaling,
// the default). With NOWT_BENCH_JPEG_DIR set, the JPEGs are written to (or reused from)
// $NOWT_BENCH_JPEG_DIR/<w>x<h>, so that scripts/bench-input.py can time Pillow on the same files.
func BenchmarkImageNetDecoders(b *testing.B) {
	decoders := []struct {
		name string
		d    *imageDecoder
	}{{"go", &imageDecoder{desc: "pure Go"}}}
	if lib, err := turboOrError(); err == nil {
		decoders = append(decoders, struct {
			name string
			d    *imageDecoder
		}{"turbo", &imageDecoder{turbo: lib, desc: "turbo"}}, struct {
			name string
			d    *imageDecoder
		}{"turbo+dct", &imageDecoder{turbo: lib, dctScale: true, desc: "turbo+dct"}})
	} else {
		b.Logf("only the pure-Go decoder: %v", err)
	}
	for _, size := range [][2]int{{500, 375}, {1000, 750}} {
		sizeName := fmt.Sprintf("%dx%d", size[0], size[1])
		root := b.TempDir()
		if dir := os.Getenv("NOWT_BENCH_JPEG_DIR"); dir != "" {
			root = filepath.Join(dir, sizeName)
		}
		if _, err := os.Stat(filepath.Join(root, "train")); err != nil {
			writeSizedJPEGs(b, root, 64, size[0], size[1])
		}
		for _, dec := range decoders {
			for _, workers := range workerCounts() {
				b.Run(fmt.Sprintf("images=%s/decoder=%s/workers=%d", sizeName, dec.name, workers), func(b *testing.B) {
					useDecoder(b, dec.d)
					benchPipeline(b, "imagefolder", root, "train", Options{BatchSize: 32, Seed: 1, Shuffle: true,
						DropRemainder: true, Augment: true, Normalize: true, Workers: workers})
				})
			}
		}
	}
}

// BenchmarkResize measures the package's bilinear crop-resize (decoded YCbCr → RGB, then resize to
// 224×224) against decoding alone, for a 500×375 JPEG. (golang.org/x/image/draw's antialiased BiLinear
// was measured outside the module, see the package report: it is slower and not a dependency here.)
func BenchmarkResize(b *testing.B) {
	data := encodeJPEG(b, patternImage(500, 375, 1))
	src, _, err := image.Decode(bytesReader(data))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 224*224*3)
	b.Run("toRGB+bilinear", func(b *testing.B) {
		for range b.N {
			pix, w, h := toRGB(src)
			resizeBilinear(pix, w, h, centerCropBox(w, h), 224, 224, false, dst)
		}
	})
	// The separable resize against the direct four-neighbour form it replaced (same values), for a crop
	// that is downscaled and one that is upscaled to 224×224.
	rgb, w, h := toRGB(src)
	for _, c := range []struct {
		name string
		bx   box
	}{{"down", box{10, 10, 300, 300}}, {"up", box{0, 0, 150, 120}}} {
		for _, impl := range []struct {
			name string
			f    func([]uint8, int, int, box, int, int, bool, []float32)
		}{{"separable", resizeBilinear}, {"direct", resizeBilinearRef}} {
			b.Run("crop="+c.name+"/"+impl.name, func(b *testing.B) {
				cpu0 := processCPUTime()
				for range b.N {
					impl.f(rgb, w, h, c.bx, 224, 224, true, dst)
				}
				b.ReportMetric(float64((processCPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
			})
		}
	}
	b.Run("decode-only", func(b *testing.B) {
		for range b.N {
			if _, _, err := image.Decode(bytesReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMNIST yields normalised MNIST training batches of 512 through the lookup-table conversion of
// in-memory pixels, into new tensors and (lookup-reuse) under ReuseBatches into those of earlier batches, and, for
// comparison, through the float path it replaced (toFloat, then normalizeChannels), with 1 and all workers. The
// ratio of lookup to float is the lookup table's gain, of lookup-reuse to lookup what a new batch's memory costs;
// the values are bit-identical (TestPixelMapMatchesFloatPath, TestReuseBatchesKeepsTheLastTwo).
func BenchmarkMNIST(b *testing.B) {
	for _, path := range []string{"lookup", "lookup-reuse", "float"} {
		for _, workers := range workerCounts() {
			b.Run(fmt.Sprintf("path=%s/workers=%d", path, workers), func(b *testing.B) {
				ds, err := Open("mnist", "", "train", Options{BatchSize: 512, Seed: 1, Shuffle: true,
					DropRemainder: true, Normalize: true, Workers: workers, ReuseBatches: path == "lookup-reuse"})
				if err != nil {
					b.Skipf("MNIST not available: %v", err)
				}
				defer ds.Close()
				if path == "float" {
					ds.pixelMap = nil
				}
				benchYield(b, ds)
			})
		}
	}
}

// BenchmarkYieldWhenReady times Yield alone when the next batch is already decoded, as in a training loop whose
// step takes longer than the workers need for a batch: what Yield then costs is on the loop's critical path, time
// in which the accelerator waits between two steps. ImageNet-sized batches (synthetic, 224×224×3); each
// iteration first sleeps, as a training step would, for the workers to finish. With epoch=2 every other Yield
// starts an epoch (at io.EOF the loop calls Reset and Yields again, both timed): its ratio to epoch=all, one epoch
// that holds every batch, is what an epoch's start costs the loop (about 1 when the next epoch's first batch is
// made ahead too; a whole batch's decoding, shared by the workers, when it is not).
//
//	go test ./input -run '^$' -bench YieldWhenReady -benchtime 10x
func BenchmarkYieldWhenReady(b *testing.B) {
	for _, batch := range []int{32, 128} {
		for _, perEpoch := range []int{0, 2} {
			name := fmt.Sprintf("batch=%d/epoch=%d", batch, perEpoch)
			if perEpoch == 0 {
				name = fmt.Sprintf("batch=%d/epoch=all", batch)
			}
			b.Run(name, func(b *testing.B) {
				batches := perEpoch
				if batches == 0 {
					batches = b.N + 1
				}
				ds, err := Open("synthetic", fmt.Sprintf("examples=%d,size=224,channels=3,classes=1000", batches*batch),
					"train", Options{BatchSize: batch, Seed: 1, Shuffle: true, DropRemainder: true})
				if err != nil {
					b.Fatal(err)
				}
				defer ds.Close()
				// Open is not timed (the loop's first StopTimer would have counted it).
				b.ResetTimer()
				step := time.Duration(batch) * 8 * time.Millisecond / time.Duration(runtime.NumCPU()) // ≥ the workers' time
				for i := range b.N + 1 {
					b.StopTimer()
					time.Sleep(step)
					if i > 0 {
						b.StartTimer()
					}
					yieldOrReset(b, ds)
				}
			})
		}
	}
}
