package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// nowt runs the command in-process and returns its exit status, stdout and stderr.
func nowt(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// tinyTrain are the flags of a run of a few seconds: an MLP on a 512-image MNIST subset.
func tinyTrain(rule, out string) []string {
	return []string{"train", "-rule", rule, "-model", "mlp", "-hidden", "64", "-activation", "relu",
		"-dataset", "mnist", "-train-limit", "512", "-test-limit", "256", "-batch", "32", "-steps", "40",
		"-lr", "0.01", "-schedule", "constant", "-log-every", "10", "-eval-every", "20",
		"-checkpoint-every", "20", "-keep", "5", "-wm-warmup", "4", "-progress=false", "-out", out}
}

// TestTrainResumeEveryRule: for every rule, the command trains, writes config, metrics and checkpoints, the loss
// falls, and a resume from the middle checkpoint (as after a crash) reproduces the same metrics exactly.
func TestTrainResumeEveryRule(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	for _, rule := range []string{"bp", "fa", "ss", "wm", "kp"} {
		t.Run(rule, func(t *testing.T) {
			out := t.TempDir()
			// Rule names are case-insensitive and stored in lower case (then -resume -rule bp is the same run).
			code, stdout, stderr := nowt(t, tinyTrain(strings.ToUpper(rule), out)...)
			require.Equal(t, 0, code, "stderr: %s", stderr)
			require.Contains(t, stdout, "test top-1")
			require.Contains(t, stdout, "weight angle")
			require.FileExists(t, filepath.Join(out, "config.json"))
			cfg, err := trainer.ReadConfig(out)
			require.NoError(t, err)
			require.Equal(t, rule, cfg.Rule)
			full, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
			require.NoError(t, err)
			warmup := 0 // The weight mirror's warm-up records come first.
			for _, r := range full {
				if r.WarmupMirrorSteps != nil {
					warmup++
				}
			}
			if rule == "wm" {
				require.Equal(t, 5, warmup, "warm-up records: before the 4 warm-up mirror steps and after each")
			}
			steps := full[warmup:]
			require.Len(t, steps, 5) // steps 0, 10, 20, 30, 40
			require.Len(t, steps[len(steps)-1].Layers, 2)
			require.NotNil(t, steps[0].TestLoss)
			require.NotNil(t, steps[4].TestLoss)
			require.Less(t, *steps[4].TestLoss, 0.8**steps[0].TestLoss, "test loss must fall")
			require.Greater(t, *steps[4].TestTop1, *steps[0].TestTop1+0.2)

			// Crash after step 20: drop the last checkpoint, then resume.
			ckpts, err := filepath.Glob(filepath.Join(out, "checkpoints", "checkpoint-*step-000000040.*"))
			require.NoError(t, err)
			require.Len(t, ckpts, 2)
			for _, f := range ckpts {
				require.NoError(t, os.Remove(f))
			}
			code, _, stderr = nowt(t, "train", "-resume", "-rule", rule, "-out", out, "-progress=false")
			require.Equal(t, 0, code, "stderr: %s", stderr)
			resumed, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
			require.NoError(t, err)
			require.Len(t, resumed, len(full))
			for i := range full {
				full[i].ImagesPerSecond, resumed[i].ImagesPerSecond = 0, 0
				require.Equal(t, full[i], resumed[i], "record %d (step %d)", i, full[i].Step)
			}
			require.FileExists(t, filepath.Join(out, "checkpoints", "checkpoint-n000000040-step-000000040.json"))

			// And the checkpoint evaluates to the run's final metrics.
			code, stdout, stderr = nowt(t, "eval", "-out", out)
			require.Equal(t, 0, code, "stderr: %s", stderr)
			require.Contains(t, stdout, "test top-1")
		})
	}
}

// TestResumeExtends: -resume alone keeps the run's length (nothing left to do); -resume -epochs N trains on to N
// epochs and records the new length in config.json, so that a later -resume and eval see it.
func TestResumeExtends(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	out := t.TempDir()
	args := tinyTrain("kp", out)
	for i, a := range args {
		if a == "-steps" {
			args[i+1] = "0"
		}
	}
	args = append(args, "-epochs", "1", "-train-limit", "128") // 4 steps per epoch
	code, _, stderr := nowt(t, args...)
	require.Equal(t, 0, code, "stderr: %s", stderr)

	code, _, stderr = nowt(t, "train", "-resume", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stderr, "already trained 4 of 4 steps")

	// A changed setting is refused, listing it, before anything changes.
	code, _, stderr = nowt(t, "train", "-resume", "-momentum", "0.5", "-batch", "16", "-out", out)
	require.Equal(t, 2, code, "stderr: %s", stderr)
	require.Contains(t, stderr, "-momentum 0.9 → 0.5")
	require.Contains(t, stderr, "-batch 32 → 16")
	require.Contains(t, stderr, "Only these may change on resume")

	code, _, stderr = nowt(t, "train", "-resume", "-epochs", "2", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stderr, "Resuming "+out+" from step 4 of 8 (epoch 1.00)")
	require.Contains(t, stderr, "-epochs 1 → 2")
	cfg, err := trainer.ReadConfig(out)
	require.NoError(t, err)
	require.Equal(t, 2, cfg.Epochs)
	records, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 8, records[len(records)-1].Step)

	code, _, stderr = nowt(t, "train", "-resume", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stderr, "already trained 8 of 8 steps")
}

