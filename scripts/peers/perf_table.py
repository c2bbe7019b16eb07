"""Writes docs/perf.md (to stdout) from the rows scripts/bench-peers.sh collected."""
import csv
import os
import statistics
import platform
import subprocess
import sys
from collections import OrderedDict


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "?"


def cpu_model():
    """The CPU's model name, with the vector extensions that change which kernels oneDNN and XLA pick (AVX-512,
    AMX): the same code ranks differently on an AMD EPYC and an Intel Xeon with AMX (perf-analysis.md §24)."""
    name, flags = None, set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    name = name or platform.processor() or "?"
    extensions = [label for flag, label in (("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    return f"{name}, {' and '.join(extensions)}" if extensions else name


PAIR_SYSTEMS = (  # the JAX rows of bench-peers.sh's paired rounds: (how the system name ends, what to call it)
    ("@nowt-plugin", "JAX on the same plugin"),
    ("@nowt-plugin/host-batch", "JAX on the same plugin fed a host batch every step"),
    ("", "JAX on jaxlib's XLA"),
)


PYTORCH_PAIR = "PyTorch (its faster thread count)"  # the PyTorch row of bench-peers.sh's paired rounds


def pair_system(system):
    """What to call a system of pairs.csv: a PAIR_SYSTEMS name for JAX's, PYTORCH_PAIR for PyTorch's, None for
    nowt's."""
    if system.startswith("torch"):
        return PYTORCH_PAIR
    if not system.startswith("jax"):
        return None
    suffix = system[system.index("@"):] if "@" in system else ""
    return next((name for end, name in PAIR_SYSTEMS if end == suffix), None)


def paired_ratios(pairs):
    """For each (model, batch): {JAX system: [nowt's BP ÷ its step, one per round where both ran]}."""
    rounds = OrderedDict()
    for p in pairs:
        key = (p["model"], int(p["batch"]))
        rounds.setdefault(key, OrderedDict()).setdefault(p["round"], {})[p["system"]] = float(p["step_s"])
    out = {}
    for key, by_round in rounds.items():
        ratios = OrderedDict((name, []) for name in [n for _, n in PAIR_SYSTEMS] + [PYTORCH_PAIR])
        nowt_steps = []
        for steps in by_round.values():
            nowt = next((v for k, v in steps.items() if k.startswith("nowt")), None)
            if nowt is None:
                continue
            nowt_steps.append(nowt)
            for system, step in steps.items():
                name = pair_system(system)
                if name:
                    ratios[name].append(nowt / step)
        out[key] = (nowt_steps, OrderedDict((k, v) for k, v in ratios.items() if v))
    return out


def describe_paired(paired, goals=None):
    """'nowt-xla BP ÷ JAX on the same plugin 1.16 (…) (goal ≤ 1.2); ÷ …': one model's paired ratios, each followed
    by its goal where goals (system name → goal text) has one."""
    goals = goals or {}
    return "nowt-xla BP ÷ " + "; ÷ ".join(
        f"{name} {describe_ratios(v)}" + goals.get(name, "") for name, v in paired.items())


def describe_ratios(values):
    """'1.12 (1.05–1.20 over 3 rounds)': the median and range of one pairing's ratios."""
    if len(values) == 1:
        return f"{values[0]:.2f} (one round)"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f} over {len(values)} rounds)"


def paired_rule_ratio(row):
    """A nowt row's ratio to BP from `nowt bench -rounds` (median of the rounds' ratios, lowest, highest, rounds),
    or None for a row measured in one pass."""
    try:
        rounds = int(row.get("rounds") or 0)
        ratio, lowest, highest = (float(row[k]) for k in ("ratio_to_bp", "ratio_min", "ratio_max"))
    except (KeyError, TypeError, ValueError):  # older rows without these columns, or "-" (no bp measured)
        return None
    return (ratio, lowest, highest, rounds) if rounds > 1 else None


def describe_rule_ratio(paired_rule):
    """'1.19 (1.08–1.33)': a rule's paired ratio to BP, the median and range of its rounds."""
    ratio, lowest, highest, _ = paired_rule
    return f"{ratio:.2f} ({lowest:.2f}–{highest:.2f})"


def describe_vs_bp(row, xla_bp):
    """A nowt-xla row's ratio to BP as the page prints it: its paired ratio from rounds where it has one, else its
    step ÷ xla_bp (BP's step, or the mean of BP's two in older runs)."""
    paired_rule = paired_rule_ratio(row)
    return describe_rule_ratio(paired_rule) if paired_rule else f"{float(row['step_s']) / xla_bp:.2f}"


def main():
    rows_path, log_path = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(rows_path)))
    pairs_path = os.path.join(os.path.dirname(rows_path), "pairs.csv")
    pairs = paired_ratios(list(csv.DictReader(open(pairs_path)))) if os.path.exists(pairs_path) else {}
    groups = OrderedDict()
    for r in rows:
        groups.setdefault((r["model"], int(r["batch"])), []).append(r)
    lines = list(open(log_path))
    loads = [l.strip() for l in lines if "load average" in l]
    runs = [l.split("run: ", 1)[1].strip() for l in lines if "bench-peers: run: " in l]
    # A page put together from several runs' rows (their logs concatenated) names every run.
    provenance = "; ".join(runs) if runs else "commit " + sh("git", "rev-parse", "--short", "HEAD") + ", " + sh("date", "-u", "+%Y-%m-%d %H:%M UTC")
    out = []
    w = out.append
    w("# Speed: nowt on XLA and pure Go beside JAX and PyTorch, on CPU\n")
    w(f"Made by `scripts/bench-peers.sh` ({provenance}) on {os.cpu_count()} cores ({cpu_model()}); rows and log "
      "beside this page in docs/perf/. One training step = forward, backward and SGD with momentum "
      "(plus, for wm, its mirror steps); the models and shapes are the same in every system "
      "(scripts/peers/models_spec.md). *step* is the median of the timed steps; *first step* includes compilation "
      "(JAX's jit, XLA's compile in nowt; PyTorch compiles nothing). nowt reads its batches from its input "
      "pipeline as training does: synthetic images made by its workers (the ResNets), or, for MNIST (the MLPs), "
      "the training images put on the device once and each step's batch gathered there by indices (indexed "
      "batches, perf-analysis.md §15); JAX and PyTorch reuse one batch already in memory (and "
      "*jax@nowt-plugin/host-batch*, in the paired rounds, a NumPy batch that every step transfers). "
      "*jax* runs on the XLA bundled with jaxlib; *jax@nowt-plugin* runs the same JAX program on the PJRT plugin "
      "nowt's xla:cpu rows use, with the XLA flags nowt sets (XNNPACK off; 512-bit vectors on a CPU with "
      "AVX-512), so that nowt and JAX are compared on the same compiler; both create the plugin's "
      "client with one host device (its own default is 4, which slows a one-device step on a machine with fewer "
      "cores, perf-analysis.md §10). Where a nowt-xla row's "
      "*÷ nowt-xla BP* has a range, it was measured in rounds inside one process (`nowt bench -rounds`: every "
      "rule set up at once, each timed in turn, the order reversed every other round): the median of the "
      "rounds' ratios to BP, then their range; its *step* is the median over all rounds. A JAX row with rule "
      "*ss* (the MLPs) is JAX's own sign symmetry timed the same way against JAX's BP on the same plugin "
      "(scripts/peers/jax_rule_rounds.py): what the rule costs on this compiler. Where the MLP step's "
      "time goes, and why nowt's graph is not the gap: [perf-analysis.md](perf-analysis.md).\n")
    if loads:
        w("Machine load while it ran: " + "; ".join(l.replace("bench-peers: ", "") for l in loads) + ".\n")
        try:
            busiest = max(float(l.split(":")[-1].split()[0]) for l in loads)
        except ValueError:
            busiest = 0
        if busiest > 1.25 * (os.cpu_count() or 1):  # the benchmark itself keeps every core busy
            w(f"**Caution:** other work was running (load average up to {busiest:.1f} on {os.cpu_count()} cores). "
              "Systems ran one after another, so each saw a different load: ratios between systems, and between "
              "rules of the same system, can be off by a factor of two in either direction here. Rerun on an idle "
              "machine before reading an ordering from them.\n")
    summary = []
    for (model, batch), rs in groups.items():
        jax_bp = next((float(r["step_s"]) for r in rs
                       if r["system"].startswith("jax") and "@" not in r["system"] and r["rule"] == "bp"), None)
        jax_plugin_bp = next((float(r["step_s"]) for r in rs
                              if r["system"].endswith("@nowt-plugin") and r["rule"] == "bp"), None)
        # JAX's own rule rows (scripts/peers/jax_rule_rounds.py: ss on the MLPs, timed in rounds against JAX's BP on
        # the same plugin): what the rule costs on this compiler, beside nowt's ratio.
        jax_rules = {r["rule"]: paired_rule_ratio(r) for r in rs
                     if r["system"].endswith("@nowt-plugin") and r["rule"] != "bp" and paired_rule_ratio(r)}
        torch_bp = min((float(r["step_s"]) for r in rs if r["system"].startswith("torch")), default=None)
        # Rows of runs before `nowt bench -rounds` measured BP's baseline twice on XLA, before and after the other
        # rules (a bp-again row): their ratios are against the mean of the two, and their spread is the drift a
        # ratio has to beat. Rows measured in rounds carry their paired ratio (paired_rule_ratio) instead, and a
        # bp-again row among them (`nowt bench -control`) is BP's paired ratio to itself: the noise.
        xla_rows = {r["rule"]: r for r in rs if r["system"] == "nowt-xla:cpu"}
        control = paired_rule_ratio(xla_rows["bp-again"]) if "bp-again" in xla_rows else None
        xla_bps = [float(r["step_s"]) for r in rs if r["system"] == "nowt-xla:cpu"
                   and (r["rule"] == "bp" or (r["rule"] == "bp-again" and not control))]
        xla_bp = sum(xla_bps) / len(xla_bps) if xla_bps else None
        w(f"\n## {model}, batch {batch}\n")
        w("| system | rule | first step (s) | step (ms) | images/s | ÷ JAX BP | ÷ nowt-xla BP | mirror share |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rs:
            step = float(r["step_s"])
            vs_jax = f"{step / jax_bp:.2f}" if jax_bp else "–"
            vs_bp = describe_vs_bp(r, xla_bp) if xla_bp and r["system"] == "nowt-xla:cpu" else "–"
            if r["system"].startswith("jax") and r["rule"] in jax_rules:
                vs_bp = f"÷ its own bp {describe_rule_ratio(jax_rules[r['rule']])}"
            mirror = float(r.get("mirror_share") or 0)
            ms = f"{100 * mirror:.0f} %" if r["rule"] == "wm" and r["system"].startswith("nowt") else "–"
            w(f"| {r['system']} | {r['rule']} | {float(r['first_step_s']):.2f} | {1000 * step:.1f} | "
              f"{float(r['images_per_s']):.1f} | {vs_jax} | {vs_bp} | {ms} |")
        nowt_steps, paired = pairs.get((model, batch), ([], {}))
        if paired:
            w(f"\nPaired rounds (nowt-xla BP, then each JAX system and PyTorch right after it, the order reversed every "
              f"other round; nowt's BP step {', '.join(f'{1000 * s:.1f}' for s in nowt_steps)} ms): "
              f"{describe_paired(paired)}.")
        if xla_bp:
            parts = []
            if paired:
                parts.append("paired rounds, median: " + describe_paired(
                    paired, {PAIR_SYSTEMS[0][1]: " (goal ≤ 1.2)", PYTORCH_PAIR: " (goal ≤ 1)"}))
            elif jax_plugin_bp:
                parts.append(f"nowt-xla BP ÷ JAX on the same plugin {xla_bp / jax_plugin_bp:.2f} (goal ≤ 1.2)")
            if jax_bp and not paired:
                parts.append(f"÷ JAX on jaxlib's XLA {xla_bp / jax_bp:.2f}")
            if torch_bp and PYTORCH_PAIR not in paired:
                parts.append(f"÷ PyTorch (its faster thread count) {xla_bp / torch_bp:.2f} (goal ≤ 1)")
            if control:
                parts.append(f"bp-again÷bp {describe_rule_ratio(control)} (BP timed a second time in the same rounds: "
                             f"the noise a rule's ratio has to exceed)")
            if len(xla_bps) == 2:
                a, b = xla_bps
                parts.append(f"BP measured twice, before and after the other rules: {1000 * a:.1f} and {1000 * b:.1f} ms "
                             f"({100 * abs(a - b) / xla_bp:.0f} % of their mean; a rule's ratio within that of 1 is noise)")
            for rule in ("fa", "ss", "kp", "usf", "frsf", "brsf", "dfa", "wm"):
                if rule in xla_rows:
                    parts.append(f"{rule}÷bp {describe_vs_bp(xla_rows[rule], xla_bp)}")
                    if rule in jax_rules:
                        parts.append(f"JAX's own {rule}÷bp on the same plugin, in rounds too "
                                     f"{describe_rule_ratio(jax_rules[rule])} (what the rule costs on this compiler)")
            summary.append(f"| {model} | {batch} | " + "; ".join(parts) + " |")
    if summary:
        w("\n## Against the goals\n")
        w("| model | batch | ratios of step times (goals: nowt-xla BP ≤ 1.2× JAX on the same compiler and ≤ PyTorch; "
          "fa, ss, kp, usf, frsf, brsf ≤ 1.1× bp; dfa ≤ 1.2× bp; wm ≤ 1.1× bp on ResNets; where nowt-xla's BP "
          "has two rows measured one after the other (runs before `nowt bench -rounds`), its step is their mean; "
          "where paired rounds ran, nowt's ratios to JAX and PyTorch are theirs, and a rule's ratio to bp with a "
          "range is the median of its rounds: steps measured a minute apart drift by more than the goal's margin; "
          "bp-again ÷ bp is BP timed twice in those rounds, the noise of that run) |")
        w("|---|---:|---|")
        out.extend(summary)
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
