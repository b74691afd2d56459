#!/usr/bin/env python3
"""Times the kernels behind four of orrery's rate figures on the local GPU with PyTorch,
and writes them with their provenance as YAML:

- attention: PyTorch's scaled_dot_product_attention through each fused backend it has
  (FLASH_ATTENTION: the FlashAttention-2 kernels PyTorch builds in; CUDNN_ATTENTION:
  cuDNN's fused flash attention, the engine Transformer Engine's FusedAttention calls;
  EFFICIENT_ATTENTION), bf16, head dimension 128, 16 heads, batch x sequence = 16k tokens,
  sequence 512 ... 16k, full and causal: the FlashAttention-2 paper's benchmark shape
  (Dao 2023, figure 7; flash-attention benchmarks/benchmark_flash_attention.py), so the
  FLASH rows are comparable with the curves in calibrate/compute_model.cpp. FLOPs counted
  as that script does: forward 4*b*h*s^2*d, halved when causal; backward 2.5x forward.
- casts: PyTorch's dtype-converting copies (bf16 -> fp32 and fp32 -> bf16, through
  Tensor.copy_ into a preallocated tensor, the path .float() / .to() take) against
  same-dtype copies, 2^28 elements; bytes = read + written.
- GEMM alignment: GPT-2's three vocabulary GEMMs in bf16 at vocabularies of alignment 1,
  2, 4 and 8 elements (50257, 30522, 50260, 50264); FLOPs 2*m*k*v.
- expert GEMMs: one expert's fc1 and fc2 of Qwen3-30B-A3B (hidden 2048, expert ffn 768,
  SwiGLU so fc1 is 2 x 768 wide) at 4096 tokens an expert (4096-token micro-batch, top 8,
  8 experts a GPU at ep 16), as torch.mm in bf16, as torch._grouped_mm over the 8 local
  experts, and as torch._scaled_mm in fp8 (E4M3, per-tensor scales) with and without fast
  accumulation; FLOPs 2*m*n*k.

Timing: CUDA events around each repetition after warm-up, a sleep kernel queued ahead of
each so the host's launch time stays out; the median of the repetitions. With
--sustained S each attention case first runs forward and backward back to back for S
seconds, so it is timed at the clock the GPU holds under a training step's load, as
profiler/sustained_check.sh does for GEMMs; each attention row records the SM clock and
board power nvidia-smi sampled while it was timed (sm_mhz, power_w: medians of the
samples, every 20 ms). A case a backend or PyTorch build refuses is listed under
`skipped` with the reason.

    python3 profiler/kernel_rates.py --out rates.yaml
"""
import argparse
import datetime
import platform
import statistics
import subprocess
import sys

from torch_gpu import torch_with_gpu


# Cycles of torch.cuda._sleep queued before each timed call: about 2 ms at the H100's and
# H200's 1,980 MHz, longer than the host needs to issue a call's kernels (about 15 us a
# kernel on the H200 lease's CPU, calibrate/data/h200-20261204/host-time-per-op.txt).
SLEEP_CYCLES = 4_000_000


def median_ms(fn, warmup, reps):
    """Median GPU time (ms) of fn(). The GPU is kept busy by a sleep kernel while the host
    issues the call, so the events bracket the call's kernels, not the host's time to
    launch them (the version of 2026-12-04 had the GPU idle before each call, which put
    that host time into every short call's figure)."""
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(SLEEP_CYCLES)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


class ClockSampler:
    """Samples the SM clock (MHz) and board power (W) of GPU 0 with nvidia-smi every 20 ms
    while in use; medians() gives the medians of the samples and their count, or None where
    nvidia-smi is missing or took none."""

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "-i", "0", "--query-gpu=clocks.sm,power.draw",
                 "--format=csv,noheader,nounits", "-lms", "20"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
        self.out = ""
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.out = self.proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                # Killed, then waited for: no nvidia-smi is left running or unreaped.
                self.proc.kill()
                self.out = self.proc.communicate()[0]
        return False

    def medians(self):
        clocks, power = [], []
        for line in self.out.splitlines():
            parts = [x.strip() for x in line.split(",")]
            try:
                clocks.append(float(parts[0]))
                power.append(float(parts[1]))
            except (ValueError, IndexError):
                continue
        if not clocks:
            return None
        return statistics.median(clocks), statistics.median(power), len(clocks)


def sustain(fn, seconds):
    """Runs fn back to back for `seconds` of wall time, the GPU synchronized every 50 calls."""
    import time
    import torch
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(50):
            fn()
        torch.cuda.synchronize()


