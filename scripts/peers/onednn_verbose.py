"""oneDNN's own timing of each primitive it ran: a verbose log summed per primitive, for nowt and PyTorch alike.

oneDNN times every primitive it executes when ONEDNN_VERBOSE=1 (DNNL_VERBOSE=1 for PyTorch's oneDNN 2.x) and
prints one line per execution. This reads such a log and prints, per primitive kind, implementation and shape,
how many times it ran, its median time, and that median times the runs per step (the log's runs ÷ --steps, so
give the number of steps the command executed, warm-up and compilation runs included). Medians, so that the
first runs (oneDNN's code generation) do not count. nowt's weight gradients and identity products that XLA's
Eigen contractions run through oneDNN's sgemm show up as gemm_api.

  ONEDNN_VERBOSE=1 bin/nowt bench -backend xla:cpu -model resnet20 -batch 64 -dataset synthetic -image-size 32 \\
      -rule bp -steps 5 > /tmp/v.txt 2>&1      # 8 executions: 5 steps, 3 warm-up
  python3 scripts/peers/onednn_verbose.py /tmp/v.txt --steps 8
  DNNL_VERBOSE=1 /usr/bin/python3 scripts/peers/bench_torch.py --model resnet20 --batch 64 --steps 8 > /tmp/t.txt
  python3 scripts/peers/onednn_verbose.py /tmp/t.txt --steps 11
"""
import argparse
import collections
import statistics


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--steps", type=float, required=True, help="executions of the step the log holds")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    times = collections.defaultdict(list)
    for line in open(a.log, errors="replace"):
        if not line.startswith("onednn_verbose,") and not line.startswith("dnnl_verbose,"):
            continue
        fields = line.rstrip("\n").split(",")
        if "exec" not in fields[:5]:
            continue
        i = fields.index("exec")
        # exec, engine, kind, implementation, propagation, ..., problem, time
        kind, impl, prop = fields[i + 2], fields[i + 3], fields[i + 4]
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        times[(kind, impl, prop, fields[-2])].append(ms)
    rows = sorted(((statistics.median(v) * len(v) / a.steps, len(v), statistics.median(v), k) for k, v in times.items()),
                  reverse=True)
    per_kind = collections.Counter()
    for per_step, _, _, k in rows:
        per_kind[k[0]] += per_step
    print("kind,implementation,propagation,problem,runs,median_ms,ms_per_step")
    for per_step, n, med, (kind, impl, prop, problem) in rows[:a.top]:
        print(f"{kind},{impl},{prop},{problem},{n},{med:.3f},{per_step:.2f}")
    for kind, ms in per_kind.most_common():
        print(f"total,{kind},,,,,{ms:.2f}")


if __name__ == "__main__":
    main()
