#!/usr/bin/env python3
"""Host time per PyTorch op on this machine: the figure behind training.stack.host_overhead
(13.48 us by default, a bf16 torch.nn.Linear forward on a DGX H100's host,
NVIDIA/TransformerEngine issue 2053; 6.8 us before, pytorch/pytorch issue 41383's
`y = 2*x` on a CPU tensor with requires_grad, 2020). Times that case, the same op on a CUDA tensor with and without
autograd, an in-place CUDA op, and a tiny linear + relu + sum forward and backward; each
the best of three loops of N calls (200,000; 50,000 for the last), the GPU synchronized at
the end of each loop, after 2,000 warm-up calls. Prints one line per case.

    python3 profiler/host_time.py
"""
import platform
import sys
import time

from torch_gpu import torch_with_gpu


def main():
    torch = torch_with_gpu("host_time.py")
    if torch is None:
        return 0
    print("python", platform.python_version(), "torch", torch.__version__)

    def per_op(fn, n=200000):
        for _ in range(2000):
            fn()
        torch.cuda.synchronize()
        best = None
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            torch.cuda.synchronize()
            v = (time.perf_counter() - t) / n * 1e6
            best = v if best is None else min(best, v)
        return best

    a = torch.randn(1, requires_grad=True)
    g = torch.randn(1, device="cuda", requires_grad=True)
    x = torch.randn(1, device="cuda")
    print(f"y = 2*x, CPU tensor, requires_grad (pytorch issue 41383's case): {per_op(lambda: 2 * a):.2f} us/op")
    with torch.no_grad():
        print(f"y = 2*x, CPU tensor, no_grad: {per_op(lambda: 2 * a):.2f} us/op")
    print(f"y = 2*x, CUDA tensor, requires_grad: {per_op(lambda: 2 * g):.2f} us/op")
    with torch.no_grad():
        print(f"y = 2*x, CUDA tensor, no_grad: {per_op(lambda: 2 * g):.2f} us/op")
    print(f"x.add_(1), CUDA tensor in place: {per_op(lambda: x.add_(1)):.2f} us/op")
    w = torch.randn(64, 64, device="cuda", requires_grad=True)
    h = torch.randn(8, 64, device="cuda", requires_grad=True)

    def step():
        torch.nn.functional.linear(h, w).relu().sum().backward()
    print(f"tiny linear+relu+sum forward and backward (autograd), per call: {per_op(step, 50000):.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