// TestCommandErrors: bad commands, flags and inputs give a clear message and a non-zero status.
// commandErrorCase is a command line, its exit status and what its error message must contain.
type commandErrorCase struct {
	name   string
	args   []string
	code   int
	errHas []string
}

func TestCommandErrors(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	cases := []commandErrorCase{
		{"no command", nil, 2, []string{"Usage: nowt <command>"}},
		{"unknown command", []string{"fly"}, 2, []string{`unknown command "fly"`}},
		{"flags before the command", []string{"-rule", "bp", "train"}, 2, []string{`"-rule" is a flag, and flags come after the command: nowt train -rule ...`}},
		{"a flag without a command", []string{"-v"}, 2, []string{`"-v" is a flag`, "nowt <command> [flags]"}},
		{"unknown flag", []string{"train", "-epoch", "3"}, 2, []string{"flag provided but not defined: -epoch"}},
		{"bad value", []string{"train", "-batch", "many"}, 2, []string{`invalid value "many" for flag -batch`}},
		{"unknown rule", []string{"train", "-rule", "dfa2", "-out", t.TempDir()}, 2, []string{`unknown feedback rule "dfa2"`, "bp, fa, ss, wm, kp, usf, frsf, brsf, dfa, ia, aa"}},
		{"unknown model", []string{"train", "-model", "vgg", "-out", t.TempDir()}, 2, []string{`unknown model "vgg"`, "resnet20"}},
		{"bad rule setting", []string{"train", "-wm-decay", "2", "-out", t.TempDir()}, 2, []string{"wm_decay", "[0, 1]"}},
		{"bad hidden", []string{"train", "-hidden", "10,x", "-out", t.TempDir()}, 2, []string{"mlp_hidden", `"10,x"`}},
		{"missing dataset", []string{"train", "-dataset", "fashion-mnist", "-data", missing, "-out", t.TempDir()}, 1, []string{missing}},
		{"bad milestones", []string{"train", "-schedule", "step", "-milestones", "1,b", "-out", t.TempDir()}, 2, []string{`"b" is not a number`}},
		{"stray argument", []string{"train", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"eval without out", []string{"eval"}, 2, []string{"-out is required"}},
		{"eval of nothing", []string{"eval", "-out", missing}, 1, []string{"config.json", "no such file"}},
		{"bad backend", []string{"devices", "-backend", "xla:cuda"}, 1, []string{"cuda", "nowt setup"}},
		{"devices without XLA", []string{"train", "-backend", "go", "-devices", "2", "-out", t.TempDir()}, 2, []string{"-devices 2", "no distributed execution"}},
		{"batch not split evenly", []string{"train", "-devices", "3", "-batch", "128", "-out", t.TempDir()}, 2, []string{"not a multiple of the 3 devices"}},
		{"devices option without n", []string{"devices", "-backend", "xla:cpu,devices=0"}, 2, []string{`"devices=<n>"`, "1 ≤ n ≤ 4096"}},
		{"gone virtual mesh", []string{"devices", "-backend", "virtual:2"}, 2, []string{`unknown backend spec "virtual:2"`}},
	}
	if xla.TestBackendIsXLA() {
		cases = append(cases, commandErrorCase{"more devices than the backend has",
			[]string{"train", "-backend", "xla:cpu,devices=2", "-devices", "4", "-out", t.TempDir()}, 2, []string{"4 devices asked", "has 2"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := nowt(t, tc.args...)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout, stderr)
			for _, s := range tc.errHas {
				require.Contains(t, stdout+stderr, s)
			}
		})
	}
}

// TestHelpAndListings: -h of every command exits 0 and documents it; rules and models list every entry.
func TestHelpAndListings(t *testing.T) {
	for _, c := range commands() {
		code, _, stderr := nowt(t, c.name, "-h")
		require.Equal(t, 0, code, c.name)
		require.Contains(t, stderr, "Usage: nowt "+c.name, c.name)
		code, _, helped := nowt(t, "help", c.name)
		require.Equal(t, 0, code, "nowt help %s", c.name)
		require.Equal(t, stderr, helped, "nowt help %s is nowt %s -h", c.name, c.name)
	}
	code, stdout, _ := nowt(t, "rules", "-v")
	require.Equal(t, 0, code)
	var listed []string
	for _, line := range strings.Split(strings.Split(stdout, "\n\n")[0], "\n") {
		if name, _, ok := strings.Cut(line, " "); ok {
			listed = append(listed, name)
		}
	}
	require.Equal(t, feedback.Order, listed, "nowt rules lists the rules in the order of a comparison")
	for _, s := range []string{"bp ", "fa ", "ss ", "wm ", "kp ", "usf ", "frsf ", "brsf ", "dfa ", "ia ", "aa ",
		"wm_learning_rate", "-wm-lr", "kp_decay", "usf_scale", "ia_null", "[0, 1]", "uniform|gaussian",
		"bp (nowt train: -rule kp)"} {
		require.Contains(t, stdout, s)
	}
	code, stdout, _ = nowt(t, "models")
	require.Equal(t, 0, code)
	require.Equal(t, len(models.Names()), strings.Count(stdout, "\n"), "nowt models: a line per model")
	for _, name := range models.Names() {
		require.Contains(t, stdout, name+" ")
	}
	code, stdout, _ = nowt(t, "models", "-v")
	require.Equal(t, 0, code)
	for _, s := range []string{"mlp layers (under /model):\n  fc0 out\n", "stage3/block2/conv2 stage3/block2/bn2 fc\n",
		"stage4/block0/downsample/conv"} {
		require.Contains(t, stdout, s)
	}
	// Every model and layer hyperparameter, with its flag where it has one and its default (each a -set name).
	for _, st := range models.Settings() {
		require.Regexp(t, `\n  `+regexp.QuoteMeta(st.Name)+`\*?\s+`+regexp.QuoteMeta(flagOf(st.Flag))+`\s*`+
			regexp.QuoteMeta(fmt.Sprint(st.Default)), stdout)
	}
	for _, s := range []string{"bn_momentum ", "mlp_hidden*  ", "-zero-init-residual", "auto|native|gather"} {
		require.Contains(t, stdout, s)
	}
	code, stdout, _ = nowt(t, "devices", "-backend", "go")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "SimpleGo")
	require.Contains(t, stdout, "data parallelism: not available")
	if xla.TestBackendIsXLA() {
		code, stdout, _ = nowt(t, "devices", "-backend", "xla:cpu,devices=3")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "devices:     3")
		require.Contains(t, stdout, "#2: ")
		require.Contains(t, stdout, "data parallelism: -devices -1 splits each batch over all 3 devices")
		// Without the option: what -devices -1 trains on, the plugin's own host devices (more than one).
		code, stdout, _ = nowt(t, "devices", "-backend", xla.TestBackendSpec())
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "data parallelism: -devices -1 splits each batch over all")
	}
}

