"""What oneDNN's convolution would save nowt's step on the XLA CPU plugin (docs/perf-analysis.md §21).

The CPU plugin nowt uses (0.81) has oneDNN's convolution built in behind the custom call `__onednn$convolution`
(XLA's OneDnnOpThunk), but its compiler never emits that call: `--xla_cpu_use_onednn` with
`--xla_cpu_experimental_onednn_custom_call` rewrites nothing, so every convolution runs as Eigen's. This script
measured what emitting it would buy, before nowt did (since f5156f4, through the patched GoMLX in third_party/;
dump the step with `-backend xla:cpu,noonednn_conv` to start from XLA's convolutions). It takes a training step
that nowt compiled, as XLA dumped it, and replaces convolutions by the custom call, with the oneDNN configuration
XLA's own rewriter would write (raw window values, as this plugin reads them):

  none  no convolution replaced (nowt's step as it runs today)
  fwd   every convolution without input dilation whose kernel operand is a kernel: the forward convolutions and the
        input gradients of stride-1 layers (the input gradients of strided layers dilate their input, which the
        call cannot express)
  all   fwd and the weight gradients (x against δ as the kernel: a large window and a small output)

It checks that each variant's outputs agree with `none`'s, then times the variants in alternated rounds (the
order reversed every other round) on the plugin. With --per-conv it also times each distinct convolution of the
step alone, XLA's against oneDNN's.

  XLA_FLAGS="--xla_dump_to=/tmp/dump --xla_dump_hlo_as_proto" bin/nowt bench -backend xla:cpu,noonednn_conv \\
      -model resnet20 -batch 64 -dataset synthetic -image-size 32 -rule bp -steps 2
  .peers-venv/bin/python scripts/peers/onednn_conv.py --plugin ~/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so \\
      --hlo /tmp/dump/module_0001.Trainer_0.before_optimizations.hlo.pb --per-conv
"""
import argparse
import collections
import json
import re
import statistics
import sys
import time

import numpy as np
import jax

from jax_plugin import use_plugin
from replay_hlo import compile_stablehlo, load_stablehlo

jax.config.update("jax_enable_x64", True)  # nowt's global step is an int64 parameter

CONV = re.compile(
    r"^(?P<indent>\s*)(?P<result>%\S+) = stablehlo\.convolution\((?P<x>%\S+), (?P<w>%\S+)\) "
    r"dim_numbers = \[(?P<xdims>[^\]]*)\]x\[(?P<wdims>[^\]]*)\]->\[(?P<ydims>[^\]]*)\], "
    r"window = \{stride = \[(?P<stride>[^\]]*)\], pad = \[\[(?P<pad>[^\]]*)\], \[(?P<pad2>[^\]]*)\]\], "
    r"lhs_dilate = \[(?P<lhs_dilate>[^\]]*)\], rhs_dilate = \[(?P<rhs_dilate>[^\]]*)\], "
    r"reverse = \[false, false\]\} "
    r"\{batch_group_count = 1 : i64, feature_group_count = 1 : i64[^}]*\} : "
    r"\((?P<xtype>tensor<[^>]*>), (?P<wtype>tensor<[^>]*>)\) -> (?P<ytype>tensor<[^>]*>)$")

MODES = ("none", "fwd", "all")


def ints(text):
    return [int(v) for v in text.split(",")]


def labels(text):
    return [v.strip() for v in text.split(",")]


def dims(tensor_type):
    return [int(v) for v in re.match(r"tensor<([\dx]+)x", tensor_type).group(1).split("x")]


def is_weight_gradient(m):
    """nowt's weight gradients contract x with δ as the kernel: their kernel's first dimension is its input feature."""
    return labels(m["wdims"])[0] == "i"


def replaceable(m, mode):
    if mode == "none" or ints(m["lhs_dilate"]) != [1, 1]:
        return False
    return mode == "all" or not is_weight_gradient(m)


def onednn_config(m):
    """The backend configuration XLA's OneDnnContractionRewriter writes for this convolution (a BackendConfig's
    onednn_conv_config, as JSON)."""
    x, w, y = labels(m["xdims"]), labels(m["wdims"]), labels(m["ydims"])
    kernel = dims(m["wtype"])
    pad_h, pad_w = ints(m["pad"]), ints(m["pad2"])
    data = lambda l: {"batch_dim": l.index("b"), "feature_dim": l.index("f"), "spatial_dims": [l.index("0"), l.index("1")]}
    return {"onednn_conv_config": {
        "dims": 4,
        "input": {"dims": 4, "data": data(x)},
        "kernel": {"dims": 4, "filter": {"input_feature_dim": w.index("i"), "output_feature_dim": w.index("o"),
                                         "spatial_dims": [w.index("0"), w.index("1")], "shape": kernel}},
        "output": {"dims": 4, "data": data(y)},
        "window": {"size": [kernel[w.index("0")], kernel[w.index("1")]], "pad_left": [pad_h[0], pad_w[0]],
                   "pad_right": [pad_h[1], pad_w[1]], "strides": ints(m["stride"]),
                   "window_dilations": ints(m["rhs_dilate"])},
        "feature_groups": 1}}


