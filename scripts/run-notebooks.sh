#!/usr/bin/env bash
# Runs nowt's GoNB notebooks headless, cell by cell as Jupyter would (nbconvert --execute), each into
# runs/notebooks/<name>.ipynb with its outputs: the notebooks in notebooks/ stay output-free. Their trainings write
# into notebooks/runs/ (ignored by git) and are resumed, not repeated, on a second run: delete it to train again.
#
# Fails when a cell fails. nbconvert alone catches only cells that do not compile: GoNB reports a cell that
# panics or exits non-zero on stderr, so each executed notebook's outputs are read back for that too.
#
# Needs Jupyter with nbconvert, the GoNB kernel and goimports (notebooks/tutorial.ipynb, "Running this notebook",
# says how to install them). NOTEBOOKS picks the notebooks (default: notebooks/*.ipynb), NOTEBOOKS_OUT the folder
# of the executed copies (default: runs/notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PATH:$(go env GOPATH)/bin" # where go install puts gonb and goimports

missing=()
command -v jupyter >/dev/null && jupyter nbconvert --version >/dev/null 2>&1 ||
	missing+=("Jupyter with nbconvert: pip install jupyterlab (or apt-get install jupyter-nbconvert)")
command -v jupyter >/dev/null && jupyter kernelspec list 2>/dev/null | grep -qw gonb ||
	missing+=("the GoNB kernel: go install github.com/janpfeifer/gonb@v0.11.1 && gonb --install")
command -v goimports >/dev/null ||
	missing+=("goimports, which GoNB runs: go install golang.org/x/tools/cmd/goimports@latest")
if ((${#missing[@]})); then
	echo "run-notebooks: missing" >&2
	printf '  - %s\n' "${missing[@]}" >&2
	exit 2
fi

out=${NOTEBOOKS_OUT:-runs/notebooks}
mkdir -p "$out"
failed=0
for nb in ${NOTEBOOKS:-notebooks/*.ipynb}; do
	name=$(basename "$nb")
	echo "== $nb -> $out/$name"
	start=$SECONDS
	if ! jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 --output-dir "$out" \
		--log-level WARN "$nb" 2>"$out/${name%.ipynb}.log"; then
		echo "   FAILED after $((SECONDS - start)) s: a cell did not compile or run; see $out/${name%.ipynb}.log" >&2
		tail -n 5 "$out/${name%.ipynb}.log" >&2
		failed=1
		continue
	fi
	if ! python3 - "$out/$name" <<'EOF'; then
import json, re, sys
path = sys.argv[1]
bad = []
for i, cell in enumerate(json.load(open(path))["cells"], 1):  # cells counted from 1, markdown included
    if cell["cell_type"] != "code":
        continue
    stderr = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                     if o.get("output_type") == "stream" and o.get("name") == "stderr")
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors or re.search(r"(^|\n)panic: |exit status [1-9]", stderr):
        # Name the fault, not the notices before it: the panic's line, else the error's value, else the line
        # before "exit status N" (the program's last word) and that line.
        lines = [line for line in stderr.splitlines() if line.strip()]
        panic = [line for line in lines if line.startswith("panic: ")]
        exits = [j for j, line in enumerate(lines) if re.search(r"exit status [1-9]", line)]
        if panic:
            shown = panic[:1]
        elif errors:
            shown = [f'{errors[0].get("ename", "error")}: {errors[0].get("evalue", "")}']
        elif exits:
            shown = lines[max(0, exits[0] - 1):exits[0] + 1]
        else:
            shown = lines[:2]
        bad.append(f"cell {i}: " + " / ".join(shown))
if bad:
    print(f"   {path}: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
		echo "   FAILED after $((SECONDS - start)) s: a cell panicked or exited non-zero (its outputs are in $out/$name)" >&2
		failed=1
		continue
	fi
	echo "   ran in $((SECONDS - start)) s"
done
exit $failed