// TestBenchTable: bench prints one aligned row per model and rule with the devices used, the first step, the
// ratio to bp and the mirror share, and names the engine on stderr; on XLA with the batch split over 2 host
// devices (the backend named without ",devices=2": the client has as many as -devices asks for).
func TestBenchTable(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	backend, devices := "go", "1"
	if xla.TestBackendIsXLA() {
		backend, devices = xla.TestBackendSpec(), "2"
	}
	code, stdout, stderr := nowt(t, "bench", "-backend", backend, "-devices", devices, "-model", "mlp", "-hidden", "16",
		"-rule", "bp,kp", "-dataset", "mnist", "-train-limit", "64", "-test-limit", "16", "-batch", "8", "-steps", "2",
		"-warmup-steps", "1")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.Len(t, lines, 3, stdout)
	require.Contains(t, stderr, "engine: ")
	require.Equal(t, []string{"model", "rule", "batch", "devices", "first", "step", "step", "time", "images/s", "ratio",
		"to", "bp", "mirror"}, strings.Fields(lines[0]))
	for i, rule := range []string{"bp", "kp"} {
		fields := strings.Fields(lines[i+1])
		require.Len(t, fields, 9, lines[i+1])
		require.Equal(t, []string{"mlp", rule, "8", devices}, fields[:4])
		require.Equal(t, "-", fields[8], "no mirror share for %s", rule)
		require.Equal(t, utf8.RuneCountInString(lines[0]), utf8.RuneCountInString(lines[i+1]), "rows align with the header")
	}
	require.Equal(t, "1.000", strings.Fields(lines[1])[7])
}

// TestBenchTableWidths: rows stay aligned with the header whatever a busy machine does to the numbers — ratios
// and ranges past 10 (a round where the rule's step waited on another process), long compilations, slow steps.
func TestBenchTableWidths(t *testing.T) {
	var out bytes.Buffer
	table := benchTable{out: &out, rounds: 3}
	table.header()
	ms := func(v ...float64) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x*float64(time.Millisecond)))
		}
		return d
	}
	bp := &trainer.Throughput{Model: "resnet50", Rule: "bp", Batch: 128, Devices: 8, FirstStep: 754321 * time.Millisecond,
		StepTime: 1234567 * time.Microsecond, ImagesPerSecond: 103.7, RoundStepTimes: ms(1.0, 1.1, 0.9)}
	for _, res := range []*trainer.Throughput{
		bp,
		{Model: "resnet50", Rule: "bp-again", Batch: 128, Devices: 8, FirstStep: time.Second, StepTime: time.Millisecond,
			ImagesPerSecond: 1234567.8, RoundStepTimes: ms(12.3456, 1.1, 0.45)},
		{Model: "resnet50", Rule: "wm", Batch: 128, Devices: 8, FirstStep: time.Second, StepTime: 2 * time.Millisecond,
			MirrorTime: time.Millisecond, ImagesPerSecond: 64000, RoundStepTimes: ms(250, 1.3, 1200)},
	} {
		table.row(res, bp)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	require.Len(t, lines, 4)
	for _, line := range lines[1:] {
		require.Equal(t, utf8.RuneCountInString(lines[0]), utf8.RuneCountInString(line), "rows align with the header:\n%s", out.String())
	}
	require.Contains(t, lines[2], "12.35")                        // 12.3456 ÷ 1.0, two decimals past 10
	require.Contains(t, lines[3], "250.0     50.0%   1.182–1333") // 250 ÷ 1.0 (median), 1.3 ÷ 1.1 … 1200 ÷ 0.9
	require.Contains(t, lines[1], "12m34.321s")
}

