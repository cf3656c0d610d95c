"""The commands are registered and `python -m mimic_fast.train` is the train command."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_cli_has_train_and_eval():
    from mimic_fast.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--max-steps", "3",
                                      "--batch-size", "2", "--accum", "4", "--device", "cpu"])
    assert args.func.__name__ == "run_train" and args.accum == 4
    args = build_parser().parse_args(["eval", "run"])
    assert args.func.__name__ == "run_eval"


@pytest.mark.parametrize("flag, progress", [([], True), (["--no-progress"], False),
                                            (["--progress"], True)])
def test_progress_is_on_by_default_like_the_config(flag, progress):
    from mimic_fast.cli import build_parser
    from mimic_fast.train.commands import config_from_args

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--max-steps", "3",
                                      "--batch-size", "2", *flag])
    assert config_from_args(args).progress is progress


def test_module_entry_point_for_torchrun():
    out = subprocess.run([sys.executable, "-m", "mimic_fast.train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--max-steps" in out.stdout and "--accum" in out.stdout
