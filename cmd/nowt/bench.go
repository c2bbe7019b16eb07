package main

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
)

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags]",
		"Measures training throughput (images/s, mirror steps included) for each model and rule given, on the chosen\n"+
			"backend, and prints each rule's ratio to bp. Writes no files.\n\n"+
			"Example (GPU): nowt bench -backend xla:cuda -model resnet18,resnet50 -rule bp,kp -dataset synthetic -image-size 224 -batch 128 -steps 30",
		stderr)
	defaults := trainer.DefaultConfig()
	defaults.Dataset, defaults.Model, defaults.Rule, defaults.Steps = "synthetic", "resnet18", "bp,kp", 20
	defaults.Progress = false
	rf := addRunFlags(fs, defaults)
	warmup := fs.Int("warmup-steps", 3, "untimed steps first; the first compiles the graph and is reported as \"first step\", "+
		"so at least one runs even with 0")
	csv := fs.Bool("csv", false, "print comma-separated rows (with a header) instead of the table")
	rounds := fs.Int("rounds", 1, "with more than 1: set every rule of a model up at once and time -steps steps of each in turn, "+
		"the order reversed every other round, a turn that follows another rule's starting with one untimed step; the ratio to bp is then the median of the rounds' ratios (range in the last column), "+
		"steady against the machine's drift. Every rule's session stays in memory (one backend); an even count gives every rule "+
		"the same mean place in the order")
	control := fs.Bool("control", false, "also time bp a second time, after the listed rules (row bp-again): its ratio to bp is the "+
		"machine's noise, which a rule's ratio to bp has to exceed to mean anything (needs bp among -rule)")
	feed := fs.String("feed", string(trainer.FeedPipeline), "where each step takes its batch: pipeline (the input pipeline's next, "+
		"as training does), host (one batch, transferred from host memory every step, as the JAX and PyTorch rows of "+
		"scripts/peers) or device (one batch kept on the device: the step alone); one device only for host and device")
	fs.Lookup("steps").Usage = "timed steps of each rule (a round's, with -rounds)"
	hideFlags(fs, "out", "keep", "checkpoint-every", "log-every", "eval-every", "chance-guard", "divergence-guard",
		"progress", "epochs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := refuseHidden(fs, "bench", "it times -steps steps after -warmup-steps, with no evaluation, "+
		"record, checkpoint or file written"); err != nil {
		return err
	}
	cfg, err := rf.config(fs)
	if err != nil {
		return err
	}
	if *warmup < 0 {
		return usagef("-warmup-steps %d: must be ≥ 0", *warmup)
	}
	if *rounds < 1 {
		return usagef("-rounds %d: must be ≥ 1", *rounds)
	}
	cfg.Feed = trainer.Feed(*feed)
	if !slices.Contains(trainer.Feeds, cfg.Feed) {
		return usagef("-feed %q: want pipeline, host or device", *feed)
	}
	if cfg.Steps < 1 {
		return usagef("-steps %d: bench times that many steps (a round) after -warmup-steps; must be ≥ 1", cfg.Steps)
	}
	// (A -batch below 1 is left to the configuration's check, which names -batch.)
	if cfg.Dataset == "synthetic" && cfg.DataPath == "" && cfg.BatchSize > 0 {
		cfg.DataPath = benchSyntheticData(cfg.BatchSize, cfg.ImageSize, *warmup, cfg.Steps, *rounds)
		if cfg.TestLimit == 0 { // a -test-limit given stays
			cfg.TestLimit = cfg.BatchSize
		}
	}
	for _, list := range []struct{ flag, value string }{{"-model", cfg.Model}, {"-rule", cfg.Rule}} {
		names := splitList(list.value)
		if len(names) == 0 {
			return usagef("%s %q: give at least one name (a comma-separated list)", list.flag, list.value)
		}
		for i, name := range names {
			if slices.Contains(names[:i], name) {
				return usagef("%s %q: %s is given twice", list.flag, list.value, name)
			}
		}
	}
	for _, model := range splitList(cfg.Model) {
		for _, rule := range splitList(cfg.Rule) {
			c := cfg
			c.Model, c.Rule, c.OutDir = model, rule, "unused"
			if err := c.Validate(); err != nil {
				return rf.explain(fs, err)
			}
		}
	}
	if *control && !slices.Contains(splitList(cfg.Rule), "bp") {
		return usagef("-control times bp a second time: give bp among -rule (now %q)", cfg.Rule)
	}
	// A backend that cannot be had (an unknown spec, a plugin not installed) fails before the table's header.
	if _, _, err := xla.Select(cfg.Backend); err != nil {
		if specErr := (*xla.InvalidSpecError)(nil); errors.As(err, &specErr) {
			return usagef("-backend: %v", specErr)
		}
		return fmt.Errorf("selecting the backend: %w", err)
	}
	table := benchTable{out: stdout, csv: *csv, rounds: *rounds}
	if !*csv && cfg.Feed != trainer.FeedPipeline {
		fmt.Fprintf(stdout, "each step's batch: %s\n", map[trainer.Feed]string{
			trainer.FeedHost:   "one batch, transferred from host memory every step (-feed host)",
			trainer.FeedDevice: "one batch, kept on the device (-feed device)",
		}[cfg.Feed])
	}
	table.header()
	for _, model := range splitList(cfg.Model) {
		var cfgs []trainer.Config
		for _, rule := range splitList(cfg.Rule) {
			c := cfg
			c.Model, c.Rule = model, rule
			cfgs = append(cfgs, c)
		}
		if *control {
			c := cfg
			c.Model, c.Rule = model, "bp"
			cfgs = append(cfgs, c)
		}
		// label names results[i]: the control's row is bp-again, compared with the first bp.
		label := func(i int, res *trainer.Throughput) {
			if *control && i == len(cfgs)-1 {
				res.Rule = controlRule
			}
		}
		if *rounds == 1 { // one rule at a time, each row printed as soon as it is measured
			var bp *trainer.Throughput
			for i, c := range cfgs {
				res, err := trainer.Benchmark(c, *warmup, cfg.Steps, stderr) // its errors name model and rule
				if err != nil {
					return err
				}
				label(i, res)
				if res.Rule == "bp" {
					bp = res
				}
				table.row(res, bp)
			}
			continue
		}
		results, err := trainer.BenchmarkRounds(cfgs, *warmup, cfg.Steps, *rounds, stderr)
		if err != nil {
			return err
		}
		var bp *trainer.Throughput
		for i, res := range results {
			label(i, res)
			if res.Rule == "bp" {
				bp = res
			}
		}
		for _, res := range results {
			table.row(res, bp)
		}
	}
	return nil
}