// TestBenchRounds: with -rounds, every rule gets a paired ratio to bp, the median of the rounds' ratios within
// their range, also for a rule listed before bp; as CSV and as a table with the range in a last column; -control
// adds bp timed again, last, compared with the first bp.
func TestBenchRounds(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	args := []string{"bench", "-model", "mlp", "-hidden", "16", "-rule", "kp,bp,fa", "-dataset", "mnist",
		"-train-limit", "64", "-test-limit", "16", "-batch", "8", "-steps", "2", "-warmup-steps", "1", "-rounds", "3"}
	code, stdout, stderr := nowt(t, append(args, "-csv")...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Equal(t, 1, strings.Count(stderr, "engine: "), "one backend, named once: %s", stderr)
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	require.NoError(t, err, stdout)
	require.Len(t, rows, 4, stdout)
	require.Equal(t, []string{"ratio_to_bp", "mirror_share", "rounds", "ratio_min", "ratio_max"}, rows[0][7:])
	for i, rule := range []string{"kp", "bp", "fa"} {
		row := rows[i+1]
		require.Equal(t, []string{"mlp", rule}, row[:2])
		require.Equal(t, "3", row[9], rule)
		ratio, lowest, highest := parseFloat(t, row[7]), parseFloat(t, row[10]), parseFloat(t, row[11])
		require.Positive(t, lowest, rule)
		require.LessOrEqual(t, lowest, ratio, rule)
		require.LessOrEqual(t, ratio, highest, rule)
		if rule == "bp" {
			require.Equal(t, []string{"1.000", "1.000", "1.000"}, []string{row[7], row[10], row[11]})
		}
	}

	code, stdout, stderr = nowt(t, append(args[:len(args)-2], "-rounds", "2", "-control")...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.Len(t, lines, 5, stdout)
	require.True(t, strings.HasSuffix(lines[0], "2 rounds"), lines[0])
	bp := strings.Fields(lines[2])
	require.Equal(t, []string{"bp", "1.000", "1.000–1.000"}, []string{bp[1], bp[7], bp[9]})
	again := strings.Fields(lines[4])
	require.Equal(t, "bp-again", again[1], stdout)
	lowest, highest, found := strings.Cut(again[9], "–")
	require.True(t, found, again[9])
	require.LessOrEqual(t, parseFloat(t, lowest), parseFloat(t, again[7]), "the control's ratio to the first bp lies in its range")
	require.LessOrEqual(t, parseFloat(t, again[7]), parseFloat(t, highest))
	for _, line := range lines[1:] {
		require.Equal(t, utf8.RuneCountInString(lines[0]), utf8.RuneCountInString(line), "rows align with the header")
	}
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, s)
	return v
}

// TestBadInvocations drives the command over invalid settings of every kind: each exits with status 2 before
// anything is written, with a message naming the flag at fault (and the valid range), and never panics.
func TestBadInvocations(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	tiny := []string{"-hidden", "8", "-train-limit", "64", "-test-limit", "32", "-batch", "32", "-steps", "2"}
	for _, tc := range []struct {
		args []string
		flag string // named in the message
	}{
		{[]string{"train", "-rule", "wm", "-wm-noise", "pink"}, "-wm-noise"},
		{[]string{"train", "-set", "wm_noise=pink"}, "wm_noise"},
		{[]string{"train", "-set", "feedback_conv_impl=xyz"}, "feedback_conv_impl"},
		{[]string{"train", "-wm-lr", "-5"}, "-wm-lr"},
		{[]string{"train", "-wm-batch", "0"}, "-wm-batch"},
		{[]string{"train", "-wm-steps", "-1"}, "-wm-steps"},
		{[]string{"train", "-wm-noise-scale", "-1"}, "-wm-noise-scale"},
		{[]string{"train", "-wm-decay", "2"}, "-wm-decay"},
		{[]string{"train", "-wm-warmup", "-2"}, "-wm-warmup"},
		{[]string{"train", "-init-scale", "-1"}, "-init-scale"},
		{[]string{"train", "-ss-scale", "-1"}, "-ss-scale"},
		{[]string{"train", "-kp-decay", "-2"}, "-kp-decay"},
		{[]string{"train", "-gamma", "-1"}, "-gamma"},
		{[]string{"train", "-gamma", "NaN"}, "-gamma"},
		{[]string{"train", "-eval-batch", "-1"}, "-eval-batch"},
		{append([]string{"train", "-set", "/model/nolayer/feedback_rule=bp"}, tiny...), "/model/nolayer"},
		{[]string{"train", "-set", "/model/fc0/wm_batch=0"}, "wm_batch"},
		{[]string{"train", "-set", "nosuch_param=1"}, "-set"},
		{[]string{"train", "-set", "wm_batch=abc"}, "-set"},
		{[]string{"train", "-set", "wm_steps=1.5"}, "-set"},
		{[]string{"train", "-steps", "-3"}, "-steps"},
		{[]string{"train", "-epochs", "-1"}, "-epochs"},
		{[]string{"train", "-epochs", "0", "-steps", "0"}, "-epochs"},
		{[]string{"train", "-warmup", "-1"}, "-warmup"},
		{[]string{"train", "-lr", "NaN"}, "-lr"},
		{[]string{"train", "-lr", "Inf"}, "-lr"},
		{[]string{"train", "-lr", "0"}, "-lr"},
		{[]string{"train", "-lr", "-0.1"}, "-lr"},
		{[]string{"train", "-momentum", "1"}, "-momentum"},
		{[]string{"train", "-momentum", "-0.5"}, "-momentum"},
		{[]string{"train", "-wd", "-1"}, "-wd"},
		{[]string{"train", "-wd", "NaN"}, "-wd"},
		{[]string{"train", "-clip-norm", "-1"}, "-clip-norm"},
		{[]string{"train", "-clip-norm", "Inf"}, "-clip-norm"},
		{[]string{"train", "-image-size", "-3"}, "-image-size"},
		{[]string{"train", "-dtype", "float8"}, "-dtype"},
		{[]string{"bench", "-dtype", "half"}, "-dtype"},
		{append([]string{"train", "-set", "/model/fc7/feedback_rule=fa"}, tiny...), "/model/fc7"},
		{append([]string{"train", "-model", "resnet20", "-set", "/model/stage4/feedback_rule=fa"}, tiny...), "/model/stage4"},
		{[]string{"train", "-dataset", "synthetic", "-image-size", "100000"}, "-image-size 100000: must be at most 4096"},
		{[]string{"train", "-image-size", "64"}, "-image-size 64: dataset mnist has images of one fixed size"},
		{[]string{"check", "-dataset", "cifar10", "-image-size", "64"}, "-image-size 64: dataset cifar10 has images of one fixed size"},
		{[]string{"train", "-train-limit", "10"}, "-train-limit"},
		{[]string{"train", "-train-limit", "-1"}, "-train-limit"},
		{[]string{"train", "-test-limit", "-1"}, "-test-limit"},
		{[]string{"train", "-batch", "0"}, "-batch"},
		{[]string{"train", "-batch", "-5"}, "-batch"},
		{[]string{"train", "-workers", "-2"}, "-workers"},
		{[]string{"train", "-log-every", "-1"}, "-log-every"},
		{[]string{"train", "-eval-every", "-1"}, "-eval-every"},
		{[]string{"train", "-checkpoint-every", "-1"}, "-checkpoint-every"},
		{[]string{"train", "-keep", "-1"}, "-keep"},
		{[]string{"train", "-chance-guard", "-1"}, "-chance-guard -1: must be ≥ 0"},
		{[]string{"compare", "-chance-guard", "-2", "-out", "x"}, "-chance-guard -2: must be ≥ 0"},
		{[]string{"train", "-devices", "-2"}, "-devices"},
		{[]string{"train", "-schedule", "linear"}, "-schedule"},
		{[]string{"train", "-schedule", "step"}, "-milestones"},
		{[]string{"train", "-schedule", "step", "-milestones", "3,1"}, "-milestones"},
		{[]string{"train", "-schedule", "step", "-milestones", "1,b"}, "-milestones"},
		{[]string{"train", "-loss", "hinge"}, "-loss"},
		{[]string{"train", "-label-smoothing", "1"}, "-label-smoothing"},
		{[]string{"train", "-label-smoothing", "0.1", "-loss", "sigmoid"}, "-label-smoothing"},
		{[]string{"train", "-rule", "dfa2"}, "-rule"},
		{[]string{"train", "-model", "vgg"}, "-model"},
		{[]string{"train", "-dataset", "imagenet"}, "-dataset"},
		{[]string{"train", "-hidden", "10,x"}, "-hidden"},
		{[]string{"train", "-activation", "tanh"}, "-activation"},
		{[]string{"train", "-width", "0", "-model", "resnet20"}, "-width"},
		{[]string{"train", "-divergence-guard", "maybe"}, "-divergence-guard=maybe"},
		{[]string{"train", "-divergence-guard=maybe"}, "-divergence-guard"},
		{[]string{"train", "-strict", "no"}, "-strict=no"},
		{[]string{"train", "-batch", "many"}, "-batch"},
		{[]string{"train", "-epoch", "3"}, "-epoch"},
		{[]string{"train", "extra"}, "extra"},
		{[]string{"eval"}, "-out"},
		{[]string{"eval", "-out", "x", "-test-limit", "-5"}, "-test-limit"},
		{[]string{"compare", "-rules", "bp,dfa2"}, "-rules"},
		{[]string{"compare", "-rule", "bp"}, "-rule"},
		{[]string{"compare", "-lr", "-1"}, "-lr"},
		{[]string{"compare", "-rules", "wm", "-wm-noise", "pink"}, "-wm-noise"},
		{[]string{"bench", "-warmup-steps", "-1"}, "-warmup-steps"},
		{[]string{"bench", "-steps", "0"}, "-steps 0"},
		{[]string{"bench", "-rounds", "0"}, "-rounds 0"},
		{[]string{"bench", "-feed", "disk"}, `-feed "disk": want pipeline, host or device`},
		{[]string{"bench", "-rule", "fa,kp", "-control"}, "give bp among -rule"},
		{[]string{"bench", "-batch", "0"}, "-batch"},
		{[]string{"bench", "-batch", "-5"}, "-batch -5"},
		{[]string{"train", "-rule", "fa", "-set", "feedback_rule=kp"}, "-rule"},
		{[]string{"train", "-set", "wm_lr=0.1"}, "Did you mean wm_learning_rate (the setting of the flag -wm-lr)?"},
		{[]string{"compare", "-set", "/model/fc0/kp_decy=0.1"}, `no rule, model or layer has a setting "kp_decy" (at scope /model/fc0). Did you mean kp_decay`},
		{[]string{"train", "-set", "model/fc0/feedback_rule=fa"}, "must be absolute"},
		{[]string{"compare", "-rules", "bp,fa,bp"}, "-rules"},
		{append([]string{"train", "-backend", "bogus"}, tiny...), "-backend"},
		{append([]string{"train", "-backend", "go:bogus"}, tiny...), "-backend"},
		{append([]string{"train", "-backend", "go", "-devices", "2"}, tiny...), "-devices 2"},
		{[]string{"devices", "-backend", "bogus"}, "bogus"},
		{append([]string{"train", "-backend", "go", "-dtype", "float16"}, tiny...), "does not compute in float16"},
		{[]string{"bench", "-rule", ""}, "-rule"},
		{[]string{"bench", "-rule", "bp,kp,bp"}, "bp is given twice"},
		{[]string{"bench", "-model", " , "}, "-model"},
		{[]string{"check", "-dataset", "nope"}, "-dataset"},
		{[]string{"check", "-limit", "-1"}, "-limit"},
		{[]string{"check", "-split", "bogus"}, `unknown split "bogus", valid splits are: train, test`},
		{[]string{"train", "-dataset", "imagefolder", "-steps", "1"}, "imagefolder needs -data"},
		{[]string{"train", "-dataset", "synthetic", "-data", "examples=64,classes=1", "-steps", "1"}, "at least 2 classes"},
		{[]string{"train", "-dataset", "synthetic", "-data", "examples=0", "-steps", "1"}, `"examples=0" is not key=positive integer`},
		{[]string{"bench", "-dataset", "imagefolder", "-steps", "1"}, "imagefolder needs -data"},
		{[]string{"train", "-hidden", "100000000", "-train-limit", "64", "-test-limit", "32", "-batch", "32", "-steps", "2"}, "-hidden"},
		{[]string{"train", "-model", "resnet20", "-width", "200000", "-dataset", "synthetic", "-data",
			"examples=32,size=8,channels=3,classes=4", "-batch", "8", "-steps", "1"}, "-width"},
		{[]string{"train", "-model", "cnn", "-dataset", "synthetic", "-data", "examples=32,size=8,channels=3,classes=4",
			"-batch", "8", "-steps", "1"}, "give larger ones (size= in -data)"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := tc.args
			if args[0] == "train" || args[0] == "compare" {
				args = append(append([]string(nil), args...), "-out", out)
			}
			code, stdout, stderr := nowt(t, args...)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			require.Contains(t, stderr, tc.flag)
			for _, s := range []string{"panic", "goroutine"} {
				require.NotContains(t, strings.ToLower(stdout+stderr), s)
			}
			require.NoDirExists(t, out, "nothing may be written for an invalid setting")
		})
	}
}

