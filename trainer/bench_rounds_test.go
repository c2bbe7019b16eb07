package trainer

import (
	"io"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/stretchr/testify/require"
)

// TestBenchmarkRounds: every configuration is timed in each round (steps timed steps a round, one median a
// round), the paired ratio of a configuration to itself is exactly 1, the caller's configurations are not
// changed, and the arguments are checked.
func TestBenchmarkRounds(t *testing.T) {
	bp, kp := tinyConfig(t, "bp"), tinyConfig(t, "kp")
	bp.Steps, kp.Steps = 0, 0
	cfgs := []Config{bp, kp}
	tps, err := BenchmarkRounds(cfgs, 1, 2, 3, nil)
	require.NoError(t, err)
	require.Equal(t, []Config{bp, kp}, cfgs, "the caller's configurations are left as they were")
	require.Len(t, tps, 2)
	for i, rule := range []string{"bp", "kp"} {
		tp := tps[i]
		require.Equal(t, rule, tp.Rule)
		require.Equal(t, 6, tp.Steps, "%s: 3 rounds of 2 timed steps", rule)
		require.Len(t, tp.RoundStepTimes, 3, rule)
		require.Positive(t, tp.FirstStep, rule)
		require.Positive(t, tp.StepTime, rule)
		require.InDelta(t, float64(tp.Batch)/tp.StepTime.Seconds(), tp.ImagesPerSecond, 1e-6*tp.ImagesPerSecond, rule)
		median, lowest, highest := tp.RatioTo(tp)
		require.Equal(t, []float64{1, 1, 1}, []float64{median, lowest, highest}, rule)
	}
	median, lowest, highest := tps[1].RatioTo(tps[0])
	require.Positive(t, median)
	require.LessOrEqual(t, lowest, median)
	require.LessOrEqual(t, median, highest)

	other := kp
	other.Backend = "go"
	bp.Backend = "auto"
	_, err = BenchmarkRounds([]Config{bp, other}, 1, 1, 2, nil)
	require.ErrorContains(t, err, "share one backend")
	for _, bad := range []struct{ warmup, steps, rounds int }{{-1, 1, 1}, {0, 0, 1}, {0, 1, 0}} {
		_, err = BenchmarkRounds([]Config{kp}, bad.warmup, bad.steps, bad.rounds, nil)
		require.ErrorContains(t, err, "want at least 1 round of at least 1 timed step", "%+v", bad)
	}
	_, err = BenchmarkRounds(nil, 1, 1, 1, nil)
	require.ErrorContains(t, err, "no configuration")
}

// TestBenchTurns: every session has one turn a round, in the order given and reversed every other round, and a turn
// starts with an untimed step exactly when the turn before it (or, for the first, the last warm-up) was another
// session's — so the session at a round's boundary, which runs twice in a row, does not get it twice.
func TestBenchTurns(t *testing.T) {
	type turn = benchTurn
	for _, tc := range []struct {
		n, rounds int
		want      []turn
	}{
		{1, 3, []turn{{0, false}, {0, false}, {0, false}}},
		{2, 1, []turn{{0, true}, {1, true}}},
		{2, 3, []turn{{0, true}, {1, true}, {1, false}, {0, true}, {0, false}, {1, true}}},
		{3, 2, []turn{{0, true}, {1, true}, {2, true}, {2, false}, {1, true}, {0, true}}},
	} {
		require.Equal(t, tc.want, benchTurns(tc.n, tc.rounds), "%d sessions, %d rounds", tc.n, tc.rounds)
	}
}

// TestRatioTo: the median (of an odd and an even count) and range of the round-by-round ratios, over the rounds
// both measured, skipping rounds without a time.
func TestRatioTo(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		rule, base []time.Duration
		want       [3]float64
	}{
		{"odd", ms(12, 30, 10), ms(10, 20, 10), [3]float64{1.2, 1, 1.5}},
		{"even", ms(11, 13, 10, 40), ms(10, 10, 10, 10), [3]float64{1.2, 1, 4}},
		{"base has fewer rounds", ms(20, 30, 99), ms(10, 10), [3]float64{2.5, 2, 3}},
		{"a round without a time", ms(20, 30, 40), ms(10, 0, 10), [3]float64{3, 2, 4}},
		{"no common round", ms(20), nil, [3]float64{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			median, lowest, highest := (&Throughput{RoundStepTimes: tc.rule}).RatioTo(&Throughput{RoundStepTimes: tc.base})
			require.InDeltaSlice(t, tc.want[:], []float64{median, lowest, highest}, 1e-12)
		})
	}
}

// countingDataset counts the batches a benchmark session takes from its pipeline.
type countingDataset struct {
	train.Dataset
	yields int
}

func (d *countingDataset) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	d.yields++
	return d.Dataset.Yield()
}

// TestBenchmarkFeeds: -feed pipeline takes a new batch from the input pipeline every step, host and device take
// one and keep it; host drops the batch's device copy before every step (the step transfers it again), device
// keeps it there; the throughput names its feed; an unknown feed is refused, naming -feed.
func TestBenchmarkFeeds(t *testing.T) {
	for _, feed := range Feeds {
		t.Run(string(feed), func(t *testing.T) {
			cfg := tinyConfig(t, "kp")
			cfg.Feed = feed
			backend, err := newRunBackend(cfg.Backend, 1, io.Discard)
			require.NoError(t, err)
			defer backend.Finalize()
			s, err := newBenchSession(backend, cfg, io.Discard)
			require.NoError(t, err)
			defer s.r.close()
			counted := &countingDataset{Dataset: s.ds}
			s.ds = counted
			require.NoError(t, s.trainSteps(2, false))
			for step := range 3 {
				if feed != FeedPipeline {
					b, err := s.keptBatch()
					require.NoError(t, err)
					for _, held := range b.tensors() {
						require.Equal(t, feed == FeedDevice, held.IsOnDevice(0),
							"step %d: a device feed's batch stays on the device, a host feed's is back in host memory", step)
						require.True(t, held.IsLocal() || feed == FeedDevice, "step %d: a host feed's batch has its host copy", step)
					}
				}
				require.NoError(t, s.trainSteps(1, true))
			}
			want := map[Feed]int{FeedPipeline: 5, FeedHost: 1, FeedDevice: 1}[feed]
			require.Equal(t, want, counted.yields, "batches taken from the pipeline in 5 steps")
			require.Equal(t, feed == FeedPipeline, s.batch == nil)
			tp := s.throughput()
			require.Equal(t, feed, tp.Feed)
			require.Equal(t, 3, tp.Steps)
			require.Positive(t, tp.StepTime)
		})
	}
	cfg := tinyConfig(t, "bp")
	cfg.Feed = "disk"
	_, err := BenchmarkRounds([]Config{cfg}, 1, 1, 1, nil)
	require.ErrorContains(t, err, `-feed "disk"`)
	cfg.Feed = ""
	tps, err := BenchmarkRounds([]Config{cfg}, 1, 1, 1, nil)
	require.NoError(t, err)
	require.Equal(t, FeedPipeline, tps[0].Feed, "no feed given: the pipeline")
}
