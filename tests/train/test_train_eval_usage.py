"""`train` / `eval` explain themselves: every option has help and its default comes from the
config dataclasses; a mistake in the arguments is one line on stderr, exit 2, no traceback
(unless --debug), and nothing is created."""

from __future__ import annotations

import pytest
import torch
from run_helpers import run_cli, train_args

from mimic_fast.cli import build_parser
from mimic_fast.data.config import DataConfig
from mimic_fast.train.commands import config_from_args
from mimic_fast.train.config import EvalConfig, OptimConfig, TrainConfig

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@pytest.mark.parametrize("command", ["train", "eval"])
def test_every_option_has_help(command):
    parser = build_parser().commands[command]
    bare = [a.dest for a in parser._actions if a.option_strings and not a.help]
    assert bare == []


def test_train_defaults_are_the_dataclasses():
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--max-steps", "7",
                                      "--batch-size", "3"])
    assert config_from_args(args) == TrainConfig(out="o", max_steps=7, batch_size=3,
                                                 data=DataConfig(path="d"), optim=OptimConfig())
    helps = build_parser().commands["train"].format_help()
    assert f"(default: {DataConfig().num_workers})" in " ".join(helps.split())


def test_eval_defaults_are_the_dataclass():
    args = build_parser().parse_args(["eval", "run"])
    for name, value in vars(EvalConfig()).items():
        assert getattr(args, name) == value, name


@pytest.mark.parametrize("case, message", [
    pytest.param("cuda", "no CUDA GPU", marks=NO_GPU),
    ("model", "unknown model 'croco_tset' (did you mean 'croco_test'?)"),
    ("missing", "does not exist"),
    ("empty", "has no *.tar shards"),
])
def test_train_user_errors_are_one_line_and_create_nothing(mined_tum, tmp_path, capsys, case, message):
    data, extra, model = mined_tum, (), "croco_test"
    if case == "cuda":
        extra = ("--device", "cuda")
    elif case == "model":
        model = "croco_tset"
    elif case == "missing":
        data = tmp_path / "nowhere"
    else:
        data = tmp_path / "empty"
        data.mkdir()
    # (train_args asks for the CPU; the later --device cuda wins)
    assert run_cli(train_args(data, tmp_path / "run", model=model, steps=1, extra=extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mimic-fast train: error: "), err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(mined_tum, tmp_path, capsys):
    assert run_cli(["--debug", *train_args(mined_tum, tmp_path / "run", model="nope", steps=1)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("mimic-fast train: error:")


@pytest.mark.parametrize("case", [pytest.param("cuda", marks=NO_GPU), "missing"])
def test_eval_user_errors_are_one_line(tmp_path, capsys, case):
    run = tmp_path / "nothing"
    args = ["eval", str(run)] + (["--device", "cuda"] if case == "cuda" else [])
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mimic-fast eval: error: ") and "Traceback" not in err
    assert not run.exists()