// TestOutIsAFile: an -out that names a file (or, for compare, a run of nowt train, or a link to nothing) is a
// setting error that says so, and what is there is left alone.
func TestOutIsAFile(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	file := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(file, []byte("mine"), 0o644))
	for _, cmd := range []string{"train", "compare"} {
		code, _, stderr := nowt(t, cmd, "-model", "mlp", "-hidden", "8", "-steps", "1", "-out", file)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, "is a file, not a folder")
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Equal(t, "mine", string(data))
		// A folder inside the file, or further down.
		for _, inside := range []string{filepath.Join(file, "run"), filepath.Join(file, "a", "b")} {
			code, _, stderr := nowt(t, cmd, "-model", "mlp", "-hidden", "8", "-steps", "1", "-out", inside)
			require.Equal(t, 2, code, stderr)
			require.Contains(t, stderr, "is inside "+file+", which is a file, not a folder")
		}
	}
	// A comparison into a folder that holds a run of nowt train is refused too.
	run := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.MkdirAll(run, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(run, "config.json"), []byte("{}"), 0o644))
	code, _, stderr := nowt(t, "compare", "-model", "mlp", "-hidden", "8", "-steps", "1", "-out", run)
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, "holds a run of nowt train")
	require.NoDirExists(t, filepath.Join(run, "bp"))

	// An -out, or a rule's folder in a comparison, that is a link to nothing is named with where it leads.
	gone := filepath.Join(t.TempDir(), "gone")
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(gone, link))
	comparison := t.TempDir()
	require.NoError(t, os.Symlink(gone, filepath.Join(comparison, "bp")))
	for _, args := range [][]string{{"train", "-out", link}, {"compare", "-out", link}, {"compare", "-rules", "bp", "-out", comparison}} {
		code, _, stderr = nowt(t, append(args, "-model", "mlp", "-hidden", "8", "-steps", "1")...)
		require.Equal(t, 2, code, stderr)
		require.Contains(t, stderr, "is a link to "+gone+", which does not exist", args)
		require.NoDirExists(t, gone)
	}
}

