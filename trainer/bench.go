package trainer

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/internal/stats"
	"github.com/nowt-ml/nowt/xla"
	"github.com/pkg/errors"
)

// Feed is where a benchmark's training steps take their batches ([Config.Feed]): the three take a step apart into
// the input pipeline, the batch's transfer to the device and the step itself.
type Feed string

const (
	// FeedPipeline takes the input pipeline's next batch each step, as training does (the default).
	FeedPipeline Feed = "pipeline"
	// FeedHost takes one batch from the pipeline and transfers it from host memory again each step, as JAX's
	// and PyTorch's benchmark rows do (scripts/peers): the pipeline's cost is left out, the transfer's kept.
	FeedHost Feed = "host"
	// FeedDevice takes one batch from the pipeline, transfers it once and keeps it on the device: the step
	// alone, as JAX's rows with --feed device.
	FeedDevice Feed = "device"
)

// Feeds lists the valid [Feed] values.
var Feeds = []Feed{FeedPipeline, FeedHost, FeedDevice}

// Throughput is the measured training speed of one configuration.
type Throughput struct {
	Model, Rule     string
	Batch           int
	Feed            Feed          // where each step's batch came from
	Devices         int           // the batch is split over this many devices
	Steps           int           // timed steps, over all rounds
	FirstStep       time.Duration // the first step, compilation included
	StepTime        time.Duration // median of the timed steps (mirror steps included)
	MirrorTime      time.Duration // median time of a step's weight-mirror steps (0 for rules without them)
	ImagesPerSecond float64       // BatchSize / StepTime
	// RoundStepTimes is the median step of each round of [BenchmarkRounds] (one entry for [Benchmark]).
	RoundStepTimes []time.Duration
}

// MirrorShare is the fraction of a step's time spent in weight-mirror steps.
func (t *Throughput) MirrorShare() float64 {
	if t.StepTime <= 0 {
		return 0
	}
	return t.MirrorTime.Seconds() / t.StepTime.Seconds()
}

// RatioTo compares t's step with base's round by round (t's median step of a round ÷ base's of the same round) and
// returns the median of those ratios and their range. Measured in the same rounds of one [BenchmarkRounds], the
// ratio is paired: a slow minute of the machine slows both steps of a round alike. It returns zeros when the two
// have no rounds in common.
func (t *Throughput) RatioTo(base *Throughput) (mid, lowest, highest float64) {
	n := min(len(t.RoundStepTimes), len(base.RoundStepTimes))
	ratios := make([]float64, 0, n)
	for i := range n {
		if t.RoundStepTimes[i] > 0 && base.RoundStepTimes[i] > 0 {
			ratios = append(ratios, t.RoundStepTimes[i].Seconds()/base.RoundStepTimes[i].Seconds())
		}
	}
	if len(ratios) == 0 {
		return 0, 0, 0
	}
	return stats.Median(ratios), slices.Min(ratios), slices.Max(ratios)
}

// Benchmark trains cfg for warmup untimed steps (compilation included) and then steps timed steps, mirror steps
// included for rules that use them, and reports the training throughput from the median step. It writes no files.
func Benchmark(cfg Config, warmup, steps int, out io.Writer) (*Throughput, error) {
	tps, err := BenchmarkRounds([]Config{cfg}, warmup, steps, 1, out)
	if err != nil {
		return nil, err
	}
	return tps[0], nil
}

