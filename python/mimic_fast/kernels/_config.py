"""Launch configuration for the attention kernels: block sizes, warps, dot precision.

The GPU heuristics target Hopper (sm_90) at CroCo's shapes (N = 20 or 196, D = 32 or 64).
They were chosen from ptxas resource usage of sm_90 builds (``python -m
mimic_fast.kernels._compile_check``: no register spills, wgmma for 64+ row tiles), NOT from
timings: they have not been run on hardware yet (tune with
``benchmarks/bench_attention.py --sweep``). Under ``TRITON_INTERPRET=1`` larger blocks
mean fewer interpreted Python steps, so the interpreter gets its own default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton

LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class BlockConfig:
    """Tile sizes and launch parameters of one kernel launch."""

    block_m: int  # query rows per tile
    block_n: int  # key rows per tile
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two >= 16, got {value}")


def is_interpreted(kernel) -> bool:
    """True when ``kernel`` was decorated while TRITON_INTERPRET=1 (it runs on the CPU)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def _pow2_block(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(max(n, 1))))


def forward_config(n_q: int, n_k: int, head_dim: int, interpreted: bool) -> BlockConfig:
    if interpreted:
        return BlockConfig(_pow2_block(n_q, 16, 64), _pow2_block(n_k, 16, 64))
    if n_q <= 32:  # CroCo's masked view (20 visible tokens): one tile per (batch, head)
        block_n = _pow2_block(n_k, 32, 64)
        return BlockConfig(32, block_n, num_warps=2 if block_n == 32 else 4, num_stages=2)
    return BlockConfig(128 if head_dim <= 64 else 64, 64, num_warps=8, num_stages=2)


def backward_config(n_q: int, n_k: int, head_dim: int, interpreted: bool) -> BlockConfig:
    """One config for both backward kernels: dk/dv iterate over q tiles of ``block_m`` rows
    with ``block_n`` keys held, dq iterates over k tiles of ``block_n`` with ``block_m`` held."""
    if interpreted:
        return BlockConfig(_pow2_block(n_q, 16, 64), _pow2_block(n_k, 16, 64))
    if max(n_q, n_k) <= 32:
        return BlockConfig(32, 32, num_warps=4, num_stages=1)
    # 8 warps: at 4 warps the D=64 dk/dv kernel needs > 255 registers per thread and spills.
    return BlockConfig(64, 64 if head_dim <= 64 else 32, num_warps=8, num_stages=2)


def dot_input_precision(dtype: torch.dtype) -> str:
    """fp32 inputs follow torch's TF32 setting; half types ignore the option."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def log2_base(rope_base: float) -> float:
    if not rope_base > 0 or not math.isfinite(rope_base):
        raise ValueError(f"rope_base must be a positive finite number, got {rope_base}")
    return math.log2(rope_base)