// TestTrainOutHoldsComparison: nowt train into a comparison's folder (a run per rule in sub-folders, or per seed)
// is refused, naming a run inside it: its config.json and log beside the rules' folders would make nowt compare
// refuse that comparison from then on. (train's default -out, runs/demo, is make demo's comparison.)
func TestTrainOutHoldsComparison(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	for _, tc := range []struct {
		name string
		run  string // a run's folder below -out
	}{
		{"one seed", "bp"},
		{"over seeds", filepath.Join("seed-1", "kp")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(out, tc.run), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(out, tc.run, "config.json"), []byte("{}"), 0o644))
			code, stdout, stderr := nowt(t, tinyTrain("fa", out)...)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			require.Contains(t, stderr, "-out "+out+" holds a comparison")
			require.Contains(t, stderr, filepath.Join(out, tc.run))
			require.NoFileExists(t, filepath.Join(out, "config.json"))
			require.NoFileExists(t, filepath.Join(out, "metrics.jsonl"))
			require.NoDirExists(t, filepath.Join(out, "checkpoints"))
		})
	}
}

// TestStoredConfigIsTheDefault: -resume parses the flags again with the run's stored config as their defaults, so
// that only the flags given are changes; every setting of the stored config must come back unchanged when none
// is given (a flag with a fixed default, as -dtype had, made a bfloat16 run impossible to resume without it).
func TestStoredConfigIsTheDefault(t *testing.T) {
	stored := trainer.DefaultConfig()
	stored.Model, stored.Rule, stored.Dataset, stored.DataPath = "resnet20", "kp", "cifar10-jpeg", "/data/cifar"
	stored.TrainLimit, stored.TestLimit, stored.Augment, stored.ImageSize, stored.Workers = 100, 50, true, 40, 3
	stored.Epochs, stored.Steps, stored.BatchSize, stored.EvalBatchSize = 7, 70, 64, 500
	stored.LearningRate, stored.Schedule, stored.Milestones, stored.Gamma, stored.WarmupEpochs = 0.3, "step", []float64{2, 5}, 0.2, 0.5
	stored.Momentum, stored.Nesterov, stored.WeightDecay, stored.Loss = 0.8, true, 3e-4, "sigmoid"
	stored.LabelSmoothing, stored.ClipNorm = 0.2, 2.5 // (smoothing with -loss softmax only: this test parses, it does not validate)
	stored.DType, stored.Seed, stored.Backend, stored.Devices = "bfloat16", 9, "xla:cpu", 2
	stored.OutDir, stored.LogEvery, stored.EvalEvery, stored.CheckpointEvery, stored.KeepCheckpoints = "runs/x", 3, 6, 9, 4
	stored.Strict, stored.NoDivergenceGuard, stored.Settings = true, true, "wm_batch=64"
	stored.Params = map[string]any{"kp_decay": 0.005}
	fs, rf, _ := trainFlagSet(stored, io.Discard)
	require.NoError(t, parseFlags(fs, []string{"-out", "runs/x"}))
	got, err := rf.config(fs)
	require.NoError(t, err)
	require.Equal(t, stored, got)
}

