#!/usr/bin/env python3
"""Side-by-side benchmark of nowt's ImageNet input pipeline and Pillow's, on the same JPEG files.

Runs, interleaved --reps times:
  * go test ./input -bench BenchmarkImageNetDecoders: read file, decode, random-resized crop to 224,
    flip, float conversion, normalisation, batches of 32, with the pure-Go decoder (go), libjpeg-turbo
    at full size (turbo) and with DCT scaling (turbo+dct), for 1, 2 and all workers (goroutines);
  * the same work in Python with Pillow (libjpeg-turbo inside; torchvision's RandomResizedCrop box,
    Image.resize(BILINEAR, box=...), numpy float conversion and normalisation), with and without
    Image.draft (Pillow's DCT scaling, used with the same rule as nowt's: the largest of 1/2, 1/4, 1/8
    that keeps the crop at least 224 pixels on both sides), one process per worker;
and prints two tables (median over the reps, min-max in brackets): images per CPU-second (the per-core
throughput, which other load on shared cores hardly changes) and images/s by wall clock (scaling).

The Go benchmark writes the JPEGs (about 500x375 and 1000x750, 64 of each) into --dir, and Pillow reads
the same files. Needs Go, and Pillow + numpy (installed with pip if missing).

Usage: python3 scripts/bench-input.py [--reps 3] [--benchtime 8x] [--seconds 4] [--dir DIR]
"""

import argparse
import io
import math
import multiprocessing as mp
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

SIZE = 224
BATCH = 32
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def ensure_pillow():
    try:
        import numpy  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        print("installing pillow and numpy with pip ...", file=sys.stderr)
        rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q", "pillow", "numpy"])
        if rc != 0:
            sys.exit("bench-input: Pillow and numpy are needed: pip install pillow numpy")


def rrc_box(w, h, rng):
    """torchvision RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)).get_params, as (x, y, cw, ch)."""
    area = w * h
    lo, hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(lo, hi))
        cw = int(round(math.sqrt(target * ratio)))
        ch = int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    r = w / h
    cw, ch = w, h
    if r < 3 / 4:
        ch = int(round(w / (3 / 4)))
    elif r > 4 / 3:
        cw = int(round(h * (4 / 3)))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def dct_denom(cw, ch, size):
    for d in (8, 4, 2):
        if cw >= d * size and ch >= d * size:
            return d
    return 1


