package notebooks_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeJupyter is a stand-in for `jupyter` on PATH: `nbconvert --execute` copies the notebook of the same name
// from $FAKE_EXECUTED (its "executed" outputs) into --output-dir, or fails as nbconvert does on a cell that does
// not compile when $FAKE_COMPILE_ERROR is set; $FAKE_NO_JUPYTER makes it a jupyter without nbconvert or GoNB.
const fakeJupyter = `#!/usr/bin/env bash
[[ -z "${FAKE_NO_JUPYTER:-}" ]] || exit 1
case "$1 $2" in
"nbconvert --version") echo 7.16.0; exit 0 ;;
"kernelspec list") echo "  gonb  /fake/kernels/gonb"; exit 0 ;;
esac
outdir="" nb=""
while (($#)); do
	case "$1" in
	--output-dir) outdir=$2; shift ;;
	*.ipynb) nb=$1 ;;
	esac
	shift
done
if [[ -n "${FAKE_COMPILE_ERROR:-}" ]]; then
	echo 'nbclient.exceptions.CellExecutionError: failed to run "go build": exit status 1' >&2
	exit 1
fi
cp "$FAKE_EXECUTED/$(basename "$nb")" "$outdir/"
`

// executedNotebook returns an nbformat 4 notebook of one code cell with the given outputs.
func executedNotebook(t *testing.T, outputs ...map[string]any) []byte {
	t.Helper()
	nb := map[string]any{
		"nbformat": 4, "nbformat_minor": 5,
		"metadata": map[string]any{"kernelspec": map[string]any{"name": "gonb", "language": "go"}},
		"cells": []any{
			map[string]any{"cell_type": "markdown", "source": "# a notebook", "metadata": map[string]any{}},
			map[string]any{"cell_type": "code", "source": "%%\nrun()", "metadata": map[string]any{},
				"execution_count": 1, "outputs": outputs},
		},
	}
	data, err := json.Marshal(nb)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func stream(name, text string) map[string]any {
	return map[string]any{"output_type": "stream", "name": name, "text": []string{text}}
}

// TestRunNotebooksScript runs scripts/run-notebooks.sh (make notebooks) against a fake jupyter: it passes
// notebooks whose cells ran, and fails on a cell that panicked or exited non-zero (which GoNB reports on stderr
// and nbconvert lets pass), on an error output, and on a cell that does not compile; without Jupyter and GoNB it
// names what is missing.
func TestRunNotebooksScript(t *testing.T) {
	for _, tool := range []string{"bash", "python3", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not in PATH", tool)
		}
	}
	script, err := filepath.Abs("../scripts/run-notebooks.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for name, body := range map[string]string{"jupyter": fakeJupyter, "goimports": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		outputs []map[string]any
		env     []string
		code    int
		want    string
	}{
		{"cells ran", []map[string]any{stream("stdout", "test top-1 93.80%\n"), stream("stderr", "engine: xla:cpu\n")}, nil, 0, "ran in"},
		{"a cell panicked", []map[string]any{stream("stdout", "hi\n"), stream("stderr", "panic: "), stream("stderr", "boom\n\ngoroutine 1 [running]:\n")}, nil, 1, "cell 2: panic: boom"},
		{"a panic after notices", []map[string]any{stream("stderr", "engine: xla:cpu\nJPEG decoder: image/jpeg\npanic: boom\n\ngoroutine 1 [running]:\n")}, nil, 1, "cell 2: panic: boom\n"},
		{"a cell exited non-zero", []map[string]any{stream("stderr", "exit status 2\n")}, nil, 1, "panicked or exited non-zero"},
		{"an exit after notices", []map[string]any{stream("stderr", "engine: xla:cpu\nrun.go:12: -lr must be > 0\nexit status 1\n")}, nil, 1, "cell 2: run.go:12: -lr must be > 0 / exit status 1\n"},
		{"an error output", []map[string]any{{"output_type": "error", "ename": "ERROR", "evalue": "no such file", "traceback": []string{}}}, nil, 1, "cell 2: ERROR: no such file"},
		{"an error output after notices", []map[string]any{stream("stderr", "engine: xla:cpu\n"), {"output_type": "error", "ename": "ERROR", "evalue": "no such file", "traceback": []string{}}}, nil, 1, "cell 2: ERROR: no such file\n"},
		{"a cell does not compile", nil, []string{"FAKE_COMPILE_ERROR=1"}, 1, "did not compile or run"},
		{"no Jupyter", nil, []string{"FAKE_NO_JUPYTER=1"}, 2, "Jupyter with nbconvert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			executed, in, out := filepath.Join(dir, "executed"), filepath.Join(dir, "in"), filepath.Join(dir, "out")
			for _, d := range []string{executed, in} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			nb := executedNotebook(t, tc.outputs...)
			if err := os.WriteFile(filepath.Join(executed, "demo.ipynb"), nb, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, "demo.ipynb"), executedNotebook(t), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", script)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"FAKE_EXECUTED="+executed, "NOTEBOOKS="+filepath.Join(in, "demo.ipynb"), "NOTEBOOKS_OUT="+out)
			cmd.Env = append(cmd.Env, tc.env...)
			output, err := cmd.CombinedOutput()
			code := 0
			if exit, ok := err.(*exec.ExitError); ok {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(output), tc.want) {
				t.Errorf("run-notebooks.sh: exit %d, want %d with %q; it printed:\n%s", code, tc.code, tc.want, output)
			}
		})
	}
}
