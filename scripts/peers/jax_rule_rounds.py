"""Sign symmetry's cost over BP in JAX, timed as `nowt bench -rounds` times nowt's rules, for scripts/bench-peers.sh
(perf-analysis.md §24): an MLP of models_spec.md, three of bench_jax.py's jitted steps set up at once — bp, ss
(bench_jax.py --rule ss) and bp again (the noise) — each timed for --steps steps in turn, round after round, the
order reversed every other round.

Prints one CSV row for ss in bench-peers.sh's rows.csv layout:
system,model,rule,batch,first_step_s,step_s,images_per_s,mirror_share,ratio_to_bp,ratio_min,ratio_max,rounds
(the ratio the median of the rounds' ss ÷ bp, then their range; step_s the median over all rounds), and on stderr
bp again ÷ bp the same way.

    XLA_FLAGS="--xla_cpu_use_xnnpack=false --xla_cpu_prefer_vector_width=512" .peers-venv/bin/python \\
      scripts/peers/jax_rule_rounds.py --model mlp1000 --batch 128 --steps 100 --rounds 12 --plugin PLUGIN
"""
import argparse
import statistics
import sys

import jax

from bench_jax import MLP_SIZES, setup, timed_steps
from jax_plugin import use_plugin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(MLP_SIZES))
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=100, help="timed steps of each rule in a round")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--plugin", help="run on this PJRT plugin (the XLA CPU plugin nowt uses)")
    a = ap.parse_args()
    system = f"jax-{jax.__version__}"
    if a.plugin:
        use_plugin(a.plugin)
        system += "@nowt-plugin"
    names = ["bp", "ss", "bp-again"]
    runs = {n: setup(a.model, a.batch, rule="ss" if n == "ss" else "bp") for n in names}
    first = {}

    def run(name, n):
        jstep, *carry, x, y = runs[name]
        carry, times = timed_steps(jstep, carry, x, y, n)
        runs[name] = (jstep, *carry, x, y)
        return times

    for n in names:
        first[n] = run(n, 1)[0]
        run(n, 2)
    ratios, all_times = {"ss": [], "bp-again": []}, {n: [] for n in names}
    for r in range(a.rounds):
        medians = {}
        for n in (names if r % 2 == 0 else names[::-1]):
            times = run(n, a.steps)
            all_times[n] += times
            medians[n] = statistics.median(times)
        for n in ratios:
            ratios[n].append(medians[n] / medians["bp"])
    step = statistics.median(all_times["ss"])
    again = ratios["bp-again"]
    print(f"jax_rule_rounds: bp-again ÷ bp {statistics.median(again):.3f} ({min(again):.3f}–{max(again):.3f})",
          file=sys.stderr)
    rs = ratios["ss"]
    print(f"{system},{a.model},ss,{a.batch},{first['ss']:.4f},{step:.5f},{a.batch / step:.1f},0,"
          f"{statistics.median(rs):.4f},{min(rs):.4f},{max(rs):.4f},{a.rounds}", flush=True)


if __name__ == "__main__":
    main()