// benchSyntheticData is bench's synthetic data set where -data gives none: ImageNet-like images (side size, 224
// when 0; 1000 classes) and one epoch that holds every batch a configuration trains (the warm-up, at least one
// step, and every round's), so that no trained batch repeats another. (Until the input pipeline prepared batches
// ahead across an epoch's end, the two-batch epoch bench used to default to also made every other timed step wait
// for its whole batch.) The epoch stops at benchMaxExamples (the data set draws every example's label when opened).
func benchSyntheticData(batch, size, warmup, steps, rounds int) string {
	if size == 0 {
		size = 224
	}
	// Each round's turn may start with one untimed step (trainer.BenchmarkRounds).
	batches := max(2, min(max(1, warmup)+rounds*(steps+1), benchMaxExamples/batch))
	return fmt.Sprintf("examples=%d,size=%d,channels=3,classes=1000", batches*batch, size)
}

// benchMaxExamples bounds the epoch of bench's default synthetic data (see benchSyntheticData).
const benchMaxExamples = 1 << 20

// controlRule labels the row of -control: bp timed a second time, after the listed rules.
const controlRule = "bp-again"

// benchTable prints bench's rows: fixed-width columns, so that each row can be printed as soon as it is measured,
// or comma-separated values.
type benchTable struct {
	out    io.Writer
	csv    bool
	rounds int
}

const benchTextRow = "%9s  %8s  %6s  %7s  %10s  %10s  %10s  %11s  %8s"

func (t benchTable) header() {
	if t.csv {
		fmt.Fprintln(t.out, "model,rule,batch,devices,first_step_s,step_s,images_per_s,ratio_to_bp,mirror_share,rounds,ratio_min,ratio_max")
		return
	}
	fmt.Fprintf(t.out, benchTextRow, "model", "rule", "batch", "devices", "first step", "step time", "images/s",
		"ratio to bp", "mirror")
	if t.rounds > 1 {
		fmt.Fprintf(t.out, "  %11s", fmt.Sprintf("%d rounds", t.rounds))
	}
	fmt.Fprintln(t.out)
}

// row prints res; its ratio to bp (res's step ÷ bp's, the median of the rounds' ratios and their range) is "-" when
// bp is nil (not measured before res, or not among the rules).
func (t benchTable) row(res, bp *trainer.Throughput) {
	ratio, lowest, highest := 0.0, 0.0, 0.0
	if bp != nil {
		ratio, lowest, highest = res.RatioTo(bp)
	}
	if t.csv {
		fmt.Fprintf(t.out, "%s,%s,%d,%d,%.4f,%.6f,%.1f,%s,%.4f,%d,%s,%s\n", res.Model, res.Rule, res.Batch, res.Devices,
			res.FirstStep.Seconds(), res.StepTime.Seconds(), res.ImagesPerSecond, formatRatio(ratio),
			res.MirrorShare(), t.rounds, formatRatio(lowest), formatRatio(highest))
		return
	}
	mirror := "-"
	if res.MirrorTime > 0 {
		mirror = fmt.Sprintf("%.1f%%", 100*res.MirrorShare())
	}
	fmt.Fprintf(t.out, benchTextRow, res.Model, res.Rule, fmt.Sprint(res.Batch), fmt.Sprint(res.Devices),
		res.FirstStep.Round(1e6), res.StepTime.Round(1e5), fmt.Sprintf("%.1f", res.ImagesPerSecond), shortRatio(ratio), mirror)
	if t.rounds > 1 {
		spread := "-"
		if lowest > 0 {
			spread = shortRatio(lowest) + "–" + shortRatio(highest)
		}
		fmt.Fprintf(t.out, "  %11s", spread)
	}
	fmt.Fprintln(t.out)
}

// shortRatio prints a ratio to bp for the text table in at most five characters — three decimals under 10, fewer
// above, where a round on a busy machine can put it — so that its columns stay aligned; "-" for none.
func shortRatio(r float64) string {
	switch {
	case r <= 0:
		return "-"
	case r < 9.9995:
		return fmt.Sprintf("%.3f", r)
	case r < 99.995:
		return fmt.Sprintf("%.2f", r)
	case r < 999.95:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// formatRatio prints a ratio to bp, "-" for none.
func formatRatio(r float64) string {
	if r <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", r)
}
