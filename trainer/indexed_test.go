package trainer

import (
	gocontext "context"
	"io"
	"path/filepath"
	"testing"

	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestIndexedTrainingMatchesHostBatches: on one XLA device the training set is read as indexed batches (MNIST's
// images on the device, each step's batch gathered there) — not with data parallelism, nor for nowt bench's host and
// device feeds, nor on the pure-Go backend — and a run trained so logs the same losses, accuracies and angles, bit
// for bit, as the same run with its batches made on the host, through a resume from its middle checkpoint.
func TestIndexedTrainingMatchesHostBatches(t *testing.T) {
	isXLA := xla.TestBackendIsXLA()
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		indexed bool
	}{
		{"training", func(*Config) {}, isXLA},
		{"bench-pipeline", func(c *Config) { c.Feed = FeedPipeline }, isXLA},
		{"bench-host", func(c *Config) { c.Feed = FeedHost }, false},
		{"bench-device", func(c *Config) { c.Feed = FeedDevice }, false},
		{"host-batches", func(c *Config) { c.hostBatches = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig(t, "bp")
			tc.change(&cfg)
			r, err := setup(cfg, io.Discard, "", true)
			require.NoError(t, err)
			defer r.close()
			require.Equal(t, tc.indexed, r.trainDS.Indexed())
		})
	}
	if !isXLA {
		t.Skipf("indexed batches are read on XLA only: set %s=xla:cpu (make test's XLA pass does)", xla.TestBackendEnv)
	}

	indexed := tinyConfig(t, "kp")
	hostMade := indexed
	hostMade.OutDir, hostMade.hostBatches = t.TempDir(), true
	logs := map[string][]Record{}
	for name, c := range map[string]Config{"indexed": indexed, "host": hostMade} {
		_, err := Train(gocontext.Background(), c, io.Discard, false)
		require.NoError(t, err, name)
		logs[name], err = ReadRecords(filepath.Join(c.OutDir, metricsFileName))
		require.NoError(t, err, name)
		for i := range logs[name] {
			logs[name][i].ImagesPerSecond = 0 // the one thing measured, not computed
		}
	}
	require.NotEmpty(t, logs["host"])
	require.Equal(t, logs["host"], logs["indexed"], "indexed batches train as batches made on the host")
}