def pillow_worker(args):
    """One process: decode + random-resized crop + flip + float + normalise, batches of 32, for `seconds`."""
    paths, draft, seconds, seed = args
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    scale = np.array([1 / (255 * s) for s in STD], dtype=np.float32)
    shift = np.array([m / s for m, s in zip(MEAN, STD)], dtype=np.float32)
    batch = np.empty((BATCH, SIZE, SIZE, 3), dtype=np.float32)

    def one(path, out):
        with open(path, "rb") as f:
            data = f.read()
        img = Image.open(io.BytesIO(data))
        w, h = img.size
        x, y, cw, ch = rrc_box(w, h, rng)
        box = (x, y, x + cw, y + ch)
        if draft:
            d = dct_denom(cw, ch, SIZE)
            if d > 1:
                img.draft("RGB", (w // d, h // d))
                sx, sy = img.size[0] / w, img.size[1] / h
                box = (x * sx, y * sy, (x + cw) * sx, (y + ch) * sy)
        if img.mode != "RGB":
            img = img.convert("RGB")
        img = img.resize((SIZE, SIZE), Image.BILINEAR, box=box)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        np.multiply(np.asarray(img), scale, out=out, casting="unsafe")
        out -= shift

    order = list(paths)
    for p in order[:8]:  # warm-up
        one(p, batch[0])
    n, i = 0, 0
    start, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for k in range(BATCH):
            if i % len(order) == 0:
                rng.shuffle(order)
            one(order[i % len(order)], batch[k])
            i += 1
        n += BATCH
    return n, time.perf_counter() - start, time.process_time() - cpu0


def pillow_rate(paths, draft, workers, seconds):
    """Total images/s of `workers` processes running at once, and images per CPU-second."""
    with mp.get_context("fork").Pool(workers) as pool:
        res = pool.map(pillow_worker, [(paths, draft, seconds, 1000 + k) for k in range(workers)])
    return sum(n / t for n, t, _ in res), sum(n for n, _, _ in res) / sum(c for _, _, c in res)


GO_LINE = re.compile(r"^BenchmarkImageNetDecoders/images=(\S+?)/decoder=(\S+?)/workers=(\d+)(?:-\d+)?\s(.*)$", re.M)
GO_WALL = re.compile(r"([\d.]+) images/s\b")
GO_CPU = re.compile(r"([\d.]+) images/cpu-s\b")


def go_rates(root, benchtime, jpeg_dir):
    env = dict(os.environ, NOWT_BENCH_JPEG_DIR=jpeg_dir)
    cmd = ["go", "test", "./input", "-run", "^$", "-bench", "BenchmarkImageNetDecoders", "-benchtime", benchtime, "-count", "1"]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench-input: {' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    rates = {}
    for m in GO_LINE.finditer(out.stdout):
        wall, cpu = GO_WALL.search(m.group(4)), GO_CPU.search(m.group(4))
        if wall and cpu:
            rates[(m.group(1), m.group(2), int(m.group(3)))] = (float(wall.group(1)), float(cpu.group(1)))
    if not rates:
        sys.exit(f"bench-input: no results parsed from:\n{out.stdout}")
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--benchtime", default="8x", help="go test -benchtime (batches of 32; default 8x)")
    ap.add_argument("--seconds", type=float, default=4, help="seconds per Pillow measurement (default 4)")
    ap.add_argument("--dir", help="folder for the JPEGs (default: a temporary folder)")
    args = ap.parse_args()
    ensure_pillow()
    import PIL
    from PIL import features

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    jpeg_dir = args.dir or tempfile.mkdtemp(prefix="nowt-bench-input-")
    cores = os.cpu_count() or 1
    workers = sorted({1, 2, cores})
    results = {}  # (size, decoder, workers) -> [images/s]
    for rep in range(args.reps):
        print(f"rep {rep + 1}/{args.reps}: go test ...", file=sys.stderr, flush=True)
        for k, v in go_rates(root, args.benchtime, jpeg_dir).items():
            results.setdefault(k, []).append(v)
        sizes = sorted({k[0] for k in results}, key=lambda s: int(s.split("x")[0]))
        for size in sizes:
            folder = os.path.join(jpeg_dir, size, "train")
            paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".JPEG"))
            for draft in (False, True):
                name = "pillow+draft" if draft else "pillow"
                for w in workers:
                    print(f"rep {rep + 1}/{args.reps}: {name} {size} workers={w} ...", file=sys.stderr, flush=True)
                    results.setdefault((size, name, w), []).append(pillow_rate(paths, draft, w, args.seconds))

    sizes = sorted({k[0] for k in results}, key=lambda s: int(s.split("x")[0]))
    decoders = [d for d in ("go", "turbo", "turbo+dct", "pillow", "pillow+draft") if any(k[1] == d for k in results)]
    print(f"\nImageNet training input: read + decode + random-resized crop to {SIZE} + flip + float + normalise, "
          f"batches of {BATCH}; median of {args.reps} interleaved runs [min-max].")
    print(f"Machine: {cores} cores (nproc), load average at the end {os.getloadavg()[0]:.1f}; "
          f"Pillow {PIL.__version__} with libjpeg-turbo {features.version('libjpeg_turbo')}; JPEGs in {jpeg_dir}")

    def cell(v):
        med = statistics.median(v)
        return f"{med:.0f} [{min(v):.0f}-{max(v):.0f}]"

    for title, idx in (("images per CPU-second (per-core throughput, robust to other load)", 1),
                       ("images/s, wall clock (scaling across workers; shared cores make it noisy)", 0)):
        print(f"\n{title}:\n")
        header = ["images", "decoder"] + [f"{w} worker{'s' if w > 1 else ''}" for w in workers]
        rows = []
        for size in sizes:
            for dec in decoders:
                row = [size, dec]
                for w in workers:
                    v = results.get((size, dec, w))
                    row.append(cell([x[idx] for x in v]) if v else "-")
                rows.append(row)
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        fmt = "| " + " | ".join("{:<%d}" % w for w in widths) + " |"
        print(fmt.format(*header))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            print(fmt.format(*r))

if __name__ == "__main__":
    main()