def time_attention(torch, F, q, k, v, g, causal, dropout, warmup, reps, sustained=0.0,
                   clocks=None):
    """Median forward and forward + backward times (ms) of one SDPA call as training runs it:
    the forward with autograd recording (the kernel saves its softmax statistics), the
    backward into gradients cleared first, as flash-attention's benchmark does (no
    accumulation into an earlier call's gradients is timed). With `sustained` seconds,
    forward and backward run back to back that long first; `clocks`, a dict, receives the
    SM clock and power sampled while the calls were timed."""
    def fwd():
        F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout,
                                       enable_gqa=q.shape[1] != k.shape[1])

    def fwd_bwd():
        q.grad = k.grad = v.grad = None
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout,
                                           enable_gqa=q.shape[1] != k.shape[1])
        o.backward(g)
    if sustained > 0:
        sustain(fwd_bwd, sustained)
    with ClockSampler() as sampler:
        t_f = median_ms(fwd, warmup, reps)
        t_fb = median_ms(fwd_bwd, warmup, reps)
    q.grad = k.grad = v.grad = None
    m = sampler.medians()
    if clocks is not None and m is not None:
        clocks.update({"sm_mhz": m[0], "power_w": m[1], "clock_samples": m[2]})
    return t_f, t_fb


def attention_variants(torch, F, warmup, reps, rows, skipped, sustained=0.0):
    """Attention dropout 0.1 inside the kernel (causal, 16 heads, 2k / 4k / 8k) and
    grouped-query heads (8 query heads to 1 key-value head: Llama 3 70B at TP 8; 32 to 8:
    Llama 3 8B), causal, FlashAttention-2 and cuDNN, 16k tokens a call."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    cases = [(16, 16, s, 0.1) for s in (2048, 4096, 8192)] + \
            [(8, 1, 8192, 0.0), (32, 8, 8192, 0.0), (32, 8, 4096, 0.0)]
    d, tokens = 128, 16384
    for hq, hkv, seq, p in cases:
        b = max(1, tokens // seq)
        q = torch.randn(b, hq, seq, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k, v = (torch.randn(b, hkv, seq, d, device="cuda", dtype=torch.bfloat16,
                            requires_grad=True) for _ in range(2))
        g = torch.randn(b, hq, seq, d, device="cuda", dtype=torch.bfloat16)
        fwd_flop = 4.0 * b * hq * seq * seq * d * 0.5
        for name, be in backends:
            clocks = {}
            try:
                with sdpa_kernel([be]):
                    t_f, t_fb = time_attention(torch, F, q, k, v, g, True, p, warmup, reps,
                                               sustained, clocks)
            except Exception as e:
                skipped.append(f"attention {name} heads {hq}/{hkv} seq {seq} dropout {p}: "
                               f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            rows.append({"backend": name, "seq": seq, "batch": b, "heads": hq, "kv_heads": hkv,
                         "head_dim": d, "causal": True, "dropout": p, "fwd_ms": t_f,
                         "fwd_bwd_ms": t_fb, "fwd_tflops": fwd_flop / (t_f * 1e-3) / 1e12,
                         "fwd_bwd_tflops": 3.5 * fwd_flop / (t_fb * 1e-3) / 1e12, **clocks})
        del q, k, v, g
        torch.cuda.empty_cache()


def attention_cases(torch, F, warmup, reps, rows, skipped, sustained=0.0):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    heads, d, tokens = 16, 128, 16384
    for seq in (512, 1024, 2048, 4096, 8192, 16384):
        b = max(1, tokens // seq)
        q, k, v = (torch.randn(b, heads, seq, d, device="cuda", dtype=torch.bfloat16,
                               requires_grad=True) for _ in range(3))
        g = torch.randn(b, heads, seq, d, device="cuda", dtype=torch.bfloat16)
        for causal in (False, True):
            fwd_flop = 4.0 * b * heads * seq * seq * d * (0.5 if causal else 1.0)
            for name, be in backends:
                if name == "efficient" and seq not in (2048, 8192):
                    continue
                clocks = {}
                try:
                    with sdpa_kernel([be]):
                        t_f, t_fb = time_attention(torch, F, q, k, v, g, causal, 0.0, warmup,
                                                   reps, sustained, clocks)
                except Exception as e:  # a backend that refuses the case
                    skipped.append(f"attention {name} seq {seq} causal {causal}: "
                                   f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
                    continue
                t_b = t_fb - t_f
                rows.append({
                    "backend": name, "seq": seq, "batch": b, "heads": heads, "head_dim": d,
                    "causal": causal, "fwd_ms": t_f, "fwd_bwd_ms": t_fb,
                    "fwd_tflops": fwd_flop / (t_f * 1e-3) / 1e12,
                    "bwd_tflops": 2.5 * fwd_flop / (t_b * 1e-3) / 1e12 if t_b > 0 else 0.0,
                    "fwd_bwd_tflops": 3.5 * fwd_flop / (t_fb * 1e-3) / 1e12, **clocks})
        del q, k, v, g
        torch.cuda.empty_cache()


def cast_cases(torch, warmup, reps, rows):
    n = 1 << 28
    bf = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    f32 = torch.randn(n, device="cuda", dtype=torch.float32)
    out_bf = torch.empty_like(bf)
    out_f32 = torch.empty_like(f32)
    cases = [("copy bf16", lambda: out_bf.copy_(bf), 4 * n),
             ("copy fp32", lambda: out_f32.copy_(f32), 8 * n),
             ("cast bf16->fp32", lambda: out_f32.copy_(bf), 6 * n),
             ("cast fp32->bf16", lambda: out_bf.copy_(f32), 6 * n),
             ("add bf16 (x + y)", lambda: torch.add(bf, bf, out=out_bf), 6 * n)]
    for name, fn, nbytes in cases:
        t = median_ms(fn, warmup, reps)
        rows.append({"op": name, "elements": n, "bytes": nbytes, "ms": t,
                     "gb_per_s": nbytes / (t * 1e-3) / 1e9})
    del bf, f32, out_bf, out_f32
    torch.cuda.empty_cache()


def expert_cases(torch, warmup, reps, rows, skipped):
    experts, m, hidden, ffn = 8, 4096, 2048, 768
    shapes = [("fc1", m, 2 * ffn, hidden), ("fc2", m, hidden, ffn)]
    for layer, mm, nn_, kk in shapes:
        flop = 2.0 * mm * nn_ * kk
        a = torch.randn(mm, kk, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(nn_, kk, device="cuda", dtype=torch.bfloat16)
        t = median_ms(lambda: torch.mm(a, w.t()), warmup, reps)
        rows.append({"layer": layer, "kind": "mm bf16", "m": mm, "n": nn_, "k": kk,
                     "us": t * 1e3, "tflops": flop / (t * 1e-3) / 1e12})
        # The 8 local experts in one grouped GEMM: tokens stacked, offsets at each expert's end.
        try:
            ag = torch.randn(experts * mm, kk, device="cuda", dtype=torch.bfloat16)
            wg = torch.randn(experts, kk, nn_, device="cuda", dtype=torch.bfloat16)
            offs = torch.arange(mm, experts * mm + 1, mm, device="cuda", dtype=torch.int32)
            t = median_ms(lambda: torch._grouped_mm(ag, wg, offs=offs), warmup, reps)
            rows.append({"layer": layer, "kind": f"grouped_mm bf16 x{experts}", "m": mm,
                         "n": nn_, "k": kk, "us": t * 1e3,
                         "tflops": experts * flop / (t * 1e-3) / 1e12})
        except Exception as e:
            skipped.append(f"grouped_mm {layer}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        try:
            a8 = a.to(torch.float8_e4m3fn)
            w8 = w.to(torch.float8_e4m3fn)
            one = torch.ones((), device="cuda", dtype=torch.float32)
            for fast in (False, True):
                t = median_ms(lambda: torch._scaled_mm(a8, w8.t(), scale_a=one, scale_b=one,
                                                       out_dtype=torch.bfloat16,
                                                       use_fast_accum=fast), warmup, reps)
                rows.append({"layer": layer, "kind": "scaled_mm fp8 " + ("fast" if fast else "split"),
                             "m": mm, "n": nn_, "k": kk, "us": t * 1e3,
                             "tflops": flop / (t * 1e-3) / 1e12})
            # Current scaling's own work per tensor before such a GEMM: amax, then the cast.
            def quantize():
                s = a.abs().amax().float()
                (a * (448.0 / s)).to(torch.float8_e4m3fn)
            t = median_ms(quantize, warmup, reps)
            rows.append({"layer": layer, "kind": "quantize input (amax + scale + cast, eager)",
                         "m": mm, "n": nn_, "k": kk, "us": t * 1e3, "tflops": 0.0})
        except Exception as e:
            skipped.append(f"scaled_mm {layer}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")


def alignment_cases(torch, warmup, reps, rows):
    """GPT-2's vocabulary GEMMs (8192 tokens x hidden 768 x vocabulary v) in bf16, forward
    (x @ W^T), data gradient (dY @ W) and weight gradient (dY^T @ x), as nn.Linear and its
    autograd run them, at v = 50257 (odd: alignment 1), 30522 (2 mod 8: BERT's), 50260
    (4 mod 8) and 50264 (a multiple of 8): cluster.gpu.unaligned_gemm_efficiency and the
    alignments it does not yet cover (docs/model.md, "GEMMs with an odd dimension")."""
    m, h = 8192, 768
    x = torch.randn(m, h, device="cuda", dtype=torch.bfloat16)
    for v in (50257, 30522, 50260, 50264):
        w = torch.randn(v, h, device="cuda", dtype=torch.bfloat16)
        dy = torch.randn(m, v, device="cuda", dtype=torch.bfloat16)
        flop = 2.0 * m * h * v
        for gemm, fn in (("forward", lambda: torch.mm(x, w.t())),
                         ("data gradient", lambda: torch.mm(dy, w)),
                         ("weight gradient", lambda: torch.mm(dy.t(), x))):
            t = median_ms(fn, warmup, reps)
            rows.append({"vocab": v, "alignment": next(a for a in (8, 4, 2, 1) if v % a == 0),
                         "gemm": gemm, "m": m, "k": h, "us": t * 1e3,
                         "tflops": flop / (t * 1e-3) / 1e12})
        del w, dy
        torch.cuda.empty_cache()


def smi(query):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="YAML file to write")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--only", default="attention,casts,experts,alignment",
                    help="comma list of attention, casts, experts, alignment")
    ap.add_argument("--sustained", type=float, default=0.0, metavar="S",
                    help="seconds of back-to-back forward and backward before each attention "
                         "case is timed (0: none)")
    args = ap.parse_args()
    torch = torch_with_gpu("kernel_rates.py")
    if torch is None:
        return 0
    import torch.nn.functional as F
    only = set(args.only.split(","))
    attention, variants, casts, experts, aligned, skipped = [], [], [], [], [], []
    if "attention" in only:
        attention_cases(torch, F, args.warmup, args.repetitions, attention, skipped,
                        args.sustained)
        attention_variants(torch, F, args.warmup, args.repetitions, variants, skipped,
                           args.sustained)
    if "casts" in only:
        cast_cases(torch, args.warmup, args.repetitions, casts)
    if "experts" in only:
        expert_cases(torch, args.warmup, args.repetitions, experts, skipped)
    if "alignment" in only:
        alignment_cases(torch, args.warmup, args.repetitions, aligned)

    p = torch.cuda.get_device_properties(0)
    lines = ["provenance:",
             f"  gpu: \"{p.name}\"",
             f"  sm_count: {p.multi_processor_count}",
             f"  driver: \"{smi('driver_version')}\"",
             f"  clocks_max_sm_mhz: \"{smi('clocks.max.sm')}\"",
             f"  power_limit: \"{smi('power.limit')}\"",
             f"  torch: \"{torch.__version__}\"",
             f"  torch_git: \"{torch.version.git_version}\"",
             f"  cuda: \"{torch.version.cuda}\"",
             f"  cudnn: {torch.backends.cudnn.version()}",
             f"  date: \"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}\"",
             f"  host: \"{platform.node()}\"",
             f"  warmup: {args.warmup}",
             f"  repetitions: {args.repetitions}",
             f"  sustained_s: {args.sustained:g}"]

    def section(name, rows):
        lines.append(f"{name}:")
        for r in rows:
            lines.append("  - {" + ", ".join(
                f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                for k, v in r.items()) + "}")
    section("attention", attention)
    section("attention_variants", variants)
    section("casts", casts)
    section("expert_gemms", experts)
    section("gemm_alignment", aligned)
    lines.append("skipped:")
    for s in skipped:
        lines.append("  - \"" + s.replace("\"", "'") + "\"")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")

    print(f"GPU {p.name}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    print(f"{'backend':<10}{'seq':>6} {'mask':<7}{'fwd':>8}{'bwd':>8}{'f+b':>8}  TFLOP/s   MHz     W")
    for r in attention:
        print(f"{r['backend']:<10}{r['seq']:>6} {'causal' if r['causal'] else 'full':<7}"
              f"{r['fwd_tflops']:8.1f}{r['bwd_tflops']:8.1f}{r['fwd_bwd_tflops']:8.1f}"
              f"{r.get('sm_mhz', 0):15.0f}{r.get('power_w', 0):6.0f}")
    for r in variants:
        print(f"{r['backend']:<10}{r['seq']:>6} causal heads {r['heads']}/{r['kv_heads']} dropout {r['dropout']}: "
              f"f+b {r['fwd_bwd_tflops']:8.1f}")
    for r in casts:
        print(f"{r['op']:<20}{r['gb_per_s']:8.0f} GB/s  {r['ms']:.3f} ms")
    for r in experts:
        print(f"{r['layer']} {r['kind']:<44}{r['m']}x{r['n']}x{r['k']} {r['us']:8.1f} us {r['tflops']:7.1f} TFLOP/s")
    for r in aligned:
        print(f"vocab {r['vocab']} (alignment {r['alignment']}) {r['gemm']:<16}{r['us']:9.1f} us "
              f"{r['tflops']:7.1f} TFLOP/s")
    for s in skipped:
        print("skipped: " + s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
