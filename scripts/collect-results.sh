#!/usr/bin/env bash
# Copies each comparison of runs/results/<name>/ ($OUT) into docs/results/<name>/: its results.md and PNG plots,
# and per rule the run's config.json, metrics.jsonl, wall_time.json, provenance.jsonl and any diverged.json or
# collapsed.json mark (not the checkpoints;
# provenance.jsonl, which nowt writes into each run folder, names the commit and engine of every invocation that
# trained the run; runs made before nowt wrote it have none), with provenance.json: the commit the runs were made
# from ($COMMIT, default HEAD), each rule's commit ($RULE_COMMITS, e.g. "bp=ce1bb36 kp=ce1bb36", overrides $COMMIT
# for the rules it names: a comparison whose runs were made by different builds, one reused from an earlier one)
# and the date of the newest log.
# A comparison over seeds (nowt compare -seeds) keeps its report and plots, and each seed-<n>/ comparison without its
# plots; a seed-<n> that is a link to a comparison made apart is not copied: the report's link to it is pointed
# at that comparison's own folder beside it.
# Then `go test ./report -run TestResultsPage -update` refreshes the tables of docs/results.md from those logs.
# NAMES limits it to some comparisons (default: all); DOCS_RESULTS writes elsewhere than docs/results.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${OUT:-runs/results}
commit=${COMMIT:-$(git rev-parse HEAD)}
# collect_comparison SRC DST: one comparison's results.md and plots, its runs' logs and provenance.json.
# PLOTS=no leaves the plots out (the seeds of a comparison over seeds: their logs make them again).
collect_comparison() {
	local dir=$1 dst=$2
	rm -rf "$dst"
	mkdir -p "$dst"
	cp "$dir"/results.md "$dst/"
	[[ "${PLOTS:-yes}" == no ]] || cp "$dir"/*.png "$dst/"
	local newest=0 rules=() run rule rule_commit pair f t
	for run in "$dir"/*/; do
		rule=$(basename "$run")
		[[ -f "$run/config.json" ]] || continue
		rule_commit=$commit
		for pair in ${RULE_COMMITS:-}; do
			[[ "${pair%%=*}" == "$rule" ]] && rule_commit=${pair#*=}
		done
		rules+=("\"$rule\": \"$rule_commit\"")
		mkdir -p "$dst/$rule"
		cp "$run/config.json" "$run/metrics.jsonl" "$dst/$rule/"
		for f in wall_time.json provenance.jsonl diverged.json collapsed.json; do
			[[ -f "$run/$f" ]] && cp "$run/$f" "$dst/$rule/"
		done
		t=$(stat -c %Y "$run/metrics.jsonl")
		((t > newest)) && newest=$t
	done
	local rule_list
	rule_list=$(IFS=,; echo "${rules[*]}")
	printf '{"commit": "%s", "date": "%s", "rules": {%s}}\n' "$commit" "$(date -u -d "@$newest" '+%Y-%m-%d %H:%M:%S UTC')" \
		"${rule_list//,/, }" >"$dst/provenance.json"
}

for dir in "$src"/*/; do
	name=$(basename "$dir")
	[[ -f "$dir/results.md" ]] || continue
	if [[ -n "${NAMES:-}" && " $NAMES " != *" $name "* ]]; then continue; fi
	dst="${DOCS_RESULTS:-docs/results}/$name"
	seeds=("$dir"/seed-*/)
	if [[ -d "${seeds[0]}" ]]; then
		# A comparison over seeds (nowt compare -seeds): the report over the seeds, then each seed's comparison.
		rm -rf "$dst"
		mkdir -p "$dst"
		cp "$dir"/results.md "$dir"/*.png "$dst/" # seeds-top1.png, gradient-norm.png where its logs hold norms
		for seed in "${seeds[@]}"; do
			seed=${seed%/}
			if [[ -L "$seed" ]]; then
				# A link to a comparison made apart (collected under its own name): the report links to it there.
				target=$(basename "$(readlink "$seed")")
				sed -i "s#($(basename "$seed")/results.md)#(../$target/results.md)#" "$dst/results.md"
				continue
			fi
			PLOTS=no collect_comparison "$seed" "$dst/$(basename "$seed")"
		done
		continue
	fi
	collect_comparison "$dir" "$dst"
done
ls "${DOCS_RESULTS:-docs/results}"
