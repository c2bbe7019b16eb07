package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nowt-ml/nowt/trainer"
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
	t.Setenv("GOMLX_BACKEND", "")
	for _, rule := range []string{"bp", "fa", "ss", "wm", "kp"} {
		t.Run(rule, func(t *testing.T) {
			out := t.TempDir()
			code, stdout, stderr := nowt(t, tinyTrain(rule, out)...)
			require.Equal(t, 0, code, "stderr: %s", stderr)
			require.Contains(t, stdout, "test top-1")
			require.Contains(t, stdout, "weight angle")
			require.FileExists(t, filepath.Join(out, "config.json"))
			cfg, err := trainer.ReadConfig(out)
			require.NoError(t, err)
			require.Equal(t, rule, cfg.Rule)
			full, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
			require.NoError(t, err)
			require.Len(t, full, 5) // steps 0, 10, 20, 30, 40
			require.Len(t, full[len(full)-1].Layers, 2)
			require.NotNil(t, full[0].TestLoss)
			require.NotNil(t, full[4].TestLoss)
			require.Less(t, *full[4].TestLoss, 0.8**full[0].TestLoss, "test loss must fall")
			require.Greater(t, *full[4].TestTop1, *full[0].TestTop1+0.2)

			// Crash after step 20: drop the last checkpoint, then resume.
			ckpts, err := filepath.Glob(filepath.Join(out, "checkpoints", "checkpoint-*step-000000040.*"))
			require.NoError(t, err)
			require.Len(t, ckpts, 2)
			for _, f := range ckpts {
				require.NoError(t, os.Remove(f))
			}
			code, _, stderr = nowt(t, "train", "-resume", "-out", out, "-progress=false")
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
	t.Setenv("GOMLX_BACKEND", "")
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

	code, stdout, stderr := nowt(t, "train", "-resume", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "already trained 4 of 4 steps")

	code, _, stderr = nowt(t, "train", "-resume", "-epochs", "2", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	cfg, err := trainer.ReadConfig(out)
	require.NoError(t, err)
	require.Equal(t, 2, cfg.Epochs)
	records, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 8, records[len(records)-1].Step)

	code, stdout, stderr = nowt(t, "train", "-resume", "-out", out, "-progress=false")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "already trained 8 of 8 steps")
}

// TestCommandErrors: bad commands, flags and inputs give a clear message and a non-zero status.
func TestCommandErrors(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		errHas []string
	}{
		{"no command", nil, 2, []string{"Usage: nowt <command>"}},
		{"unknown command", []string{"fly"}, 2, []string{`unknown command "fly"`}},
		{"unknown flag", []string{"train", "-epoch", "3"}, 1, []string{"flag provided but not defined: -epoch"}},
		{"bad value", []string{"train", "-batch", "many"}, 1, []string{`invalid value "many" for flag -batch`}},
		{"unknown rule", []string{"train", "-rule", "dfa2", "-out", t.TempDir()}, 1, []string{`unknown feedback rule "dfa2"`, "bp, brsf, dfa, fa, frsf, ia, kp, ss, usf, wm"}},
		{"unknown model", []string{"train", "-model", "vgg", "-out", t.TempDir()}, 1, []string{`unknown model "vgg"`, "resnet20"}},
		{"bad rule setting", []string{"train", "-wm-decay", "2", "-out", t.TempDir()}, 1, []string{"wm_decay=2", "[0, 1]"}},
		{"bad hidden", []string{"train", "-hidden", "10,x", "-out", t.TempDir()}, 1, []string{"mlp_hidden", `"10,x"`}},
		{"missing dataset", []string{"train", "-dataset", "fashion-mnist", "-data", missing, "-out", t.TempDir()}, 1, []string{missing}},
		{"bad milestones", []string{"train", "-schedule", "step", "-milestones", "1,b", "-out", t.TempDir()}, 1, []string{`"b" is not a number`}},
		{"stray argument", []string{"train", "extra"}, 1, []string{`unexpected argument "extra"`}},
		{"eval without out", []string{"eval"}, 1, []string{"-out is required"}},
		{"eval of nothing", []string{"eval", "-out", missing}, 1, []string{"config.json", "no such file"}},
		{"bad backend", []string{"devices", "-backend", "xla:cuda"}, 1, []string{"cuda", "nowt setup"}},
		{"devices without XLA", []string{"train", "-backend", "go", "-devices", "2", "-out", t.TempDir()}, 1, []string{"-devices 2", "no distributed execution"}},
		{"batch not split evenly", []string{"train", "-devices", "3", "-batch", "128", "-out", t.TempDir()}, 1, []string{"not a multiple of the 3 devices"}},
		{"virtual without n", []string{"devices", "-backend", "virtual:0"}, 1, []string{`"virtual:<n>"`, "1 ≤ n ≤ 4096"}},
		{"more devices than virtual", []string{"train", "-backend", "virtual:2", "-devices", "4", "-out", t.TempDir()}, 1, []string{"4 devices asked", "has 2"}},
	} {
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
	}
	code, stdout, _ := nowt(t, "rules", "-v")
	require.Equal(t, 0, code)
	for _, s := range []string{"bp ", "fa ", "ss ", "wm ", "kp ", "usf ", "frsf ", "brsf ", "dfa ", "ia ",
		"wm_learning_rate", "-wm-lr", "kp_decay", "usf_scale", "ia_null", "[0, 1]", "uniform|gaussian"} {
		require.Contains(t, stdout, s)
	}
	code, stdout, _ = nowt(t, "models")
	require.Equal(t, 0, code)
	require.Equal(t, 8, strings.Count(stdout, "\n"))
	code, stdout, _ = nowt(t, "devices", "-backend", "go")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "SimpleGo")
	require.Contains(t, stdout, "data parallelism: not available")
	code, stdout, _ = nowt(t, "devices", "-backend", "virtual:3")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "3 virtual devices on")
	require.Contains(t, stdout, "#2: virtual device #2")
	require.Contains(t, stdout, "data parallelism: -devices -1 splits each batch over all 3 devices")
}

// TestBenchTable: bench prints one aligned row per model and rule with the devices used and the ratio to bp,
// here with the batch split over 2 virtual devices.
func TestBenchTable(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	code, stdout, stderr := nowt(t, "bench", "-backend", "virtual:2", "-devices", "2", "-model", "mlp", "-hidden", "16",
		"-rule", "bp,kp", "-dataset", "mnist", "-train-limit", "64", "-test-limit", "16", "-batch", "8", "-steps", "2",
		"-warmup-steps", "1")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.Len(t, lines, 3, stdout)
	require.Equal(t, []string{"model", "rule", "batch", "devices", "step", "time", "images/s", "ratio", "to", "bp"}, strings.Fields(lines[0]))
	for i, rule := range []string{"bp", "kp"} {
		fields := strings.Fields(lines[i+1])
		require.Len(t, fields, 7, lines[i+1])
		require.Equal(t, []string{"mlp", rule, "8", "2"}, fields[:4])
		require.Equal(t, utf8.RuneCountInString(lines[0]), utf8.RuneCountInString(lines[i+1]), "rows align with the header")
	}
	require.Equal(t, "1.000", strings.Fields(lines[1])[6])
}
