#!/usr/bin/env bash
# jit_profile.sh: where a running XLA CPU program spends its time, kernel by kernel, with XLA's own kernel names.
#
#   scripts/peers/jit_profile.sh bin/nowt bench -backend xla:cpu -model resnet20 -batch 64 -dataset synthetic \
#     -image-size 32 -rule bp -steps 400
#
# perf sees the code that XLA's CPU plugin compiles as anonymous memory ("[JIT]"), which is most of a step: it
# cannot name it. gdb can: the plugin registers each compiled kernel with gdb's JIT interface. So this starts the
# command, waits WARM seconds (default 8: compilation and the first steps), samples every thread with
# `perf record` for SECS seconds (default 8; FREQ samples a second, default 1999), then attaches gdb to the still
# running process and asks it for the symbol of every sampled JIT address. It prints the share of all samples per
# shared object and per kernel (TOP lines, default 20), and leaves the process killed. Samples in JIT code that
# gdb cannot name are oneDNN's (the plugin's matrix products; its kernels are generated without gdb's interface).
#
# The command must run for longer than WARM + SECS + the time gdb takes (about a minute for 4,000 addresses).
# Needs perf and gdb (Debian: linux-perf, gdb) and the permission to attach to one's own processes.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n 2,16p "$0" >&2
  exit 2
fi
for tool in perf gdb python3; do
  command -v "$tool" >/dev/null || { echo "jit_profile.sh: $tool not found (Debian: apt-get install linux-perf gdb python3)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/jit-profile.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$@" >"$work/out.txt" 2>&1 &
pid=$!
sleep "${WARM:-8}"
kill -0 "$pid" 2>/dev/null || { echo "jit_profile.sh: the command ended within WARM=${WARM:-8} s; its output:" >&2; cat "$work/out.txt" >&2; exit 1; }
perf record -q -F "${FREQ:-1999}" -p "$pid" -o "$work/perf.data" -- sleep "${SECS:-8}" >/dev/null 2>&1
kill -0 "$pid" 2>/dev/null || { echo "jit_profile.sh: the command ended before gdb could attach: give it more steps" >&2; exit 1; }
perf script -i "$work/perf.data" -F ip,dso 2>/dev/null >"$work/ips.txt"

# One pass over the samples: the shares per shared object, and per JIT address, which gdb (attached to the still
# running process, one "info symbol" each) turns into kernel names.
python3 - "$work" "$pid" "${TOP:-20}" <<'PY'
import collections, re, subprocess, sys
work, pid, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
dsos, jit, total = collections.Counter(), collections.Counter(), 0
for line in open(f"{work}/ips.txt"):
    parts = line.split()
    if len(parts) < 2:
        continue
    total += 1
    if "perf-" in line or "unknown" in line or "[JIT]" in line:
        jit[int(parts[0], 16)] += 1
    else:
        dsos[parts[1].strip("()").split("/")[-1]] += 1
addresses = list(jit)
with open(f"{work}/gdb.txt", "w") as f:
    f.writelines(f"info symbol {address:#x}\n" for address in addresses)
gdb = subprocess.run(["timeout", "600", "gdb", "-p", pid, "-batch", "-x", f"{work}/gdb.txt"],
                     capture_output=True, text=True)
answers = [l for l in gdb.stdout.splitlines() if " in section " in l or l.startswith("No symbol")]
if len(answers) != len(addresses):
    sys.exit(f"jit_profile.sh: gdb answered {len(answers)} of {len(addresses)} addresses:\n{gdb.stderr[-2000:]}")
kernels = collections.Counter()
for address, answer in zip(addresses, answers):
    m = re.match(r"(\S+)( \+ \d+)? in section", answer)
    kernels[m.group(1) if m else "unnamed JIT (oneDNN)"] += jit[address]
print(f"{total} samples; JIT code {100 * sum(kernels.values()) / max(total, 1):.1f} %")
for name, n in dsos.most_common(6):
    print(f"  {name:<50} {100 * n / total:5.1f} %")
print("JIT code by kernel:")
for name, n in kernels.most_common(top):
    print(f"  {name:<50} {100 * n / total:5.1f} %")
PY
