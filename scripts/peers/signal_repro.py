"""Reproduces, without Go, the XLA CPU plugin's heap corruption under signals (docs/upstream.md): JAX runs one jitted
128x784 @ 784x500 product 5,000 times while a process-wide SIGPROF timer fires 100 times a CPU-second (what Go's CPU
profiler does). On the xla-cpu-pjrt 0.0.1 plugin the process aborts ("corrupted size vs. prev_size while
consolidating", a free() in oneDNN's sgemm on a tf_XLAEigen thread); on jaxlib's own XLA it prints "ok".

    .peers-venv/bin/python scripts/peers/signal_repro.py                      # jaxlib's XLA
    .peers-venv/bin/python scripts/peers/signal_repro.py --plugin ~/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so
"""
import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax_plugin import use_plugin  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--plugin", help="run on this PJRT plugin instead of jaxlib's XLA")
ap.add_argument("--steps", type=int, default=5000)
a = ap.parse_args()
if a.plugin:
    use_plugin(a.plugin)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

delivered = 0


def count(signum, frame):
    global delivered
    delivered += 1


signal.signal(signal.SIGPROF, count)
signal.setitimer(signal.ITIMER_PROF, 0.01, 0.01)
product = jax.jit(lambda x, w: jnp.tanh(x @ w))
x, w = jnp.ones((128, 784)), jnp.ones((784, 500))
for _ in range(a.steps):
    product(x, w).block_until_ready()
signal.setitimer(signal.ITIMER_PROF, 0)
print(f"ok: {a.steps} products, SIGPROF delivered {delivered} times, on {jax.devices()}")
