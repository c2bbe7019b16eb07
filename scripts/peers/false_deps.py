#!/usr/bin/env python3
"""False dependencies in an XLA CPU program: operations that share a buffer but not data.

XLA's CPU executor runs the thunks of an optimised program at the same time unless they touch the same buffer
(it orders two thunks when one writes a slice the other reads or writes). Its buffer assignment reuses a buffer
for values whose live ranges do not overlap in the program's sequence, without regard to that: two operations
with no data dependence between them can then be made to run one after the other. perf-analysis.md §25 found
SS's weight gradient written into the buffer the layer's input-gradient product read, so the two products of a
layer's backward pass, which BP runs side by side, ran in turn.

This script reads an XLA dump (--xla_dump_to=DIR --xla_dump_hlo_as_text) and lists, for the entry computation
of one module, every pair of operations ordered only by a shared buffer: A before B in the sequence, B not
depending on A through data, and a slice A reads or writes that B writes (or A writes and B reads). Only pairs in
which both operations are heavy are listed by default: matrix products, convolutions, custom calls and fusions
writing at least --min-bytes.

    python3 scripts/peers/false_deps.py DIR [--module Trainer_0] [--min-bytes 1000000] [--all]
"""

import argparse
import glob
import re
import sys

# Instructions that run no thunk of their own: they name (part of) another value's buffer.
ALIASES = {"parameter", "constant", "get-tuple-element", "bitcast", "tuple"}
HEAVY = {"dot", "convolution", "custom-call"}

INSTR = re.compile(r"^\s+(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9-]*)\((.*)$")
VALUE = re.compile(r"^\s*value: <\d+ (\S+?)(\{[0-9,]*\})? @\d+> \(size=(\d+),offset=(\d+)\)")
ALLOC = re.compile(r"^allocation (\d+): size (\d+)")


def read_buffers(path):
    """(name, shape index) -> list of (allocation, offset, size)."""
    slices = {}
    alloc = None
    with open(path) as f:
        for line in f:
            m = ALLOC.match(line)
            if m:
                alloc = int(m.group(1))
                continue
            if line and not line[0].isspace():
                alloc = None  # another section: its values are not an allocation's
            m = VALUE.match(line)
            if m and alloc is not None:
                name, index = m.group(1), m.group(2) or "{}"
                slices.setdefault((name, index), []).append((alloc, int(m.group(4)), int(m.group(3))))
    return slices


def read_entry(path):
    """The entry computation's instructions in sequence: (name, opcode, operands, attributes)."""
    out = []
    in_entry = False
    with open(path) as f:
        for line in f:
            if line.startswith("ENTRY "):
                in_entry = True
                continue
            if in_entry and line.startswith("}"):
                break
            if not in_entry:
                continue
            m = INSTR.match(line)
            if not m:
                continue
            name, opcode, rest = m.group(1), m.group(3), m.group(4)
            args = rest.split(")", 1)[0]
            operands = re.findall(r"%([^\s,)]+)", args)
            index = None
            if opcode == "get-tuple-element":
                im = re.search(r"index=(\d+)", rest)
                index = int(im.group(1)) if im else 0
            out.append((name, opcode, operands, index))
    return out


def overlap(a, b):
    return any(x[0] == y[0] and x[1] < y[1] + y[2] and y[1] < x[1] + x[2] for x in a for y in b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--module", default="Trainer_0", help="a part of the module's file name")
    ap.add_argument("--min-bytes", type=int, default=1_000_000, help="a fusion's output size to count as heavy")
    ap.add_argument("--all", action="store_true", help="list every false dependency, heavy or not")
    args = ap.parse_args()

    progs = sorted(glob.glob(f"{args.dump}/*{args.module}*.cpu_after_optimizations.txt"))
    if not progs:
        sys.exit(f"false_deps: no *{args.module}*.cpu_after_optimizations.txt in {args.dump}: dump with "
                 "XLA_FLAGS=\"--xla_dump_to=DIR --xla_dump_hlo_as_text\"")
    prog = progs[-1]
    buffers = read_buffers(prog.replace(".cpu_after_optimizations.txt",
                                        ".cpu_after_optimizations-buffer-assignment.txt"))
    seq = read_entry(prog)
    by_name = {s[0]: s for s in seq}

    def slices_of(name, index="{}"):
        """The slices holding value name (resolving aliases)."""
        inst = by_name.get(name)
        if inst and inst[1] == "get-tuple-element":
            return slices_of(inst[2][0], "{%d}" % inst[3])
        if inst and inst[1] == "bitcast":
            return slices_of(inst[2][0], index)
        got = buffers.get((name, index))
        if got is None and index == "{}":
            got = [s for (n, _), v in buffers.items() if n == name for s in v]
        return got or []

    # Thunks: what each reads and writes; data ancestors through aliases.
    thunks = []
    ancestors = {}
    for name, opcode, operands, _ in seq:
        anc = set()
        for o in operands:
            anc.add(o)
            anc |= ancestors.get(o, set())
        ancestors[name] = anc
        if opcode in ALIASES:
            continue
        reads = [s for o in operands for s in slices_of(o)]
        writes = slices_of(name)
        size = sum(s[2] for s in writes)
        heavy = opcode in HEAVY or (opcode == "fusion" and size >= args.min_bytes)
        thunks.append((name, opcode, reads, writes, heavy, size))

    found = 0
    for i, (a, aop, ar, aw, aheavy, _) in enumerate(thunks):
        for b, bop, br, bw, bheavy, _ in thunks[i + 1:]:
            if not args.all and not (aheavy and bheavy):
                continue
            if a in ancestors[b]:
                continue
            kinds = []
            if overlap(aw, br):
                kinds.append("B reads what A wrote")
            if overlap(ar, bw):
                kinds.append("B writes what A read")
            if overlap(aw, bw):
                kinds.append("both write")
            if kinds:
                found += 1
                print(f"{a} ({aop}) -> {b} ({bop}): {', '.join(kinds)}")
    print(f"false_deps: {found} pair(s) of {'operations' if args.all else 'heavy operations'} ordered only by a "
          f"shared buffer in {prog.split('/')[-1]} ({len(thunks)} thunks)")


if __name__ == "__main__":
    main()
