package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/nowt-ml/nowt/trainer"
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
	warmup := fs.Int("warmup-steps", 3, "untimed steps first (the first one, compilation included, is reported)")
	csv := fs.Bool("csv", false, "print comma-separated rows (with a header) instead of the table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := rf.config(fs)
	if err != nil {
		return err
	}
	if cfg.Dataset == "synthetic" && cfg.DataPath == "" {
		size := cfg.ImageSize
		if size == 0 {
			size = 224
		}
		cfg.DataPath = fmt.Sprintf("examples=%d,size=%d,channels=3,classes=1000", 2*cfg.BatchSize, size)
		cfg.TestLimit = cfg.BatchSize
	}
	if *warmup < 0 {
		return usagef("-warmup-steps %d: must be ≥ 0", *warmup)
	}
	if cfg.Steps < 1 {
		return usagef("-steps %d: bench times that many steps after -warmup-steps; must be ≥ 1", cfg.Steps)
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
	// Fixed-width columns, so that each row can be printed as soon as it is measured.
	row := "%9s  %4s  %6s  %7s  %10s  %10s  %10s  %11s  %8s\n"
	if *csv {
		row = "%s,%s,%s,%s,%s,%s,%s,%s,%s\n"
		fmt.Fprintf(stdout, row, "model", "rule", "batch", "devices", "first_step_s", "step_s", "images_per_s",
			"ratio_to_bp", "mirror_share")
	} else {
		fmt.Fprintf(stdout, row, "model", "rule", "batch", "devices", "first step", "step time", "images/s",
			"ratio to bp", "mirror")
	}
	for _, model := range splitList(cfg.Model) {
		var bpRate float64
		for _, rule := range splitList(cfg.Rule) {
			c := cfg
			c.Model, c.Rule = model, rule
			res, err := trainer.Benchmark(c, *warmup, cfg.Steps, stderr)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", model, rule, err)
			}
			if rule == "bp" {
				bpRate = res.ImagesPerSecond
			}
			ratio, mirror := "-", "-"
			if bpRate > 0 {
				ratio = fmt.Sprintf("%.3f", bpRate/res.ImagesPerSecond)
			}
			if res.MirrorTime > 0 {
				mirror = fmt.Sprintf("%.1f%%", 100*res.MirrorShare())
			}
			if *csv {
				fmt.Fprintf(stdout, row, model, rule, fmt.Sprint(c.BatchSize), fmt.Sprint(res.Devices),
					fmt.Sprintf("%.4f", res.FirstStep.Seconds()), fmt.Sprintf("%.6f", res.StepTime.Seconds()),
					fmt.Sprintf("%.1f", res.ImagesPerSecond), ratio, fmt.Sprintf("%.4f", res.MirrorShare()))
				continue
			}
			fmt.Fprintf(stdout, row, model, rule, fmt.Sprint(c.BatchSize), fmt.Sprint(res.Devices),
				res.FirstStep.Round(1e6), res.StepTime.Round(1e5), fmt.Sprintf("%.1f", res.ImagesPerSecond), ratio, mirror)
		}
	}
	return nil
}
