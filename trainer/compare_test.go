package trainer

import (
	"bytes"
	gocontext "context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

func ptr(v float64) *float64 { return &v }

// syntheticRecords makes a plausible metrics log: accuracy rising, angles falling to finalAngle.
func syntheticRecords(layers []string, finalTop1, finalAngle float64) []Record {
	var records []Record
	for step := 0; step <= 40; step += 10 {
		r := Record{Step: step, Epoch: float64(step) / 20, Loss: 2.3 - 0.04*float64(step), LearningRate: 0.05}
		if step > 0 && step%20 == 0 {
			top1 := finalTop1 * float64(step) / 40
			r.TestTop1, r.TestTop5, r.TestLoss = ptr(top1), ptr(math.Min(1, top1+0.2)), ptr(1.0)
		}
		for i, l := range layers {
			w := 90 - (90-finalAngle-float64(i))*float64(step)/40
			r.Layers = append(r.Layers, LayerAlignment{Layer: l, WeightAngle: w, DeltaAngle: w / 2, NormRatio: 1})
		}
		records = append(records, r)
	}
	return records
}

func syntheticComparison(layers []string) *Comparison {
	c := &Comparison{Records: map[string][]Record{}, Results: map[string]*Result{}}
	for rule, v := range map[string][2]float64{"bp": {0.91, 0}, "fa": {0.83, 60}, "kp": {0.9, 5}} {
		c.Records[rule] = syntheticRecords(layers, v[0], v[1])
		c.Results[rule] = &Result{Config: Config{Model: "mlp", Dataset: "mnist", Rule: rule, Epochs: 2, BatchSize: 32,
			LearningRate: 0.05, Schedule: "cosine", Loss: "softmax", Seed: 1}, Duration: 83 * time.Second}
	}
	return c
}

func requirePNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	require.NoError(t, err, path)
	require.Positive(t, img.Bounds().Dx(), path)
	require.Positive(t, img.Bounds().Dy(), path)
}

func TestWriteComparison(t *testing.T) {
	dir := t.TempDir()
	c := syntheticComparison([]string{"/model/fc0", "/model/fc1", "/model/output"})
	require.NoError(t, WriteComparison(dir, c, "nowt compare -rules bp,fa,kp -out "+dir))
	md, err := os.ReadFile(filepath.Join(dir, ResultsFileName))
	require.NoError(t, err)
	text := string(md)
	t.Log("\n" + text)
	for _, want := range []string{
		"# mlp on mnist", "nowt compare -rules bp,fa,kp", "Date: ",
		"| bp | 40 | 2.00 | 91.00 | 91.00 | 100.00 |", "| fa | 40 | 2.00 | 83.00 | 83.00 | 100.00 |",
		"| kp | 40 | 2.00 | 90.00 | 90.00 | 100.00 |",
		"fc0 ∠W / ∠δ (°)", "output ∠W / ∠δ (°)",
		"60.0 / 30.0", "61.0 / 30.5", "5.0 / 2.5", "1m23s",
	} {
		require.Contains(t, text, want)
	}
	// Rows in the conventional order.
	require.Less(t, strings.Index(text, "| bp |"), strings.Index(text, "| fa |"))
	require.Less(t, strings.Index(text, "| fa |"), strings.Index(text, "| kp |"))
	for _, name := range []string{"accuracy.png", "loss.png", "angles-fa.png", "angles-kp.png",
		"delta-angles-fa.png", "delta-angles-kp.png"} {
		requirePNG(t, filepath.Join(dir, name))
	}
	_, err = os.Stat(filepath.Join(dir, "angles-bp.png"))
	require.True(t, os.IsNotExist(err), "no angle plot for bp")
}

