"""Ahead-of-time compile of the attention kernels for a GPU target, without a GPU.

    python -m mimic_fast.kernels._compile_check [--arch 90]

Builds every kernel with the launch configs the heuristics pick at CroCo's shapes (plus the
other dtypes and head dims) through Triton and ptxas for sm_<arch>, and prints registers,
spill stack and shared memory per kernel. Exits non-zero when a build fails. This is how
the compiled path is checked on machines without a GPU; it says nothing about speed.
Must run without TRITON_INTERPRET (interpreted kernels cannot be compiled).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

POINTER_TYPES = {"LSE": "*fp32", "DELTA": "*fp32", "QPOS": "*i64", "KPOS": "*i64"}
FLOAT_ARGS = {"qk_scale", "sm_scale", "log2_base"}
CASES = [  # (n_q, n_k, head_dim): CroCo encoder (masked and full view), decoder self/cross
    (20, 20, 64), (196, 196, 64), (196, 196, 32), (37, 300, 128),
]
MAX_SHARED = 227 * 1024  # per-block limit on sm_90


def _signature(kernel, dtype: str, constexprs: dict) -> tuple[dict, dict]:
    """Argument types as the runtime would specialize them (unit channel strides -> constexpr 1)."""
    sig, consts = {}, dict(constexprs)
    for name in kernel.arg_names:
        if name in consts:
            sig[name] = "constexpr"
        elif name.isupper() and name not in ("H", "N_Q", "N_K"):
            sig[name] = POINTER_TYPES.get(name, f"*{dtype}")
        elif name.startswith("stride_") and name.endswith("d"):
            sig[name], consts[name] = "constexpr", 1
        else:
            sig[name] = "fp32" if name in FLOAT_ARGS else "i32"
    return sig, consts


def _resources(compiled) -> dict:
    import triton

    nv_bin = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        out = subprocess.run([os.path.join(nv_bin, "cuobjdump"), "--dump-resource-usage", f.name],
                             capture_output=True, text=True, check=True).stdout
    regs = re.search(r"REG:(\d+)", out)
    stack = re.search(r"STACK:(\d+)", out)
    return dict(regs=int(regs.group(1)) if regs else -1, spill_stack=int(stack.group(1)) if stack else -1,
                shared=compiled.metadata.shared, wgmma="wgmma" in compiled.asm["ptx"])


def compile_all(arch: int = 90) -> list[dict]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mimic_fast.kernels import _config
    from mimic_fast.kernels._bwd import _bwd_dkdv, _bwd_dq, _bwd_preprocess
    from mimic_fast.kernels._fwd import _attn_fwd_kernel

    if _config.is_interpreted(_attn_fwd_kernel):
        raise RuntimeError("TRITON_INTERPRET is set: unset it to compile the kernels")
    target = GPUTarget("cuda", arch, 32)
    jobs = []
    for dtype in ("bf16", "fp16", "fp32"):
        for n_q, n_k, d in CASES if dtype == "bf16" else CASES[:2]:
            for rope in (True, False):
                common = dict(HEAD_DIM=d, ROPE=rope, DOT_FP32=dtype == "fp32", FAST_TRIG=True, INPUT_PRECISION="tf32")
                fwd = _config.forward_config(n_q, n_k, d, interpreted=False)
                bwd = _config.backward_config(n_q, n_k, d, interpreted=False)
                jobs.append((_attn_fwd_kernel, dtype, fwd, dict(common, BLOCK_M=fwd.block_m, BLOCK_N=fwd.block_n)))
                for kernel in (_bwd_dkdv, _bwd_dq):
                    jobs.append((kernel, dtype, bwd, dict(common, BLOCK_M=bwd.block_m, BLOCK_N=bwd.block_n)))
        jobs.append((_bwd_preprocess, dtype, _config.BlockConfig(64, 64), dict(HEAD_DIM=64, BLOCK_M=64)))
    report = []
    for kernel, dtype, cfg, constexprs in jobs:
        sig, consts = _signature(kernel, dtype, constexprs)
        compiled = triton.compile(ASTSource(kernel, sig, consts), target=target,
                                  options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
        report.append(dict(kernel=kernel.__name__, dtype=dtype, config=vars(cfg),
                           constexprs={k: v for k, v in constexprs.items() if k != "INPUT_PRECISION"},
                           **_resources(compiled)))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="compile the attention kernels for a CUDA arch")
    parser.add_argument("--arch", type=int, default=90)
    args = parser.parse_args()
    failures = 0
    for row in compile_all(args.arch):
        too_big = row["shared"] > MAX_SHARED
        failures += too_big
        print(f"{row['kernel']:<17}{row['dtype']:<5} D={row['constexprs']['HEAD_DIM']:<4}"
              f"rope={str(row['constexprs'].get('ROPE', '-')):<6}{row['config']['block_m']}x{row['config']['block_n']} "
              f"w{row['config']['num_warps']} s{row['config']['num_stages']}  regs={row['regs']:<4}"
              f"spill={row['spill_stack']:<4}shared={row['shared']}{' (too big)' if too_big else ''}"
              f"{' wgmma' if row['wgmma'] else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
