"""Triton kernels of mimic_fast and their plain-torch reference twins.

``attention(q, k, v, q_pos=None, k_pos=None, rope_base=100.0)``: fused flash-style attention
with CroCo v2's RoPE-2D applied to q and k inside the kernel (forward and backward).
``attention_reference``: the same computation in plain torch; it is the definition.
"""

from mimic_fast.kernels.reference import attention_reference, rope2d_reference

try:
    from mimic_fast.kernels.fused_attention import attention
except ImportError as _triton_import_error:  # triton is an optional ("train") dependency
    _TRITON_ERROR = _triton_import_error

    def attention(*args, **kwargs):  # type: ignore[no-redef]
        """Unavailable: Triton could not be imported (see the error raised)."""
        raise ImportError(
            "mimic_fast.kernels.attention needs triton (pip install 'mimic-fast[train]'); "
            f"importing it failed with: {_TRITON_ERROR}")

__all__ = ["attention", "attention_reference", "rope2d_reference"]