// flagOf writes a flag's name as listings show it: "-name", or "" for none.
func flagOf(name string) string {
	if name == "" {
		return ""
	}
	return "-" + name
}

// TestBenchBackendRefusedBeforeTable: a backend bench cannot have fails before the table's header is printed,
// with the exit status of its kind: an unknown spec is a usage error (2), a plugin not installed the environment's
// (1).
func TestBenchBackendRefusedBeforeTable(t *testing.T) {
	for _, tc := range []struct {
		backend, want string
		code          int
	}{
		{"bogus", `-backend: unknown backend spec "bogus"`, 2},
		{"go:bogus", "-backend", 2},
		{"xla:nosuch", `PJRT plugin "nosuch"`, 1},
	} {
		code, stdout, stderr := nowt(t, "bench", "-backend", tc.backend, "-model", "mlp", "-rule", "bp", "-steps", "1")
		require.Equal(t, tc.code, code, "%s: stderr %s", tc.backend, stderr)
		require.Contains(t, stderr, tc.want)
		require.Empty(t, stdout, "%s: no table header before the error", tc.backend)
	}
}

// TestBenchSyntheticData: bench's default synthetic data holds, in one epoch, every batch a configuration trains
// (at least one warm-up step, then every round's steps), so that no trained batch repeats another.
func TestBenchSyntheticData(t *testing.T) {
	for _, tc := range []struct{ batch, size, warmup, steps, rounds int }{
		{128, 0, 3, 20, 1}, {8, 16, 0, 1, 1}, {32, 0, 0, 5, 4}, {64, 32, 2, 12, 4}, {1, 0, 10, 1, 1},
		{256, 0, 3, 100000, 4}, {1 << 20, 8, 0, 3, 1},
	} {
		spec := benchSyntheticData(tc.batch, tc.size, tc.warmup, tc.steps, tc.rounds)
		got, err := input.ParseSyntheticConfig(spec, 0)
		require.NoError(t, err, spec)
		trained := max(1, tc.warmup) + tc.rounds*(tc.steps+1) // a turn may start with an untimed step
		if trained*tc.batch <= benchMaxExamples {
			require.GreaterOrEqual(t, got.Examples/tc.batch, trained, "%+v: %s", tc, spec)
		} else { // a long run: an epoch of benchMaxExamples (or two batches)
			require.Equal(t, max(2, benchMaxExamples/tc.batch), got.Examples/tc.batch, "%+v: %s", tc, spec)
		}
		require.GreaterOrEqual(t, got.Examples, 2*tc.batch, spec)
		wantSize := tc.size
		if wantSize == 0 {
			wantSize = 224
		}
		require.Equal(t, []int{wantSize, wantSize, 3, 1000}, []int{got.Height, got.Width, got.Channels, got.Classes}, spec)
	}
}

