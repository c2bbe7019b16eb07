"""Sign symmetry's cost over BP in JAX, timed as `nowt bench -rounds` times nowt's rules, for scripts/bench-peers.sh
(perf-analysis.md §24): an MLP of models_spec.md, three jitted steps set up at once — bp, ss (each dense layer's
input gradient through scale·sign(W) by a custom_vjp, scale the RMS of W's initialisation) and bp again (the
noise) — each timed for --steps steps in turn, round after round, the order reversed every other round.

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
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_plugin import use_plugin

MOMENTUM, WEIGHT_DECAY, LR = 0.9, 1e-4, 0.01
SIZES = {"mlp500": [784, 500, 10], "mlp1000": [784, 1000, 1000, 10]}


def sign_symmetric_matmul(scale):
    """x @ w whose input gradient goes through scale·sign(w) instead of w (the weight gradient is autodiff's)."""
    @jax.custom_vjp
    def matmul(x, w):
        return x @ w

    def forward(x, w):
        return x @ w, (x, w)

    def backward(res, g):
        x, w = res
        return g @ (scale * jnp.sign(w)).T, x.T @ g

    matmul.defvjp(forward, backward)
    return matmul


def make_step(sizes, rule):
    def loss(p, x, y):
        h = x
        for i in range(len(sizes) - 1):
            w = p[f"w{i}"]
            h = (sign_symmetric_matmul(float(np.sqrt(2.0 / sizes[i])))(h, w) if rule == "ss" else h @ w) + p[f"b{i}"]
            if i < len(sizes) - 2:
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.sum(jax.nn.one_hot(y, sizes[-1]) * jax.nn.log_softmax(h), axis=-1))

    def step(p, v, x, y):
        g = jax.grad(loss)(p, x, y)
        d = {k: (g[k] + WEIGHT_DECAY * p[k] if k.startswith("w") else g[k]) for k in g}
        nv = {k: MOMENTUM * v[k] + d[k] for k in v}
        return {k: p[k] - LR * nv[k] for k in p}, nv

    return jax.jit(step, donate_argnums=(0, 1))


def initial(sizes):
    key, p = jax.random.PRNGKey(0), {}
    for i in range(len(sizes) - 1):
        key, k = jax.random.split(key)
        p[f"w{i}"] = jax.random.normal(k, (sizes[i], sizes[i + 1]), jnp.float32) * np.sqrt(2.0 / sizes[i])
        p[f"b{i}"] = jnp.zeros((sizes[i + 1],), jnp.float32)
    return p, {k: jnp.zeros_like(x) for k, x in p.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=100, help="timed steps of each rule in a round")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--plugin", help="run on this PJRT plugin (the XLA CPU plugin nowt uses)")
    a = ap.parse_args()
    system = f"jax-{jax.__version__}"
    if a.plugin:
        use_plugin(a.plugin)
        system += "@nowt-plugin"
    sizes = SIZES[a.model]
    x = jax.random.normal(jax.random.PRNGKey(1), (a.batch, sizes[0]), jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(2), (a.batch,), 0, sizes[-1])
    names = ["bp", "ss", "bp-again"]
    state = {n: initial(sizes) for n in names}
    steps = {n: make_step(sizes, "ss" if n == "ss" else "bp") for n in names}
    first = {}

    def run(name, n):
        p, v = state[name]
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            p, v = steps[name](p, v, x, y)
            jax.block_until_ready(p)
            times.append(time.perf_counter() - t0)
        state[name] = (p, v)
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
