#!/usr/bin/env bash
# Copies each comparison's results.md and PNG plots from runs/results/<name>/ into docs/results/<name>/
# (the runs' checkpoints stay out of the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${OUT:-runs/results}
for dir in "$src"/*/; do
	name=$(basename "$dir")
	[[ -f "$dir/results.md" ]] || continue
	mkdir -p "docs/results/$name"
	cp "$dir"/results.md "$dir"/*.png "docs/results/$name/"
done
ls docs/results