// BenchmarkRounds times several configurations against each other (typically one model under several rules): it
// sets each up and trains it for warmup untimed steps (compilation included), then runs rounds rounds in which each
// configuration trains steps timed steps in turn, in the order given and reversed every other round, so that a
// drift of the machine's speed reaches every configuration alike and [Throughput.RatioTo] can compare them round
// by round; a turn that follows another configuration's starts with one untimed step, so that every timed turn
// starts with its own configuration in the caches. Every configuration stays set up until the end, all on one backend (that of cfgs[0].Backend, which
// all must name). It writes no files.
func BenchmarkRounds(cfgs []Config, warmup, steps, rounds int, out io.Writer) (tps []*Throughput, err error) {
	defer func() {
		if len(cfgs) > 0 {
			err = withMemoryAdvice(err, cfgs[0])
		}
	}()
	defer recoverAsError("benchmarking", &err)
	if out == nil {
		out = io.Discard
	}
	if steps < 1 || warmup < 0 || rounds < 1 {
		return nil, fmt.Errorf("benchmark: %d rounds of %d timed steps after %d warm-up steps: want at least 1 round of at least 1 timed step and no negative count", rounds, steps, warmup)
	}
	if len(cfgs) == 0 {
		return nil, errors.New("benchmark: no configuration to time")
	}
	cfgs = slices.Clone(cfgs) // the caller's stay as they are
	for i := range cfgs {
		cfgs[i].OutDir = "unused"
		if cfgs[i].Epochs <= 0 && cfgs[i].Steps <= 0 {
			cfgs[i].Steps = warmup + rounds*(steps+1) // at most one untimed step a turn (benchTurns)
		}
		if err := cfgs[i].Validate(); err != nil {
			return nil, err
		}
		if cfgs[i].Feed == "" {
			cfgs[i].Feed = FeedPipeline
		}
		if !slices.Contains(Feeds, cfgs[i].Feed) {
			return nil, invalid("-feed", "-feed %q: want one of %s (where each timed step takes its batch)", cfgs[i].Feed, feedNames())
		}
		if cfgs[i].Backend != cfgs[0].Backend {
			return nil, fmt.Errorf("benchmark: %s/%s on backend %q and %s/%s on %q: configurations timed against each other share one backend",
				cfgs[0].Model, cfgs[0].Rule, cfgs[0].Backend, cfgs[i].Model, cfgs[i].Rule, cfgs[i].Backend)
		}
	}
	notices := cfgs[0].Notices
	if notices == nil {
		notices = out
	}
	devices := 1 // the sessions share the backend: it has as many devices as the most any of them uses
	for _, cfg := range cfgs {
		d := backendDevices(cfg)
		if d == xla.AllDevices {
			devices = d
			break
		}
		devices = max(devices, d)
	}
	backend, err := newRunBackend(cfgs[0].Backend, devices, notices)
	if err != nil {
		return nil, err
	}
	announceEngine(notices, backend, cfgs[0].Dataset)
	sessions := make([]*benchSession, 0, len(cfgs))
	defer func() {
		for _, s := range sessions {
			s.r.close()
		}
		backend.Finalize()
	}()
	for _, cfg := range cfgs {
		s, err := newBenchSession(backend, cfg, out)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, s)
		if err := s.trainSteps(max(1, warmup), false); err != nil {
			return nil, err
		}
	}
	for _, turn := range benchTurns(len(sessions), rounds) {
		s := sessions[turn.session]
		if turn.switched {
			if err := s.trainSteps(1, false); err != nil {
				return nil, err
			}
		}
		if err := s.trainSteps(steps, true); err != nil {
			return nil, err
		}
	}
	for _, s := range sessions {
		tps = append(tps, s.throughput())
	}
	return tps, nil
}

// benchTurn is one turn of [BenchmarkRounds]: a session's timed steps, after one untimed step when the turn before
// was another session's.
type benchTurn struct {
	session  int
	switched bool
}

// benchTurns orders the turns of n sessions over rounds rounds: every session once a round, in the order given and
// reversed every other round (so that a linear drift of the machine's speed reaches every session alike). A turn
// that follows another session's starts with one untimed step, so that no timed step pays for the switch (the
// other session's weights and programs in the caches): at a round's boundary a session runs two turns in a row,
// and without it the second would start warm where every other turn starts cold.
func benchTurns(n, rounds int) []benchTurn {
	var turns []benchTurn
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	previous := n - 1 // the last session set up (and warmed up) before the first round
	for round := range rounds {
		if round > 0 {
			slices.Reverse(order)
		}
		for _, session := range order {
			turns = append(turns, benchTurn{session: session, switched: session != previous})
			previous = session
		}
	}
	return turns
}

