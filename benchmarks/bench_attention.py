"""Benchmark: fused RoPE-2D Triton attention vs torch SDPA (+ RoPE by separate torch ops).

    python benchmarks/bench_attention.py            # CroCo's shapes, bf16, prints a table
    python benchmarks/bench_attention.py --sweep    # also try other block configs per case

Cases (B=256, bf16): encoder self-attention N=196 and N=20 (H=12, D=64), decoder
self-attention N=196 (H=16, D=32) and decoder cross-attention 196 x 196 (H=16, D=32).
q, k and v are strided views of fused projections, as in the model. Baselines:
  sdpa_rope : RoPE-2D by torch ops in bf16 (cos/sin tables precomputed OUTSIDE the timed
              region, the baseline's best case), then F.scaled_dot_product_attention;
  sdpa      : F.scaled_dot_product_attention without RoPE (a lower bound for the kernel).
Reports the median and inter-quartile range over repeated timed runs after warm-up
(CUDA events), TFLOP/s (forward 4*B*H*Nq*Nk*D; forward+backward 3.5x that, the
FlashAttention convention) and ratios within the same run. Results go to
benchmarks/results/bench_attention-<device>.json with versions, device and git commit
(``environment()`` of bench_common.py).
Needs a CUDA GPU: without one it says so, writes nothing and exits 0.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_common import environment, write_json  # noqa: E402

CASES = [
    # name, B, H, Nq, Nk, D, cross
    ("enc_self_196", 256, 12, 196, 196, 64, False),
    ("enc_self_20", 256, 12, 20, 20, 64, False),
    ("dec_self_196", 256, 16, 196, 196, 32, False),
    ("dec_cross_196x196", 256, 16, 196, 196, 32, True),
]
GRID = 14  # 224 / 16


def _positions(batch: int, n: int, device, gen) -> torch.Tensor:
    """(y, x) of n patches per sample: the whole grid, or a random visible subset (masked view)."""
    rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    grid = torch.stack((rows.flatten(), cols.flatten()), -1).to(device)
    if n == GRID * GRID:
        return grid.expand(batch, -1, -1)
    keep = torch.rand(batch, GRID * GRID, device=device, generator=gen).argsort(1)[:, :n]
    return grid[keep]


def _inputs(b, h, n_q, n_k, d, cross, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    if cross:
        q = torch.randn(b, n_q, h, d, device=device, dtype=dtype, generator=gen).transpose(1, 2)
        k, v = torch.randn(b, n_k, 2, h, d, device=device, dtype=dtype, generator=gen).permute(2, 0, 3, 1, 4)
    else:
        q, k, v = torch.randn(b, n_q, 3, h, d, device=device, dtype=dtype, generator=gen).permute(2, 0, 3, 1, 4)
    q_pos = _positions(b, n_q, device, gen)
    k_pos = q_pos if not cross else _positions(b, n_k, device, gen)
    return q, k, v, q_pos, k_pos


def _rope_tables(pos: torch.Tensor, head_dim: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    from mimic_fast.models.pos_embed import rope2d_cos_sin

    cos, sin = rope2d_cos_sin(pos, head_dim, 100.0)
    return cos.to(dtype), sin.to(dtype)


def _rope_torch(x, cos, sin):
    """CroCo-style RoPE-2D in the token dtype: x * cos + rotate_half_per_half(x) * sin."""
    y1, y2, x1, x2 = x.chunk(4, dim=-1)
    return x * cos + torch.cat((-y2, y1, -x2, x1), dim=-1) * sin


def _impls(q_pos, k_pos, head_dim, dtype):
    from mimic_fast.kernels import attention

    q_cs = _rope_tables(q_pos, head_dim, dtype)
    k_cs = _rope_tables(k_pos, head_dim, dtype)
    return {
        "triton_rope": lambda q, k, v, cfg=None: attention(q, k, v, q_pos, k_pos, config=cfg),
        "sdpa_rope": lambda q, k, v: F.scaled_dot_product_attention(_rope_torch(q, *q_cs), _rope_torch(k, *k_cs), v),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
    }


def _time_ms(fn, warmup: int, trials: int, iters: int) -> tuple[float, float]:
    """Median and inter-quartile range (ms per call) of ``trials`` timed runs of ``iters`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(trials):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return statistics.median(samples), q3 - q1


def _fwd_bwd(fn, q, k, v, grad):
    def step():
        out = fn(q, k, v)
        torch.autograd.grad(out, (q, k, v), grad)
    return step


def _max_error_vs_reference(q, k, v, q_pos, k_pos) -> float:
    """Kernel vs fp32 reference on the first 8 samples (a wrong kernel must not publish numbers)."""
    from mimic_fast.kernels import attention, attention_reference

    s = slice(0, 8)
    args = (q[s], k[s], v[s], q_pos[s], k_pos[s])
    return (attention(*args).float() - attention_reference(*args).float()).abs().max().item()


def _sweep_configs(n_q, n_k):
    from mimic_fast.kernels._config import BlockConfig

    configs = []
    for bm in (32, 64, 128):
        for bn in (32, 64, 128):
            for warps in (4, 8):
                if bm <= max(32, 2 * n_q) and bn <= max(32, 2 * n_k):
                    configs.append(BlockConfig(bm, bn, warps, 2))
    return configs


def run(args) -> dict:
    import triton

    device = "cuda"
    dtype = torch.bfloat16
    results = []
    header = f"{'case':<20}{'impl':<13}{'fwd ms':>9}{'TF/s':>7}{'fwd+bwd ms':>12}{'TF/s':>7}"
    print(header)
    print("-" * len(header))
    for name, b, h, n_q, n_k, d, cross in CASES:
        q, k, v, q_pos, k_pos = _inputs(b, h, n_q, n_k, d, cross, dtype, device)
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        grad = torch.randn(b, h, n_q, d, device=device, dtype=dtype)
        fwd_flops = 4 * b * h * n_q * n_k * d
        err = _max_error_vs_reference(q, k, v, q_pos, k_pos)
        row = dict(case=name, B=b, H=h, Nq=n_q, Nk=n_k, D=d, cross=cross, max_abs_err_vs_fp32_ref=err, impls={})
        impls = _impls(q_pos, k_pos, d, dtype)
        for impl, fn in impls.items():
            with torch.no_grad():
                fwd_ms, fwd_iqr = _time_ms(lambda: fn(q, k, v), args.warmup, args.trials, args.iters)
            fb_ms, fb_iqr = _time_ms(_fwd_bwd(fn, q, k, v, grad), args.warmup, args.trials, args.iters)
            row["impls"][impl] = dict(fwd_ms=fwd_ms, fwd_iqr_ms=fwd_iqr, fwd_bwd_ms=fb_ms, fwd_bwd_iqr_ms=fb_iqr,
                                      fwd_tflops=fwd_flops / fwd_ms / 1e9, fwd_bwd_tflops=3.5 * fwd_flops / fb_ms / 1e9)
            r = row["impls"][impl]
            print(f"{name:<20}{impl:<13}{fwd_ms:>9.3f}{r['fwd_tflops']:>7.0f}{fb_ms:>12.3f}{r['fwd_bwd_tflops']:>7.0f}")
        ours = row["impls"]["triton_rope"]
        for base in ("sdpa_rope", "sdpa"):
            row[f"speedup_fwd_vs_{base}"] = row["impls"][base]["fwd_ms"] / ours["fwd_ms"]
            row[f"speedup_fwd_bwd_vs_{base}"] = row["impls"][base]["fwd_bwd_ms"] / ours["fwd_bwd_ms"]
        print(f"{'':<20}speedup fwd+bwd: {row['speedup_fwd_bwd_vs_sdpa_rope']:.2f}x vs sdpa_rope "
              f"(goal >= 1.3), {row['speedup_fwd_bwd_vs_sdpa']:.2f}x vs sdpa (goal >= 1.0); "
              f"max |err| vs fp32 ref {err:.2e}")
        if args.sweep:
            sweep = []
            for cfg in _sweep_configs(n_q, n_k):
                fn = impls["triton_rope"]
                try:
                    ms, _ = _time_ms(_fwd_bwd(lambda q, k, v, cfg=cfg: fn(q, k, v, cfg), q, k, v, grad),
                                     args.warmup, max(5, args.trials // 4), args.iters)
                except Exception as err:  # out of shared memory / registers for this config
                    sweep.append(dict(config=vars(cfg), error=str(err).splitlines()[0]))
                    continue
                sweep.append(dict(config=vars(cfg), fwd_bwd_ms=ms))
            timed = [s for s in sweep if "fwd_bwd_ms" in s]
            best = min(timed, key=lambda s: s["fwd_bwd_ms"]) if timed else None
            row["sweep"] = sweep
            if best:
                print(f"{'':<20}sweep best (same config fwd and bwd): {best['config']} {best['fwd_bwd_ms']:.3f} ms")
        results.append(row)
        del q, k, v, grad
        torch.cuda.empty_cache()

    return dict(
        benchmark="bench_attention",
        time=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        device=torch.cuda.get_device_name(),
        environment=dict(environment(), triton=triton.__version__, cuda=torch.version.cuda),
        settings=dict(dtype="bfloat16", warmup=args.warmup, trials=args.trials, iters_per_trial=args.iters,
                      flops="fwd 4*B*H*Nq*Nk*D; fwd+bwd 3.5x fwd",
                      sdpa_rope_note="cos/sin tables precomputed outside the timed region"),
        results=results,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--iters", type=int, default=10, help="calls per timed trial")
    parser.add_argument("--sweep", action="store_true", help="also time other block configs of the kernel")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_attention needs a CUDA GPU and none is available here: nothing was measured "
              "and no results were written. (The kernel's correctness on CPU is covered by "
              "tests/kernels under TRITON_INTERPRET=1.)")
        return 0
    from mimic_fast.kernels.fused_attention import interpreted

    if interpreted():
        print("TRITON_INTERPRET=1 is set: the interpreter's timings are meaningless; unset it to benchmark.")
        return 0
    report = run(args)
    device = re.sub(r"[^a-z0-9]+", "-", report["device"].lower()).strip("-")
    print(f"wrote {write_json(f'bench_attention-{device}.json', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
