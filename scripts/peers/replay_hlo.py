"""Runs a training-step graph that nowt compiled, as XLA dumped it, through JAX's runtime: on the XLA bundled with
jaxlib, or with --plugin on a PJRT plugin (the one nowt uses), so that nowt's graph and JAX's own program can be
timed by the same runtime, and nowt's graph by both runtimes. Used by docs/perf-analysis.md.

  XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_proto" bin/nowt bench -backend xla:cpu ... -steps 3
  .peers-venv/bin/python scripts/peers/replay_hlo.py --hlo /tmp/dump/module_*.Trainer_0.before_optimizations.hlo.pb

The arguments are random (floats) and zeros (integers) of the parameters' shapes: the step's time does not depend
on their values. Prints the median time of --steps executions after three untimed ones.

With --profile N (jaxlib's XLA only: a plugin's kernels are invisible to JAX's profiler) the timed executions run
under JAX's profiler with XLA's per-kernel trace on, and it also prints the time a step spends in each kind of
kernel (fusions by name, convolutions, dots, ...) and in the N costliest kernels, each with its result shape and
operands from the optimised graph (docs/perf-analysis.md §17):

  .peers-venv/bin/python scripts/peers/replay_hlo.py --hlo … --steps 5 --profile 30
"""
import collections
import glob
import os
import re
import tempfile
import argparse
import statistics
import sys
import time

import numpy as np
import jax

from jax_plugin import use_plugin

jax.config.update("jax_enable_x64", True)  # nowt's global step is an int64 parameter


def unwrap_hlo_proto(data):
    """The dump is an HloProto whose field 1 is the HloModuleProto: return that field's bytes."""
    if not data or data[0] != 0x0A:
        raise ValueError("not an HloProto dump (expected field 1, the module, first)")
    i, shift, n = 1, 0, 0
    while True:
        c = data[i]
        n |= (c & 0x7F) << shift
        i += 1
        shift += 7
        if c < 0x80:
            return data[i:i + n]


def load_stablehlo(path):
    """Reads a *.before_optimizations.hlo.pb file of XLA's dump and returns the module as StableHLO (MLIR) text."""
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib import xla_client
    from jax._src.lib.mlir import ir

    module = xla_client._xla.mlir.hlo_to_stablehlo(unwrap_hlo_proto(open(path, "rb").read()))
    with jmlir.make_ir_context():
        return str(ir.Module.parse(module))


DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "si32": np.int32,
          "si64": np.int64, "ui32": np.uint32, "i1": np.bool_}


def compile_stablehlo(client, text, seed=0):
    """Compiles StableHLO text for the client's first device and returns the executable and arguments for its main
    function: random (floats, scale 0.01) and zeros (integers) of the parameters' shapes, on that device."""
    from jax._src import compiler
    from jax._src.interpreters import mlir as jmlir
    from jax._src.lib.mlir import ir

    rng = np.random.default_rng(seed)
    with jmlir.make_ir_context():
        parsed = ir.Module.parse(text)
        main_fn = [op for op in parsed.body.operations if str(op.attributes["sym_name"]) == '"main"'][0]
        args = []
        for t in main_fn.type.inputs:
            rt = ir.RankedTensorType(t)
            dt = DTYPES.get(str(rt.element_type))
            if dt is None:
                sys.exit(f"replay_hlo: parameter type {rt.element_type} not handled")
            shape = list(rt.shape)
            if np.issubdtype(dt, np.floating):
                args.append(np.asarray(rng.standard_normal(shape) * 0.01, dtype=dt))
            else:
                args.append(np.zeros(shape, dtype=dt))
        options = compiler.get_compile_options(num_replicas=1, num_partitions=1)
        executable = client.compile_and_load(parsed.operation.get_asm(binary=True), client.devices()[:1], options)
    return executable, [jax.device_put(x, client.devices()[0]) for x in args]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hlo", required=True, help="a *.before_optimizations.hlo.pb file of XLA's dump")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--plugin", help="run on this PJRT plugin instead of jaxlib's XLA")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print the time per kind of kernel and the N costliest kernels (jaxlib's XLA only)")
    a = ap.parse_args()
    if a.profile and a.plugin:
        sys.exit("replay_hlo: --profile needs jaxlib's XLA (JAX's profiler does not see a plugin's kernels): drop --plugin")
    if a.profile:  # read when the CPU client is created, below
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
    if a.plugin:
        use_plugin(a.plugin)
    client = jax.devices()[0].client
    executable, args = compile_stablehlo(client, load_stablehlo(a.hlo))
    trace_dir = tempfile.mkdtemp(prefix="replay_hlo_trace_") if a.profile else None
    times = []
    for i in range(a.steps + 3):
        if i == 3 and trace_dir:
            jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        for out in executable.execute(args):
            out.block_until_ready()
        if i >= 3:
            times.append(time.perf_counter() - start)
    if trace_dir:
        jax.profiler.stop_trace()
    system = "nowt-graph@" + ("nowt-plugin" if a.plugin else f"jaxlib-{jax.__version__}")
    print(f"{system},median_step_ms,{1000 * statistics.median(times):.3f}")
    if trace_dir:
        print_profile(trace_dir, executable.hlo_modules()[0].to_string(), a.steps, a.profile)


def print_profile(trace_dir, optimized_hlo, steps, top):
    """Prints, per step, the time in each kind of kernel of the entry computation (a kernel is named after its
    HLO instruction; its kind is the name without the number) and the top costliest kernels with their shapes."""
    from jax.profiler import ProfileData

    entry = optimized_hlo[optimized_hlo.index("\nENTRY"):]
    instructions = {}  # name → (result shape, first operands)
    for line in entry.splitlines():
        m = re.match(r"\s+(?:ROOT )?%([\w.\-]+) = (\(?[^ ]+) [\w-]+\((.*)", line)
        if m:
            operands = re.findall(r"%([\w.\-]+)", m.group(3).split("), ")[0])[:3]
            instructions[m.group(1)] = (m.group(2), " ".join(operands))
    kernel_ns = collections.Counter()
    trace = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))[-1]
    for plane in ProfileData.from_file(trace).planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in instructions:
                    kernel_ns[event.name] += event.duration_ns
    by_kind = collections.Counter()
    for name, ns in kernel_ns.items():
        by_kind[re.sub(r"\.\d+$", "", name)] += ns
    ms = lambda ns: ns / 1e6 / steps
    print(f"kernels,total_ms_per_step,{ms(sum(kernel_ns.values())):.2f}")
    for kind, ns in by_kind.most_common():
        print(f"kind,{kind},{ms(ns):.2f}")
    for name, ns in kernel_ns.most_common(top):
        shape, operands = instructions[name]
        print(f"kernel,{name},{ms(ns):.3f},{shape},{operands}")


if __name__ == "__main__":
    main()
