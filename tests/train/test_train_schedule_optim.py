"""Learning-rate schedule, AdamW parameter groups and config handling."""

from __future__ import annotations

import math

import pytest
import torch

from mimic_fast.train.config import OptimConfig, TrainConfig, reconcile
from mimic_fast.train.optim import make_optimizer, param_groups
from mimic_fast.train.schedule import lr_at, peak_lr, warmup_steps


def test_warmup_then_half_cosine():
    peak, warm, total = 1.0, 4, 14
    lrs = [lr_at(s, peak, warm, total, 0.1) for s in range(16)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[14] == lrs[15] == 0.1


def test_lr_scaling_rule_and_default_warmup():
    assert peak_lr(1.5e-4, None, 4096) == pytest.approx(2.4e-3)
    assert peak_lr(1.5e-4, 1e-3, 4096) == 1e-3
    assert warmup_steps(None, 1000) == 50 and warmup_steps(7, 1000) == 7


def test_no_weight_decay_on_biases_and_norms():
    from mimic_fast.models import create_model

    model = create_model("croco_test")
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(names[id(p)].endswith("norm1.weight") for p in no_decay["params"])
    assert all(names[id(p)].endswith(".bias") or p.ndim <= 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    opt = make_optimizer(model, 1e-3, 0.05)
    assert opt.defaults["betas"] == (0.9, 0.95)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]


def test_reconcile_keeps_the_saved_run_and_refuses_changes():
    saved = TrainConfig(out="r", max_steps=10, batch_size=4, optim=OptimConfig(schedule_steps=10))
    longer = reconcile(saved, TrainConfig(out="r", max_steps=20, batch_size=4))
    assert longer.max_steps == 20 and longer.optim.schedule_steps == 10
    with pytest.raises(ValueError, match="seed: 0 -> 1"):
        reconcile(saved, TrainConfig(out="r", max_steps=20, batch_size=4, seed=1))
    assert TrainConfig.from_dict(saved.to_dict()) == saved


def test_config_validation():
    with pytest.raises(ValueError, match="accum must be >= 1"):
        TrainConfig(out="r", accum=0)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(out="r", precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_asked_for_without_a_gpu_is_an_error():
    from mimic_fast.train.distributed import resolve_device

    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