// TestTooFewExamplesAdvice: a training set smaller than one batch is refused naming -batch, and the message
// tells to raise -train-limit only where that limit cut the set (not for -train-limit 0, which is all of it, nor
// for a limit above the set's size).
func TestTooFewExamplesAdvice(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	for _, tc := range []struct {
		name       string
		args       []string
		raiseLimit bool // the message advises raising -train-limit
	}{
		{"no limit", []string{"-data", "examples=16,size=8,channels=1,classes=2"}, false},
		{"limit above the set", []string{"-data", "examples=16,size=8,channels=1,classes=2", "-train-limit", "64"}, false},
		{"limit cuts the set", []string{"-data", "examples=64,size=8,channels=1,classes=2", "-train-limit", "16"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append([]string{"train", "-dataset", "synthetic", "-model", "mlp", "-hidden", "8", "-batch", "32",
				"-steps", "1", "-out", out}, tc.args...)
			code, stdout, stderr := nowt(t, args...)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			require.Contains(t, stderr, "fewer than one batch of 32")
			require.Contains(t, stderr, "lower -batch")
			if tc.raiseLimit {
				require.Contains(t, stderr, "raise -train-limit")
			} else {
				require.NotContains(t, stderr, "raise -train-limit")
			}
			require.NoDirExists(t, out)
		})
	}
}

// TestSetupInvalidArguments: an unknown -plugin or -source (or a source that does not carry the plugin) is a
// command-line error, status 2, naming the flag; nothing is downloaded.
func TestSetupInvalidArguments(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("nowt setup installs plugins only on linux/amd64")
	}
	t.Setenv("HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-plugin", "gpu"}, []string{"-plugin", `"gpu"`, "unknown plugin", `"cuda"`}},
		{[]string{"-source", "ftp"}, []string{"-source", `unknown source "ftp"`}},
		{[]string{"-plugin", "cuda", "-source", "pypi"}, []string{"-source", `only carries the "cpu" plugin`}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := nowt(t, append([]string{"setup"}, tc.args...)...)
			require.Equal(t, 2, code, "stdout: %s\nstderr: %s", stdout, stderr)
			for _, s := range tc.want {
				require.Contains(t, stderr, s)
			}
			require.NotContains(t, stdout, "installing PJRT plugin", "nothing may be downloaded")
		})
	}
}

// TestHelpListsOnlyFlagsThatApply: a flag a command shares with train but does not use (bench writes no files and
// does not evaluate; compare takes -rules) is left out of its -h, and given, refused naming it, status 2.
func TestHelpListsOnlyFlagsThatApply(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	for _, tc := range []struct {
		command string
		absent  []string // flags left out of -h and refused
		present []string // flags still listed
	}{
		{"bench", []string{"out", "keep", "checkpoint-every", "log-every", "eval-every", "chance-guard", "divergence-guard",
			"progress", "epochs"}, []string{"steps", "batch", "rule", "model", "backend", "set"}},
		{"compare", []string{"rule"}, []string{"rules", "out", "keep", "epochs", "progress"}},
		{"train", nil, []string{"rule", "out", "keep", "epochs", "progress", "checkpoint-every"}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			code, _, help := nowt(t, tc.command, "-h")
			require.Equal(t, 0, code)
			for _, f := range tc.absent {
				require.NotRegexp(t, `\n  -`+regexp.QuoteMeta(f)+`\b`, help, "%s -h lists -%s", tc.command, f)
				require.NotRegexp(t, `(^|[^\w-])-`+regexp.QuoteMeta(f)+`\b`, help, "%s -h mentions -%s", tc.command, f)
				value := "1"
				if f == "out" {
					value = filepath.Join(t.TempDir(), "run")
				}
				code, stdout, stderr := nowt(t, tc.command, "-"+f+"="+value, "-model", "mlp", "-steps", "1")
				require.Equal(t, 2, code, "-%s: stdout %s\nstderr %s", f, stdout, stderr)
				require.Contains(t, stderr, "-"+f+" does not apply to "+tc.command)
				require.Empty(t, stdout)
			}
			for _, f := range tc.present {
				require.Regexp(t, `\n  -`+regexp.QuoteMeta(f)+`\b`, help, "%s -h leaves out -%s", tc.command, f)
			}
		})
	}
}

// TestBenchFeed: -feed device times the step on one batch kept on the device, and the table says so above its
// header; the CSV keeps its columns.
func TestBenchFeed(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	args := []string{"bench", "-model", "mlp", "-hidden", "16", "-rule", "bp", "-dataset", "mnist",
		"-train-limit", "64", "-test-limit", "16", "-batch", "8", "-steps", "2", "-warmup-steps", "1", "-feed", "device"}
	code, stdout, stderr := nowt(t, args...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 3, stdout)
	require.Equal(t, "each step's batch: one batch, kept on the device (-feed device)", lines[0])
	require.Contains(t, lines[1], "step time")
	code, stdout, stderr = nowt(t, append(args, "-csv")...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	require.NoError(t, err, stdout)
	require.Len(t, rows, 2, stdout)
	require.Len(t, rows[1], 12, "the CSV's columns are those of -feed pipeline")
}
