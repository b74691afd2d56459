"""The guard profiler/kernel_rates.py and profiler/host_time.py share: PyTorch with a CUDA GPU,
or why the script skips (it then exits 0, measuring nothing)."""
import sys


def torch_with_gpu(script):
    """The torch module, or None after printing on stderr why `script` is skipped."""
    try:
        import torch
    except ImportError:
        print(f"{script}: skipped: python3 cannot import torch", file=sys.stderr)
        return None
    if not torch.cuda.is_available():
        print(f"{script}: skipped: PyTorch sees no CUDA GPU", file=sys.stderr)
        return None
    return torch