// feedNames lists [Feeds] for messages.
func feedNames() string {
	names := make([]string, len(Feeds))
	for i, f := range Feeds {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// benchSession is one configuration of a benchmark, set up and kept ready to train more steps.
type benchSession struct {
	r       *run
	ds      train.Dataset
	batch   *yielded // the one batch of FeedHost and FeedDevice, taken at the first step
	wmSteps int
	steps   int // steps trained so far, warm-up included

	first        time.Duration
	stepTimes    []time.Duration // timed steps
	mirrorTimes  []time.Duration // their mirror steps
	roundMedians []time.Duration // the median step of each round of timed steps
}

// newBenchSession sets cfg up on backend: model, variables, trainer, mirror program and training batches.
func newBenchSession(backend backends.Backend, cfg Config, out io.Writer) (s *benchSession, err error) {
	var r *run
	defer func() { // GoMLX reports graph-building errors by panicking
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
		if err != nil {
			if r != nil {
				r.close()
			}
			err = fmt.Errorf("%s: %w", benchmarkWhat(cfg), err)
		}
	}()
	if r, err = setupOn(backend, cfg, out, "", true); err != nil {
		return nil, err
	}
	// The model's variables were made on the host by setupOn: nothing else is compiled before the first step (the
	// alignment metrics, which the bench does not report, would cost a compilation as long as the step's).
	s = &benchSession{r: r, wmSteps: context.GetParamOr(r.ctx, feedback.ParamWMSteps, 1)}
	if feedback.HasMirrorLayers(r.ctx) {
		if r.mirrorExec, err = newMirrorExec(r); err != nil {
			return nil, err
		}
	}
	// The learning rate only matters for what is computed, not for its speed: keep it constant.
	optimizers.LearningRateVar(r.ctx, dtypes.Float32, cfg.LearningRate)
	if s.ds, err = r.trainingBatches(); err != nil {
		return nil, err
	}
	return s, nil
}

// trainSteps trains n steps (each with its mirror steps), recording their times when timed; the session's very first
// step, compilation included, is kept apart as the first step.
func (s *benchSession) trainSteps(n int, timed bool) (err error) {
	what := benchmarkWhat(s.r.cfg)
	defer recoverAsError(what, &err)
	var round []time.Duration
	for range n {
		started := time.Now()
		if err := s.trainStep(); err != nil {
			return fmt.Errorf("%s: training step %d: %w", what, s.steps, err)
		}
		mirrorStarted := time.Now()
		if s.r.mirrorExec != nil {
			if err := s.r.mirror(s.wmSteps); err != nil {
				return fmt.Errorf("%s: mirror steps after step %d: %w", what, s.steps, err)
			}
		}
		done := time.Now()
		switch {
		case s.steps == 0:
			s.first = done.Sub(started)
		case timed:
			round = append(round, done.Sub(started))
			if s.r.mirrorExec != nil {
				s.mirrorTimes = append(s.mirrorTimes, done.Sub(mirrorStarted))
			}
		}
		s.steps++
	}
	if len(round) > 0 {
		s.stepTimes = append(s.stepTimes, round...)
		s.roundMedians = append(s.roundMedians, stats.Median(round))
	}
	return nil
}

// trainStep runs one training step on the batch the session's feed gives and waits for it to finish.
func (s *benchSession) trainStep() error {
	if s.r.cfg.Feed == FeedPipeline {
		return trainStep(s.r.trainer, s.ds)
	}
	b, err := s.keptBatch()
	if err != nil {
		return err
	}
	return trainStepOn(s.r.trainer, b.spec, b.inputs, b.labels)
}

// keptBatch returns the batch of FeedHost and FeedDevice, taken from the pipeline at the first call: for
// FeedHost in host memory only (a buffer shared with a CPU backend becomes a host copy), so that the step
// transfers it again; for FeedDevice as the last step left it, on the device.
func (s *benchSession) keptBatch() (*yielded, error) {
	if s.batch == nil {
		if _, ok := s.ds.(train.DistributedDataset); ok {
			return nil, fmt.Errorf("-feed %s: times one device's step; with %d devices use -feed %s", s.r.cfg.Feed, s.r.devices(), FeedPipeline)
		}
		spec, inputs, labels, err := s.ds.Yield()
		if err != nil {
			return nil, err
		}
		s.batch = &yielded{spec: spec, inputs: inputs, labels: labels}
	}
	if s.r.cfg.Feed == FeedHost {
		for _, t := range s.batch.tensors() {
			if err := t.ToLocal(); err != nil {
				return nil, errors.Wrap(err, "moving the benchmark's batch back to host memory")
			}
		}
	}
	return s.batch, nil
}

// benchmarkWhat names cfg in a benchmark's errors.
func benchmarkWhat(cfg Config) string {
	return fmt.Sprintf("benchmarking %s under rule %s", cfg.Model, cfg.Rule)
}

// throughput reports what the session measured.
func (s *benchSession) throughput() *Throughput {
	cfg, step := s.r.cfg, stats.Median(s.stepTimes)
	tp := &Throughput{Model: cfg.Model, Rule: cfg.Rule, Batch: cfg.BatchSize, Feed: cfg.Feed, Devices: s.r.devices(),
		Steps: len(s.stepTimes), FirstStep: s.first, StepTime: step, MirrorTime: stats.Median(s.mirrorTimes),
		RoundStepTimes: s.roundMedians}
	if step > 0 {
		tp.ImagesPerSecond = float64(cfg.BatchSize) / step.Seconds()
	}
	return tp
}

// trainStep runs one training step on the next batch of ds, distributed when ds is a train.DistributedDataset,
// and waits for it to finish (it reads the step's metrics to the host), so that it can be timed.
func trainStep(t *train.Trainer, ds train.Dataset) error {
	var metrics []*tensors.Tensor
	if dds, ok := ds.(train.DistributedDataset); ok {
		spec, inputs, labels, err := dds.DistributedYield()
		if err != nil {
			return err
		}
		if metrics, err = t.DistributedTrainStep(dds.Strategy(), dds.DeviceAssignment(), spec, inputs, labels); err != nil {
			return err
		}
	} else {
		spec, inputs, labels, err := ds.Yield()
		if err != nil {
			return err
		}
		return trainStepOn(t, spec, inputs, labels)
	}
	return readMetrics(metrics)
}

// trainStepOn runs one training step on the given batch and waits for it to finish (it reads the step's
// metrics to the host).
func trainStepOn(t *train.Trainer, spec any, inputs, labels []*tensors.Tensor) error {
	metrics, err := t.TrainStep(spec, inputs, labels)
	if err != nil {
		return err
	}
	return readMetrics(metrics)
}

// readMetrics reads a step's metrics to the host, which waits for the step to finish.
func readMetrics(metrics []*tensors.Tensor) error {
	for _, m := range metrics {
		if err := m.ConstFlatData(func(any) {}); err != nil {
			return errors.Wrap(err, "reading the training step's metrics")
		}
	}
	return nil
}