def custom_call(m):
    config = json.dumps(onednn_config(m)).replace('"', '\\"')
    return (f'{m["indent"]}{m["result"]} = stablehlo.custom_call @"__onednn$convolution"({m["x"]}, {m["w"]}) '
            f'{{backend_config = "{config}"}} : ({m["xtype"]}, {m["wtype"]}) -> {m["ytype"]}')


def rewrite(text, mode):
    """Returns text with the convolutions mode selects replaced by oneDNN's custom call, and how many."""
    lines, replaced = [], 0
    for line in text.splitlines():
        m = CONV.match(line)
        if m and replaceable(m, mode):
            line = custom_call(m)
            replaced += 1
        lines.append(line)
    return "\n".join(lines), replaced


def median_ms(executable, args, steps):
    for _ in range(3):
        for out in executable.execute(args):
            out.block_until_ready()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        for out in executable.execute(args):
            out.block_until_ready()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def worst_relative_difference(reference, outputs):
    worst = 0.0
    for r, o in zip(reference, outputs):
        if np.issubdtype(r.dtype, np.floating) and r.size:
            worst = max(worst, float(np.max(np.abs(r - o)) / (np.max(np.abs(r)) + 1e-30)))
    return worst


def kind(m):
    if is_weight_gradient(m):
        return "weight gradient"
    return "input gradient" if labels(m["wdims"])[2] == "o" else "forward"


def per_conv(client, text, steps):
    """Times each distinct convolution of the step alone, XLA's and oneDNN's, and prints a table with how many
    times the step runs it."""
    seen = collections.Counter()
    first = {}
    for line in text.splitlines():
        m = CONV.match(line)
        if m:
            key = re.sub(r"%[^\s,)]+", "%", line.strip())
            seen[key] += 1
            first.setdefault(key, m)
    print("kind,input,kernel,stride,lhs_dilate,count,xla_ms,onednn_ms,onednn_over_xla")
    for key, count in seen.most_common():
        m = first[key]
        body = key.replace("% = ", "%y = ", 1).replace("(%, %)", "(%x, %w)", 1)
        func = (f"func.func public @main(%x: {m['xtype']}, %w: {m['wtype']}) -> {m['ytype']} {{\n  {body}\n"
                f"  return %y : {m['ytype']}\n}}")
        xla, args = compile_stablehlo(client, func)
        xla_ms = median_ms(xla, args, steps)
        window = lambda v: "x".join(str(i) for i in ints(v))
        row = f"{kind(m)},{m['xtype']},{m['wtype']},{window(m['stride'])},{window(m['lhs_dilate'])},{count},{xla_ms:.3f}"
        if ints(m["lhs_dilate"]) != [1, 1]:
            print(row + ",,")
            continue
        onednn, _ = compile_stablehlo(client, rewrite(func, "all")[0])
        want, got = np.asarray(xla.execute(args)[0]), np.asarray(onednn.execute(args)[0])
        if worst_relative_difference([want], [got]) > 1e-4:
            sys.exit(f"onednn_conv: oneDNN's result differs from XLA's for {key}")
        onednn_ms = median_ms(onednn, args, steps)
        print(f"{row},{onednn_ms:.3f},{onednn_ms / xla_ms:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hlo", required=True, help="a *.before_optimizations.hlo.pb file of XLA's dump of nowt's step")
    ap.add_argument("--plugin", required=True, help="the XLA CPU PJRT plugin (nowt's: pjrt_c_api_cpu_plugin.so)")
    ap.add_argument("--modes", default="none,fwd,all", help="comma-separated, of " + ", ".join(MODES))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20, help="timed executions per variant and round")
    ap.add_argument("--per-conv", action="store_true", help="also time each distinct convolution alone")
    a = ap.parse_args()
    modes = a.modes.split(",")
    if "none" not in modes or any(m not in MODES for m in modes):
        sys.exit(f"onednn_conv: --modes {a.modes}: want a comma-separated list of {', '.join(MODES)} with none")
    use_plugin(a.plugin)
    client = jax.devices()[0].client
    text = load_stablehlo(a.hlo)
    if a.per_conv:
        per_conv(client, text, a.steps)
    compiled, args = {}, None
    for mode in ["none"] + [m for m in modes if m != "none"]:
        variant, replaced = rewrite(text, mode)
        compiled[mode], args = compile_stablehlo(client, variant)
        print(f"variant,{mode},replaced,{replaced}", flush=True)
    reference = [np.asarray(o) for o in compiled["none"].execute(args)]
    for mode, executable in compiled.items():
        if mode != "none":
            outputs = [np.asarray(o) for o in executable.execute(args)]
            print(f"variant,{mode},worst_relative_difference,{worst_relative_difference(reference, outputs):.2e}")
    order = list(compiled)
    for r in range(a.rounds):
        for mode in order if r % 2 == 0 else order[::-1]:
            print(f"round,{r},{mode},median_step_ms,{median_ms(compiled[mode], args, a.steps):.1f}", flush=True)


if __name__ == "__main__":
    main()