// TestFormatComparisonManyLayers: beyond 4 layers the angles go to two tables, layers as rows.
func TestFormatComparisonManyLayers(t *testing.T) {
	layers := []string{"/model/conv0", "/model/block1/conv1", "/model/block1/conv2", "/model/block2/conv1",
		"/model/block2/conv2", "/model/fc"}
	text := FormatComparison(syntheticComparison(layers), "", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	require.Contains(t, text, "| layer | bp | fa | kp |")
	require.Contains(t, text, "| block2/conv1 | 3.0 | 63.0 | 8.0 |")
	require.Contains(t, text, "| block2/conv1 | 1.5 | 31.5 | 4.0 |")
	require.NotContains(t, text, "∠W / ∠δ")
	require.Contains(t, text, "Date: 2025-01-02 03:04:05 UTC")
	// The plots cope with many layers too.
	require.NotNil(t, AnglePlot("kp", syntheticRecords(append(layers, layers...), 0.9, 5), false))
}

func TestCompare(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	base := DefaultConfig()
	base.Dataset, base.DataPath = "synthetic", "examples=64,size=8,channels=1,classes=4"
	base.Model, base.Params = "mlp", map[string]any{"mlp_hidden": "16", "mlp_activation": "relu"}
	base.Steps, base.Epochs, base.BatchSize, base.LogEvery, base.Progress = 4, 0, 16, 2, false
	base.OutDir = filepath.Join(t.TempDir(), "cmp")

	var out bytes.Buffer
	c, err := Compare(gocontext.Background(), base, []string{"bp", "kp"}, &out, "nowt compare -rules bp,kp")
	require.NoError(t, err, out.String())
	t.Log(out.String())
	require.Equal(t, []string{"bp", "kp"}, c.Rules)
	for _, rule := range c.Rules {
		require.Equal(t, StatusTrained, c.Status[rule])
		require.Equal(t, 4, c.Results[rule].Steps)
		require.NotEmpty(t, c.Records[rule])
		require.NotEmpty(t, c.Results[rule].Layers)
		require.FileExists(t, filepath.Join(base.OutDir, rule, "config.json"))
	}
	md, err := os.ReadFile(filepath.Join(base.OutDir, ResultsFileName))
	require.NoError(t, err)
	require.Contains(t, string(md), "| bp | 4 |")
	require.Contains(t, string(md), "| kp | 4 |")
	require.Contains(t, string(md), "nowt compare -rules bp,kp")
	requirePNG(t, filepath.Join(base.OutDir, "accuracy.png"))
	requirePNG(t, filepath.Join(base.OutDir, "angles-kp.png"))

	// Running it again reuses both finished runs: no training, same metrics.
	metricsPath := filepath.Join(base.OutDir, "kp", metricsFileName)
	before, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	checkpoints, err := listCheckpoints(filepath.Join(base.OutDir, "kp", checkpointDirName))
	require.NoError(t, err)
	require.NotEmpty(t, checkpoints)
	newest := checkpoints[len(checkpoints)-1] + ".json"
	statBefore, err := os.Stat(newest)
	require.NoError(t, err)
	out.Reset()
	c2, err := Compare(gocontext.Background(), base, []string{"bp", "kp"}, &out, "again")
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "Reusing the finished run")
	after, err := os.ReadFile(metricsPath)
	require.NoError(t, err)
	require.Equal(t, before, after)
	statAfter, err := os.Stat(newest)
	require.NoError(t, err)
	require.Equal(t, statBefore.ModTime(), statAfter.ModTime(), "reusing should not train (nor checkpoint)")
	for _, rule := range c2.Rules {
		require.Equal(t, StatusReused, c2.Status[rule])
		require.InDelta(t, c.Results[rule].TestTop1, c2.Results[rule].TestTop1, 1e-9)
		require.Equal(t, c.Results[rule].Duration.Round(time.Millisecond), c2.Results[rule].Duration.Round(time.Millisecond))
	}

	// A different configuration in the same folder is refused, not silently mixed.
	changed := base
	changed.LearningRate = 0.01
	_, err = Compare(gocontext.Background(), changed, []string{"bp"}, &out, "")
	require.ErrorContains(t, err, "learning_rate")

	_, err = Compare(gocontext.Background(), base, []string{"bp", "nope"}, &out, "")
	require.ErrorContains(t, err, "valid rules are")

	// More epochs than a finished run had: it is resumed, and its records continue.
	byEpochs := base
	byEpochs.Steps, byEpochs.Epochs, byEpochs.OutDir = 0, 1, filepath.Join(t.TempDir(), "epochs")
	_, err = Compare(gocontext.Background(), byEpochs, []string{"kp"}, &out, "")
	require.NoError(t, err)
	byEpochs.Epochs = 2
	out.Reset()
	c3, err := Compare(gocontext.Background(), byEpochs, []string{"kp"}, &out, "")
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "Resuming the unfinished run")
	require.Equal(t, StatusResumed, c3.Status["kp"])
	require.Equal(t, 8, c3.Results["kp"].Steps)
	require.Equal(t, 8, c3.Records["kp"][len(c3.Records["kp"])-1].Step)
	require.Equal(t, 0, c3.Records["kp"][0].Step)
}
