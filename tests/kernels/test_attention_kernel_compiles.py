"""The compiled (GPU) path builds for sm_90 through Triton and ptxas, with no GPU needed.

The kernels run only under the interpreter on CPU machines; this checks that the code the
GPU would run compiles with the launch configs the heuristics pick, and fits in shared memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"
SCRIPT = """
import json
from mimic_fast.kernels._compile_check import compile_all
print(json.dumps(compile_all(90)))
"""


def test_kernels_compile_for_sm90_without_spills_at_croco_shapes():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    kernels = {row["kernel"] for row in report}
    assert kernels == {"_attn_fwd_kernel", "_bwd_dkdv", "_bwd_dq", "_bwd_preprocess"}
    assert all(row["shared"] <= 227 * 1024 for row in report)
    # bf16/fp16 at CroCo's head dims (32, 64): the configs used in training must not spill.
    hot = [r for r in report if r["dtype"] != "fp32" and r["constexprs"]["HEAD_DIM"] in (32, 64)]
    assert hot and all(r["spill_stack"] == 0 for r in hot), [r for r in hot if r["spill_stack"]]
    # 64+ row tiles on Hopper must use wgmma (warp-group MMA).
    big = [r for r in hot if r["kernel"] != "_bwd_preprocess" and r["config"]["block_m"] >= 64]
    assert big and all(r["wgmma"] for r in big)
