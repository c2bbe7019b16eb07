"""PyTorch's three convolutions of one 3×3 layer timed apart — forward, input gradient, weight gradient — on the
geometries of nowt's BenchmarkConvParts (CIFAR ResNet-20 at batch 64), to set beside it layer by layer
(perf-analysis §19). GFLOP/s counts the forward's multiply-adds ×2 for each part, as the benchmark does.

    /usr/bin/python3 scripts/peers/conv_torch.py [--threads 2] [--runs 30]
    NOWT_TEST_BACKEND=xla:cpu go test ./feedback -run '^$' -bench 'ConvParts/(32x|16x|8x)' -benchtime 20x
"""

import argparse

import torch
import torch.nn.functional as F

from bench_torch import median_seconds

# batch, image side, input channels, output channels, stride: BenchmarkConvParts's ResNet-20 geometries.
GEOMETRIES = [(64, 32, 16, 16, 1), (64, 16, 32, 32, 1), (64, 8, 64, 64, 1), (64, 32, 16, 32, 2)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {a.threads} threads, median of {a.runs} runs")
    print("geometry,part,ms,gflops")
    for batch, size, cin, cout, stride in GEOMETRIES:
        x = torch.randn(batch, cin, size, size)
        w = torch.randn(cout, cin, 3, 3)
        delta = torch.randn_like(F.conv2d(x, w, stride=stride, padding=1))

        def grad(mask):
            return lambda: torch.ops.aten.convolution_backward(
                delta, x, w, None, [stride, stride], [1, 1], [1, 1], False, [0, 0], 1, mask)

        parts = {
            "fwd": lambda: F.conv2d(x, w, stride=stride, padding=1),
            "dx": grad([True, False, False]),
            "dw": grad([False, True, False]),
        }
        flops = 2 * batch * (size // stride) ** 2 * 9 * cin * cout
        name = f"{size}x{size}x{cin}-to-{cout}/s{stride}"
        for part, fn in parts.items():
            ms = median_seconds(fn, a.runs, warmup=3) * 1e3
            print(f"{name},{part},{ms:.2f},{flops / ms / 1e6:.0f}")


if __name__ == "__main__":
    main()
