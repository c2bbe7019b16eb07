package input

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// SyntheticConfig is the shape of a synthetic dataset: random images with uniform pixels in [0,1] and
// random labels, both a deterministic function of (Options.Seed, example index). Images are generated on
// the fly by the workers, so any size costs no memory.
type SyntheticConfig struct {
	Examples int // number of examples (default 1024)
	Height   int // image height (default Options.ImageSize, else 32)
	Width    int // image width (default Height)
	Channels int // channels (default 3)
	Classes  int // number of classes (default 10)
}

// ParseSyntheticConfig parses a spec such as "examples=1024,height=32,width=32,channels=3,classes=10"
// (any subset, in any order; "size=S" sets both height and width); missing values take the defaults,
// with imageSize (if > 0) as the default side. A bad spec is a *SettingError (of -data).
func ParseSyntheticConfig(spec string, imageSize int) (SyntheticConfig, error) {
	cfg := SyntheticConfig{}
	for _, kv := range strings.Split(spec, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n <= 0 {
			return cfg, &SettingError{Setting: "-data", Err: fmt.Errorf("synthetic spec %q: %q is not key=positive integer", spec, kv)}
		}
		switch strings.TrimSpace(k) {
		case "examples":
			cfg.Examples = n
		case "height":
			cfg.Height = n
		case "width":
			cfg.Width = n
		case "size":
			cfg.Height, cfg.Width = n, n
		case "channels":
			cfg.Channels = n
		case "classes":
			cfg.Classes = n
		default:
			return cfg, &SettingError{Setting: "-data", Err: fmt.Errorf("synthetic spec %q: unknown key %q (valid: examples, height, width, size, channels, classes)", spec, k)}
		}
	}
	if cfg.Examples == 0 {
		cfg.Examples = 1024
	}
	if cfg.Height == 0 {
		cfg.Height = 32
		if imageSize > 0 {
			cfg.Height = imageSize
		}
	}
	if cfg.Width == 0 {
		cfg.Width = cfg.Height
	}
	if cfg.Channels == 0 {
		cfg.Channels = 3
	}
	if cfg.Classes == 0 {
		cfg.Classes = 10
	}
	if cfg.Classes < 2 {
		return cfg, &SettingError{Setting: "-data", Err: fmt.Errorf("synthetic spec %q: classes=%d: a classifier needs at least 2 classes", spec, cfg.Classes)}
	}
	return cfg, nil
}

func openSynthetic(spec, split string, opts Options) (*source, error) {
	if err := checkSplit(split, "train", "test"); err != nil {
		return nil, err
	}
	cfg, err := ParseSyntheticConfig(spec, opts.ImageSize)
	if err != nil {
		return nil, err
	}
	if cfg.Height*cfg.Width*cfg.Channels > maxImagePixels {
		return nil, fmt.Errorf("synthetic images of %dx%dx%d are too large", cfg.Height, cfg.Width, cfg.Channels)
	}
	// The test split draws from a different stream than the train split.
	seed := mix(uint64(opts.Seed), 0x73796e)
	if split == "test" {
		seed = mix(seed, 1)
	}
	labels := make([]int32, cfg.Examples)
	for i := range labels {
		labels[i] = int32(rand.New(rand.NewPCG(seed, uint64(i))).IntN(cfg.Classes))
	}
	h, w, c := cfg.Height, cfg.Width, cfg.Channels
	mean, std := make([]float32, c), make([]float32, c)
	for i := range c {
		mean[i], std[i] = 0.5, float32(1/math.Sqrt(12))
	}
	return &source{
		n: cfg.Examples, h: h, w: w, c: c, numClasses: cfg.Classes, labels: labels, mean: mean, std: std,
		load: func(i int, dst []float32, aug *rand.Rand) error {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			r.IntN(cfg.Classes) // the label
			img := dst
			if aug != nil {
				img = make([]float32, len(dst))
			}
			for k := range img {
				img[k] = r.Float32()
			}
			if aug != nil {
				padCropFlip(img, h, w, c, max(1, min(h, w)/8), 1, dst, aug)
			}
			return nil
		},
	}, nil
}
