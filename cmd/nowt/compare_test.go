package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

func TestCompareUnknownRule(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runCompare([]string{"-rules", "bp,nope", "-out", t.TempDir()}, &stdout, &stderr)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"nope"`)
	require.Contains(t, err.Error(), strings.Join(feedback.RuleNames(), ", "))

	err = runCompare([]string{"-rules", " , "}, &stdout, &stderr)
	require.ErrorContains(t, err, "-rules is empty")
	err = runCompare([]string{"-rule", "fa"}, &stdout, &stderr)
	require.ErrorContains(t, err, "-rules")
}

func TestCompareHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := runCompare([]string{"-h"}, &stdout, &stderr)
	require.True(t, errors.Is(err, flag.ErrHelp))
	require.Contains(t, stderr.String(), "Example: nowt compare")
	require.Contains(t, stderr.String(), "-rules")
}

func TestCompareTiny(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	out := filepath.Join(t.TempDir(), "cmp")
	var stdout, stderr bytes.Buffer
	err := runCompare([]string{"-rules", "bp,fa", "-dataset", "synthetic", "-data", "examples=64,size=8,channels=1,classes=4",
		"-hidden", "16", "-activation", "relu", "-steps", "2", "-batch", "16", "-out", out}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	text := stdout.String()
	require.Contains(t, text, "| bp | 2 |")
	require.Contains(t, text, "| fa | 2 |")
	require.Contains(t, text, "nowt compare -rules bp,fa -dataset synthetic")
	require.True(t, strings.HasSuffix(strings.TrimSpace(text), filepath.Join(out, "results.md")), text)
}

// TestCompareSeeds: -seeds makes one comparison per seed in -out/seed-<n>/, each with its report, then the report
// over the seeds; the same command reuses every run; nowt report writes them all again; mistakes name the flag.
func TestCompareSeeds(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	out := filepath.Join(t.TempDir(), "seeds")
	tiny := []string{"-rules", "bp,fa", "-dataset", "synthetic", "-data", "examples=64,size=8,channels=1,classes=4",
		"-hidden", "16", "-activation", "relu", "-steps", "2", "-batch", "16"}
	args := append(slices.Clone(tiny), "-seeds", "2,1", "-out", out)
	var stdout, stderr bytes.Buffer
	require.NoError(t, runCompare(args, &stdout, &stderr), stderr.String())
	text := stdout.String()
	for _, want := range []string{
		"##### seed 2 (1 of 2): " + filepath.Join(out, "seed-2"), "##### seed 1 (2 of 2)",
		"mlp on synthetic: learning rules compared over 2 seeds", "| rule | seed 2 | seed 1 | mean | sd |",
		"| rule − bp (points) | seed 2 | seed 1 | mean | sd | above / below | sign test p |",
		"nowt compare -rules bp,fa -dataset synthetic", filepath.Join(out, "results.md"),
	} {
		require.Contains(t, text, want)
	}
	for seed, dir := range map[int64]string{1: "seed-1", 2: "seed-2"} {
		require.FileExists(t, filepath.Join(out, dir, "results.md"))
		for _, rule := range []string{"bp", "fa"} {
			data, err := os.ReadFile(filepath.Join(out, dir, rule, "config.json"))
			require.NoError(t, err)
			var cfg struct{ Seed int64 }
			require.NoError(t, json.Unmarshal(data, &cfg))
			require.Equal(t, seed, cfg.Seed, "%s/%s", dir, rule)
		}
	}
	require.FileExists(t, filepath.Join(out, "seeds-top1.png"))

	stdout.Reset()
	require.NoError(t, runCompare(args, &stdout, &stderr), stderr.String())
	require.Equal(t, 4, strings.Count(stdout.String(), "Reusing the finished run"), "the same command trains nothing again")

	stdout.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	text = stdout.String()
	require.Contains(t, text, "| rule | seed 1 | seed 2 | mean | sd |", "nowt report orders the seeds")
	require.Contains(t, text, "nowt compare -rules bp,fa -dataset synthetic", "the training command is kept")
	seed1, err := os.ReadFile(filepath.Join(out, "seed-1", "results.md"))
	require.NoError(t, err)
	require.Contains(t, string(seed1), "| fa | 2 |", "each seed's report is written again")

	// Comparisons made apart (one nowt compare -seed <n> each), linked as seed-<n>: reported over the seeds.
	linked := filepath.Join(t.TempDir(), "linked")
	require.NoError(t, os.Mkdir(linked, 0o755))
	for _, dir := range []string{"seed-1", "seed-2"} {
		require.NoError(t, os.Symlink(filepath.Join(out, dir), filepath.Join(linked, dir)))
	}
	stdout.Reset()
	require.NoError(t, runReport([]string{"-out", linked}, &stdout, &stderr), stderr.String())
	text = stdout.String()
	require.Contains(t, text, "learning rules compared over 2 seeds")
	require.Contains(t, text, "| rule | seed 1 | seed 2 | mean | sd |")
	require.Contains(t, text, "\nCommand:\n\n```\nnowt report -out "+linked+"\n```", "nothing to resume from here")
	require.FileExists(t, filepath.Join(linked, "seeds-top1.png"))

	metrics := filepath.Join(out, "seed-2", "fa", "metrics.jsonl") // a log a crash cut short: the warning names the seed
	data, err := os.ReadFile(metrics)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(metrics, data[:len(data)-40], 0o644))
	stderr.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	require.Contains(t, stderr.String(), "nowt report: warning: seed-2/fa/metrics.jsonl, line")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-seed", "3", "-seeds", "1,2"}, "either -seed"},
		{[]string{"-seeds", "1,1"}, "seed 1 given twice"},
		{[]string{"-seeds", "1,x"}, `"x" is not an integer seed`},
		{[]string{"-seeds", " , "}, "-seeds is empty"},
		{nil, "holds a comparison over seeds (its seed-1/)"}, // -out is the comparison over seeds, without -seeds
	} {
		err := runCompare(append(append(slices.Clone(tiny), tc.args...), "-out", out), &stdout, &stderr)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
	}
	oneSeed := filepath.Join(t.TempDir(), "one")
	require.NoError(t, os.MkdirAll(filepath.Join(oneSeed, "fa"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(oneSeed, "fa", "config.json"), []byte("{}"), 0o644))
	err = runCompare(append(slices.Clone(tiny), "-seeds", "1", "-out", oneSeed), &stdout, &stderr)
	require.ErrorContains(t, err, "holds a comparison of one seed (its fa/ run)")
}

// TestReport: nowt report writes the comparison again from its logs alone, also when its rules ran with different
// settings (here one learning rate each), and names what it needs when the folder holds no runs.
func TestReport(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	out := filepath.Join(t.TempDir(), "cmp")
	tiny := []string{"-dataset", "synthetic", "-data", "examples=64,size=8,channels=1,classes=4", "-hidden", "16",
		"-activation", "relu", "-steps", "2", "-batch", "16", "-out", out}
	var stdout, stderr bytes.Buffer
	require.NoError(t, runCompare(append([]string{"-rules", "bp", "-lr", "0.1"}, tiny...), &stdout, &stderr), stderr.String())
	require.NoError(t, runCompare(append([]string{"-rules", "kp", "-lr", "0.05"}, tiny...), &stdout, &stderr), stderr.String())
	stdout.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	text := stdout.String()
	require.Contains(t, text, "nowt compare -rules kp -lr 0.05", "the command that trained the runs is kept")
	require.Contains(t, text, "Command of the last invocation", "the rules' learning rates differ")
	stdout.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	require.Contains(t, stdout.String(), "nowt compare -rules kp -lr 0.05", "kept by a second report too")

	// A log whose last line a crash cut short: reported from the records before it, with a warning.
	metrics := filepath.Join(out, "kp", "metrics.jsonl")
	data, err := os.ReadFile(metrics)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(metrics, data[:len(data)-40], 0o644))
	stdout.Reset()
	stderr.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	require.Contains(t, stderr.String(), "warning: kp/metrics.jsonl, line")
	require.Contains(t, stdout.String(), "kp: its log could not be read whole")
	require.Contains(t, stdout.String(), "| bp | 2 |")
	require.NoError(t, os.WriteFile(metrics, data, 0o644))
	require.NoError(t, os.Remove(filepath.Join(out, "results.md")))
	stdout.Reset()
	require.NoError(t, runReport([]string{"-out", out}, &stdout, &stderr), stderr.String())
	text = stdout.String()
	require.Contains(t, text, "nowt report -out "+out)
	require.Contains(t, text, "| bp | 2 |")
	require.Contains(t, text, "| kp | 2 |")
	require.FileExists(t, filepath.Join(out, "results.md"))
	require.FileExists(t, filepath.Join(out, "angles-kp.png"))

	err = runReport([]string{"-out", t.TempDir()}, &stdout, &stderr)
	require.ErrorContains(t, err, "holds no runs")
	err = runReport([]string{"-out", filepath.Join(out, "kp")}, &stdout, &stderr)
	require.ErrorContains(t, err, filepath.Join(out, "kp")+" is one run (it holds a config.json), not a comparison: "+
		"give the folder above it")
	require.ErrorContains(t, err, "(nowt eval -out "+filepath.Join(out, "kp")+" evaluates the run itself)", "it keeps its checkpoints")
	require.ErrorContains(t, runReport(nil, &stdout, &stderr), "-out")
}

func TestCommandLineQuoting(t *testing.T) {
	require.Equal(t, `nowt compare -set 'a=1;b=2' -out runs/x ''`,
		commandLine([]string{"-set", "a=1;b=2", "-out", "runs/x", ""}))
}
