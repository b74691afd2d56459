#!/usr/bin/env python3
"""Times real training steps of a GPT-2-size model (124M parameters: 12 layers, hidden
768, 12 heads, vocabulary 50257, sequence 1024) with PyTorch on one GPU, and writes the
result with its provenance as YAML.

Each step is forward, backward and AdamW update under bf16 autocast (fp16 where the GPU
has no bf16), timed with CUDA events around the whole step: 5 warm-up steps, then
--steps timed ones; median, p10 and p90 as orrery-profile computes them (linear
interpolation, numpy's default).

Without PyTorch, or without a CUDA GPU, it prints why it skipped and exits 0 without
writing anything, so profiler/gpu_check.sh runs everywhere.
"""
import argparse
import datetime
import math
import platform
import sys


def quantile(samples, q):
    s = sorted(samples)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="YAML file to write")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step (default 8)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--trace", help="also record one more step with torch.profiler (CPU and "
                    "CUDA activity, record_shapes=True) and write its Chrome trace here, the "
                    "Kineto trace `orrery calibrate` reads")
    args = ap.parse_args()
    if args.batch < 1 or args.steps < 1:
        ap.error("--batch and --steps must be at least 1")

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print("train_step.py: skipped: PyTorch is not installed (python3 cannot import torch)",
              file=sys.stderr)
        return 0
    if not hasattr(F, "scaled_dot_product_attention"):
        print("train_step.py: skipped: PyTorch " + torch.__version__ + " is older than 2.0 "
              "(no scaled_dot_product_attention)", file=sys.stderr)
        return 0
    if not torch.cuda.is_available():
        print("train_step.py: skipped: PyTorch sees no CUDA GPU", file=sys.stderr)
        return 0

    layers, hidden, heads, vocab, seq = 12, 768, 12, 50257, 1024

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)
            self.ln2 = nn.LayerNorm(hidden)
            self.up = nn.Linear(hidden, 4 * hidden)
            self.down = nn.Linear(4 * hidden, hidden)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(hidden, dim=2)
            q, k, v = (z.view(b, t, heads, hidden // heads).transpose(1, 2) for z in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, hidden))
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, hidden)
            self.pos = nn.Embedding(seq, hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, vocab, bias=False)
            self.head.weight = self.tok.weight  # tied, as GPT-2

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln(x))

    dev = torch.device("cuda", 0)
    torch.manual_seed(0)
    model = GPT2().to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:  # torch.amp.GradScaler("cuda") from PyTorch 2.3, torch.cuda.amp before
        scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    except (AttributeError, TypeError):
        scaler = torch.cuda.amp.GradScaler(enabled=amp == torch.float16)
    data = torch.randint(0, vocab, (args.batch, seq + 1), device=dev)
    inputs, targets = data[:, :-1], data[:, 1:]

    def step():
        with torch.autocast("cuda", dtype=amp):
            logits = model(inputs)
            loss = F.cross_entropy(logits.float().view(-1, vocab), targets.reshape(-1))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)  # ms -> s

    if args.trace:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                     record_shapes=True) as prof:
            step()
            torch.cuda.synchronize()
        prof.export_chrome_trace(args.trace)
        print(f"wrote {args.trace}")

    tokens = args.batch * seq
    med, p10, p90 = quantile(times, 0.5), quantile(times, 0.1), quantile(times, 0.9)
    # Model FLOPs per step: 6 N T for the parameters plus 12 L h s T for attention scores
    # and values (Chowdhery et al. 2022, PaLM, appendix B; the causal mask is not
    # discounted).
    flop = 6 * params * tokens + 12 * layers * hidden * seq * tokens
    prop = torch.cuda.get_device_properties(0)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None

    def q(s):
        return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = f"""format: orrery-train-step
version: 1
provenance:
  tool: "profiler/train_step.py"
  date: {q(now)}
  host: {q(platform.node())}
  gpu: {q(prop.name)}
  sm_count: {prop.multi_processor_count}
  memory: {prop.total_memory / 2**30:.1f} GiB
  torch: {q(torch.__version__)}
  cuda_runtime: {q(torch.version.cuda)}
  cudnn: {q(cudnn if cudnn is not None else "none")}
  timing: cuda_events
  warmup: 5
  repetitions: {args.steps}
model: {{name: gpt2-124m, layers: {layers}, hidden: {hidden}, heads: {heads}, vocab: {vocab}, seq: {seq}, parameters: {params}}}
step: {{batch: {args.batch}, tokens: {tokens}, precision: {"bf16" if amp == torch.bfloat16 else "fp16"}, optimizer: adamw, attention: sdpa_causal}}
time: {{median: {med * 1e3:.4g} ms, p10: {p10 * 1e3:.4g} ms, p90: {p90 * 1e3:.4g} ms}}
throughput: {{tokens_per_s: {tokens / med:.1f}, model_flop_per_step: {flop:.4g}, model_tflops: {flop / med / 1e12:.1f} TFLOP/s}}
"""
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    import os
    os.replace(tmp, args.out)
    print(f"train step (GPT-2 124M, batch {args.batch} x {seq}, {prop.name}): median "
          f"{med * 1e3:.2f} ms, {tokens / med:,.0f} tokens/s, {flop / med / 1e12:.1f} model TFLOP/s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
