"""PyTorch's training step taken apart by operator: torch.profiler over a few steps of bench_torch.py's model, SGD
and loss, with the time per step of each operator (self CPU time), to set beside nowt's own parts (perf-analysis
§18).

    /usr/bin/python3 scripts/peers/profile_torch.py --model resnet18 --batch 8 --image-size 224
"""

import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch  # noqa: E402  (the same models as the page's rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(bench_torch.MODELS))
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--image-size", type=int, default=0, help="side of the images (default: the model's)")
    p.add_argument("--steps", type=int, default=5, help="steps profiled, after 3 warm-up steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    make, in_shape, classes = bench_torch.MODELS[a.model]
    if a.image_size and len(in_shape) == 3:
        in_shape = (in_shape[0], a.image_size, a.image_size)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn((a.batch,) + in_shape)
    y = torch.randint(0, classes, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{a.model} batch {a.batch}, {a.threads} threads: {total / 1000 / a.steps:.1f} ms of CPU time a step")
    print("operator,ms_per_step,calls_per_step")
    for e in events[: a.rows]:
        print(f"{e.key},{e.self_cpu_time_total / 1000 / a.steps:.2f},{e.count // a.steps}")


if __name__ == "__main__":
    main()
