"""Choice of the attention implementation used by the ViT blocks.

``auto``   : the fused Triton kernel for CUDA tensors, torch SDPA (+ RoPE by torch ops) otherwise.
``triton`` : always the Triton kernel; raises on a device it cannot run on (no silent downgrade).
             On CPU this is only possible under the Triton interpreter (TRITON_INTERPRET=1).
``torch``  : always torch SDPA, with RoPE-2D applied by separate torch ops.
Each resolved choice is logged once per process.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from mimic_fast.models.pos_embed import apply_rope2d, rope2d_cos_sin

log = logging.getLogger(__name__)
_logged: set[tuple[str, str, str]] = set()


def triton_status() -> tuple[bool, bool, str]:
    """(importable, interpreted, reason when not importable) of the Triton kernel."""
    try:
        from mimic_fast.kernels.fused_attention import interpreted
    except ImportError as err:
        return False, False, f"triton is not importable ({err})"
    return True, interpreted(), ""


def check_attn_impl(attn_impl: str) -> None:
    """Fail fast at model creation when ``triton`` is requested where it can never run."""
    if attn_impl != "triton":
        return
    ok, interpreted, reason = triton_status()
    if not ok:
        raise RuntimeError(f"attn_impl='triton' requested but {reason}")
    if not interpreted and not torch.cuda.is_available():
        raise RuntimeError("attn_impl='triton' requested but no CUDA device is available; use "
                           "attn_impl='torch' (or 'auto'), or set TRITON_INTERPRET=1 to run the "
                           "kernel in the (slow) Triton interpreter")


def _log_once(requested: str, resolved: str, device: torch.device, note: str = "") -> None:
    key = (requested, resolved, device.type)
    if key not in _logged:
        _logged.add(key)
        log.info("attention: attn_impl=%s -> %s on %s%s", requested, resolved, device.type, note)


class AttentionBackend:
    """Callable (q, k, v, q_pos, k_pos) -> o, all [B, H, N, D]; positions int [B, N, 2] or None."""

    def __init__(self, attn_impl: str, rope_base: float | None):
        self.attn_impl = attn_impl
        self.rope_base = rope_base

    def resolve(self, device: torch.device) -> str:
        if self.attn_impl == "torch":
            _log_once("torch", "torch", device)
            return "torch"
        if self.attn_impl == "auto":
            ok, _, _ = triton_status()
            resolved = "triton" if device.type == "cuda" and ok else "torch"
            _log_once("auto", resolved, device)
            return resolved
        ok, interpreted, reason = triton_status()
        if not ok:
            raise RuntimeError(f"attn_impl='triton' requested but {reason}")
        if device.type != "cuda" and not interpreted:
            raise RuntimeError(f"attn_impl='triton' requested for tensors on {device}; the Triton kernel "
                               "needs CUDA (or TRITON_INTERPRET=1 for the CPU interpreter)")
        _log_once("triton", "triton", device, " (Triton interpreter)" if interpreted else "")
        return "triton"

    def __call__(self, q, k, v, q_pos=None, k_pos=None):
        use_rope = self.rope_base is not None
        if self.resolve(q.device) == "triton":
            from mimic_fast.kernels.fused_attention import attention

            if use_rope:
                return attention(q, k, v, q_pos, k_pos, rope_base=self.rope_base)
            return attention(q, k, v)
        if use_rope:
            q_tables = rope2d_cos_sin(q_pos, q.shape[-1], self.rope_base)
            k_tables = q_tables if k_pos is q_pos else rope2d_cos_sin(k_pos, k.shape[-1], self.rope_base)
            q, k = apply_rope2d(q, *q_tables), apply_rope2d(k, *k_tables)
        return F.scaled_dot_product_attention(q, k, v)
