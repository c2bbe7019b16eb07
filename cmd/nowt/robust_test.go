package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInterrupt: the first Ctrl-C says at once that the run is saving, then it saves a checkpoint and exits with
// status 130 (the resume picks up from it). The signal comes twice, back to back, as GNU timeout sends it (to the
// process and to its group): that is still one request, not "quit without saving" (TestSecondInterrupt).
func TestInterrupt(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	var exited []int
	var mu sync.Mutex
	exitNow = func(code int) { mu.Lock(); exited = append(exited, code); mu.Unlock() }
	defer func() { exitNow = os.Exit }()
	out := t.TempDir()
	args := tinyTrain("wm", out)
	for i, a := range args {
		if a == "-steps" {
			args[i+1] = "100000"
		}
	}
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() { done <- run(args, &stdout, &stderr) }()
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(stdout.String(), "step     10") {
		require.True(t, time.Now().Before(deadline), "no record after 5 minutes: %s", stderr.String())
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	code := <-done
	require.Equal(t, 130, code, "stderr: %s", stderr.String())
	require.Contains(t, stderr.String(), "Interrupted: saving a checkpoint")
	require.Regexp(t, `interrupted at step \d+: saved .*checkpoint-n\d+-step-\d+; continue with -resume`, stderr.String())
	require.NotContains(t, stderr.String(), "Loop.RunSteps", "no internal error chain")
	mu.Lock()
	require.Empty(t, exited, "a signal delivered twice is one request")
	mu.Unlock()
	require.NotContains(t, stderr.String(), "Interrupted again")
	step := regexp.MustCompile(`interrupted at step (\d+)`).FindStringSubmatch(stderr.String())[1]
	require.FileExists(t, filepath.Join(out, "checkpoints", fmt.Sprintf("checkpoint-n%09s-step-%09s.json", step, step)))
}

// TestSecondInterrupt: a second SIGINT more than signalEcho after the first quits at once with status 130; one
// within signalEcho (the same signal delivered twice) does not.
func TestSecondInterrupt(t *testing.T) {
	var exited []int
	var mu sync.Mutex
	exitNow = func(code int) { mu.Lock(); exited = append(exited, code); mu.Unlock() }
	defer func() { exitNow = os.Exit }()
	var stderr syncBuffer
	ctx, stop := interruptible(&stderr)
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	<-ctx.Done()
	time.Sleep(signalEcho / 4)
	mu.Lock()
	require.Empty(t, exited, "the echo of the first signal")
	mu.Unlock()
	time.Sleep(signalEcho)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(exited) == 1 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	require.Equal(t, []int{130}, exited)
	mu.Unlock()
	require.Contains(t, stderr.String(), "Interrupted again: quitting without saving")
}

// TestTerminatedExitStatus: a command stopped by SIGTERM (what a batch scheduler or docker stop sends) exits
// with 143, 128 + its number, as one stopped by Ctrl-C's SIGINT exits with 130; a second SIGTERM quits with 143
// too. It exited with 130 whatever the signal.
func TestTerminatedExitStatus(t *testing.T) {
	var exited []int
	var mu sync.Mutex
	exitNow = func(code int) { mu.Lock(); exited = append(exited, code); mu.Unlock() }
	defer func() { exitNow = os.Exit }()
	for _, tc := range []struct {
		signal syscall.Signal
		status int
	}{{syscall.SIGTERM, 143}, {syscall.SIGINT, 130}} {
		var stderr syncBuffer
		ctx, stop := interruptible(&stderr)
		require.NoError(t, syscall.Kill(os.Getpid(), tc.signal))
		<-ctx.Done()
		require.Equal(t, tc.status, exitCode(&trainer.InterruptedError{Step: 3, Checkpoint: "c"}), "%v", tc.signal)
		time.Sleep(2 * signalEcho)
		require.NoError(t, syscall.Kill(os.Getpid(), tc.signal))
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(exited) == 1 }, 5*time.Second, time.Millisecond)
		mu.Lock()
		require.Equal(t, []int{tc.status}, exited, "the second %v", tc.signal)
		exited = nil
		mu.Unlock()
		stop()
	}
}

// TestOutputForLogs: with output that is not a terminal there is no progress bar: one plain line per metrics
// record, test accuracy on the evaluation records, no loss at step 0, and notices on stderr only.
func TestOutputForLogs(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	out := t.TempDir()
	args := tinyTrain("wm", out)
	var cleaned []string
	for _, a := range args {
		if a != "-progress=false" {
			cleaned = append(cleaned, a)
		}
	}
	code, stdout, stderr := nowt(t, cleaned...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.NotContains(t, stdout, "\x1b[", "no terminal codes")
	require.NotContains(t, stdout, "Images/s", "no progress bar")
	lines := strings.Split(stdout, "\n")
	require.Regexp(t, `^step +0 +epoch +0\.00 +\(start\) +lr 0\.01 +test top-1 0\.\d+ top-5`, lines[0])
	require.NotContains(t, lines[0], "loss")
	records := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "step ") {
			records++
			if strings.Contains(l, "step     20") || strings.Contains(l, "step     40") {
				require.Contains(t, l, "test top-1", "evaluation records show the test accuracy")
			}
		}
	}
	require.Equal(t, 5, records)
	require.Contains(t, stderr, "Weight mirror: 4 warm-up mirror steps")
	// The defaults (128 samples, λ_B = 0.01, uniform noise) on 784 and 64 inputs: arctan √(λ/(2−λ)·(d−0.2)/n).
	require.Contains(t, stderr, "its noise floor, 2.9–9.9° over its 2 layers")
	require.NotContains(t, stdout, "Weight mirror")
}

// TestEvalOptions: eval picks a checkpoint, another dataset location and a test limit, reports the run's real
// best test top-1 (from its metrics log) and the epochs of the checkpoint.
func TestEvalOptions(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	out := t.TempDir()
	code, _, stderr := nowt(t, tinyTrain("bp", out)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	records, err := trainer.ReadRecords(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	best := 0.0
	for _, r := range records {
		if r.TestTop1 != nil && *r.TestTop1 > best {
			best = *r.TestTop1
		}
	}
	code, stdout, stderr := nowt(t, "eval", "-out", out, "-checkpoint", "checkpoint-n000000020-step-000000020", "-test-limit", "128")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "20 steps (1.25 epochs)")
	require.Contains(t, stdout, fmt.Sprintf("(best top-1 %.2f%%)", 100*best))
	require.Contains(t, stdout, "checkpoint-n000000020-step-000000020")
	// Named by one of its files, it is printed by its base name, as the newest is.
	code, stdout, stderr = nowt(t, "eval", "-out", out, "-checkpoint", "checkpoint-n000000020-step-000000020.json",
		"-test-limit", "128")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Regexp(t, `checkpoint: \S*checkpoint-n000000020-step-000000020\n`, stdout)

	code, stdout, stderr = nowt(t, "eval", "-out", out)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "40 steps (2.50 epochs)")

	code, _, stderr = nowt(t, "eval", "-out", out, "-checkpoint", "nope")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "-checkpoint nope: no such checkpoint; the run's are checkpoint-n000000020-step-000000020")

	missing := filepath.Join(t.TempDir(), "elsewhere")
	code, _, stderr = nowt(t, "eval", "-out", out, "-data", missing)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, missing)

	// A config.json edited into nonsense is blamed on the file, not on a flag eval does not have.
	path := filepath.Join(out, "config.json")
	stored, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, bytes.Replace(stored, []byte(`"model": "mlp"`), []byte(`"model": "bogus"`), 1), 0o644))
	code, _, stderr = nowt(t, "eval", "-out", out)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, path+` holds a setting nowt cannot use (-model: unknown model "bogus"`)
}

// TestVersionAndErrors: version names the module; the dataset errors say what the user needs.
func TestVersionAndErrors(t *testing.T) {
	code, stdout, _ := nowt(t, "version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^nowt github.com/nowt-ml/nowt \S+, commit .*, go1\.`, stdout)
	code, stdout2, _ := nowt(t, "--version")
	require.Equal(t, 0, code)
	require.Equal(t, stdout, stdout2)

	code, _, stderr := nowt(t, "train", "-dataset", "cifar10", "-out", t.TempDir())
	require.Equal(t, 2, code, "a missing -data is a setting error")
	require.Contains(t, stderr, "cifar10 needs -data")
	if _, err := os.Stat("/usr/share/datasets/fashion-mnist"); err != nil {
		code, _, stderr = nowt(t, "train", "-dataset", "fashion-mnist", "-out", t.TempDir())
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "dataset-fashion-mnist")
		require.Contains(t, stderr, "-data")
	}
}

// TestCheckCommand: check lists every unreadable image of a dataset with its reason and fails; a clean one
// passes.
func TestCheckCommand(t *testing.T) {
	root := t.TempDir()
	for _, split := range []string{"train", "val"} {
		for _, class := range []string{"a", "b"} {
			dir := filepath.Join(root, split, class)
			require.NoError(t, os.MkdirAll(dir, 0o755))
			var buf bytes.Buffer
			require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4))))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ok.png"), buf.Bytes(), 0o644))
		}
	}
	code, stdout, stderr := nowt(t, "check", "-dataset", "imagefolder", "-data", root, "-image-size", "4")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	require.Contains(t, stdout, "imagefolder/train: 2 examples checked, 0 unreadable")
	require.Contains(t, stdout, "imagefolder/val: 2 examples checked, 0 unreadable")

	empty := filepath.Join(root, "train", "a", "empty.jpg")
	corrupt := filepath.Join(root, "val", "b", "corrupt.png")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	require.NoError(t, os.WriteFile(corrupt, []byte("\x89PNG\r\n\x1a\ngarbage"), 0o644))
	code, stdout, stderr = nowt(t, "check", "-dataset", "imagefolder", "-data", root, "-image-size", "4")
	require.Equal(t, 1, code)
	require.Contains(t, stdout, "unreadable: "+empty)
	require.Contains(t, stdout, "unreadable: "+corrupt)
	require.Contains(t, stdout, "imagefolder/train: 3 examples checked, 1 unreadable")
	require.Contains(t, stderr, "2 unreadable examples")
}
