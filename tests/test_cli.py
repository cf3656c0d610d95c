"""The command line: --version, no abbreviations, a command's own usage on a typo, no torch
imported to show help or to mine, every option explained with its default, every mining
setting settable, one-line user errors (tracebacks only with --debug)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys

import pytest

import mimic_fast
from mimic_fast.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == \
        f"mimic-fast {mimic_fast.__version__}"


@pytest.mark.parametrize("typo", [["--worker", "2"], ["--max-step", "3"]])
def test_no_abbreviations_and_the_commands_own_usage(typo, tmp_path, capsys):
    command = "mine" if typo[0] == "--worker" else "train"
    args = ([command, str(tmp_path), "--out", str(tmp_path / "o")] if command == "mine" else
            [command, "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--max-steps", "1",
             "--batch-size", "1"])
    with pytest.raises(SystemExit) as exit_:
        main(args + typo)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"usage: mimic-fast {command}" in err and f"unrecognized arguments: {typo[0]}" in err
    assert not (tmp_path / "o").exists()  # nothing created


def test_help_and_mining_do_not_import_torch(shared_data, tmp_path):
    frames = shared_data / "video/tum_freiburg_frames"
    code = ("import sys\n"
            "from mimic_fast.cli import build_parser, main\n"
            "build_parser()\n"
            "assert 'torch' not in sys.modules, 'help'\n"
            f"assert main(['mine', {str(frames)!r}, '--out', {str(tmp_path / 'ds')!r}, "
            "'--no-progress']) == 0\n"
            "assert 'torch' not in sys.modules, 'mine'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def _options(parser):
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "debug")]


def test_every_option_and_argument_of_every_command_is_explained(capsys):
    from mimic_fast.cli import build_parser

    parser = build_parser()
    for name, command in parser.commands.items():
        text = command.format_help()
        for action in command._actions:
            if action.dest == "help":
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help text"
            shows_default = (action.option_strings and not action.required and
                             not any(action.default is v for v in (None, False,
                                                                   argparse.SUPPRESS)))
            if shows_default:  # the help text as printed names the default
                formatter = command.formatter_class(prog=command.prog)
                assert "%(default)s" in formatter._get_help_string(action), where
                assert str(action.default) in " ".join(text.split()), where


def test_mine_options_are_the_config_fields_with_their_defaults():
    from mimic_fast.cli import build_parser
    from mimic_fast.mining.config import MineConfig, RunOptions

    mine = build_parser().commands["mine"]
    by_dest = {a.dest: a for a in _options(mine)}
    for cls in (MineConfig, RunOptions):
        for f in dataclasses.fields(cls):
            assert f.name in by_dest, f"{cls.__name__}.{f.name} cannot be set from the CLI"
            assert by_dest[f.name].default == f.default, f.name
    fields = {f.name for c in (MineConfig, RunOptions) for f in dataclasses.fields(c)}
    assert set(by_dest) == fields | {"out"}
    from mimic_fast.mining.commands import MINE_HELP

    assert set(MINE_HELP) == fields  # no help text for a setting that is gone
    # a value given on the command line reaches the config
    args = build_parser().parse_args(
        ["mine", "x", "--out", "o", "--ratio", "0.8", "--min-matches", "15",
         "--ransac-threshold", "3", "--patch-size", "14", "--samples", "50", "--min-side", "64",
         "--static-min", "7", "--no-exact-decode", "--no-progress", "--group-by", "(a)",
         "--kind", "group"])
    from mimic_fast.mining.commands import _dataclass_from_args

    cfg, run = _dataclass_from_args(MineConfig, args), _dataclass_from_args(RunOptions, args)
    assert (cfg.ratio, cfg.min_matches, cfg.ransac_threshold, cfg.patch_size, cfg.samples,
            cfg.min_side, cfg.static_min, cfg.exact_decode, cfg.group_by) == \
        (0.8, 15, 3.0, 14, 50, 64, 7, False, "(a)")
    assert run.progress is False


@dataclasses.dataclass(frozen=True)
class _Settings:
    on: bool = True
    off: bool = False
    limit: int | None = None
    ratio: float = 0.5
    mode: str = "fast"
    workers: int = dataclasses.field(default_factory=lambda: 3)
    strict: bool = False
    pair: tuple[int, int] = (1, 2)


def _settings_parser():
    from mimic_fast.cli import add_dataclass_options

    parser = argparse.ArgumentParser(exit_on_error=False, allow_abbrev=False)
    helps = {name: f"help of {name}" for name in
             ("workers", "on", "off", "limit", "ratio", "mode", "strict")}
    add_dataclass_options(parser, _Settings, helps, choices={"mode": ("fast", "exact")},
                          renamed={"strict": "strict_data"})
    return parser


def test_dataclass_options_take_defaults_types_and_flags_from_the_fields():
    parser = _settings_parser()
    assert [a.option_strings for a in parser._actions[1:]] == [  # in the order of the helps
        ["--workers"], ["--on", "--no-on"], ["--off"], ["--limit"], ["--ratio"], ["--mode"],
        ["--strict-data"]]
    assert [a.help for a in parser._actions[1:]] == [
        f"help of {n}" for n in ("workers", "on", "off", "limit", "ratio", "mode", "strict")]
    assert vars(parser.parse_args([])) == dict(workers=3, on=True, off=False, limit=None,
                                               ratio=0.5, mode="fast", strict_data=False)
    args = parser.parse_args(["--workers", "5", "--no-on", "--off", "--limit", "7",
                              "--ratio", "2", "--mode", "exact", "--strict-data"])
    assert vars(args) == dict(workers=5, on=False, off=True, limit=7, ratio=2.0, mode="exact",
                              strict_data=True)
    assert type(args.limit) is int and type(args.ratio) is float  # from `int | None`, `float`
    for bad in (["--mode", "slow"], ["--limit", "1.5"], ["--strict"]):
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            parser.parse_args(bad)


@pytest.mark.parametrize("helps, kw, error, message", [
    ({"nope": "x"}, {}, ValueError, "_Settings has no field 'nope'"),
    ({"on": "x"}, {"choices": {"mode": ("fast",)}}, ValueError, "'mode' has choices"),
    ({"on": "x"}, {"renamed": {"ratio": "r"}}, ValueError, "'ratio' has choices or a new name"),
    ({"mode": "x"}, {"choices": {"mode": ("a", "b")}}, ValueError,
     "_Settings.mode: default 'fast' is not one of ('a', 'b')"),
    ({"pair": "x"}, {}, TypeError, "_Settings.pair is a tuple[int, int]"),
])
def test_dataclass_options_refuse_what_they_cannot_honour(helps, kw, error, message):
    from mimic_fast.cli import add_dataclass_options

    with pytest.raises(error, match=re.escape(message)):
        add_dataclass_options(argparse.ArgumentParser(), _Settings, helps, **kw)


@pytest.mark.parametrize("where", ["before", "after"])
def test_user_errors_are_one_line_and_debug_shows_the_traceback(where, tmp_path, capsys):
    bad = ["mine", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mimic-fast mine: error: no usable input")
    assert "Traceback" not in err
    assert main(["--debug"] + bad if where == "before" else bad + ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "NoUsableInput" in err
    assert err.splitlines()[-1].startswith("mimic-fast mine: error: no usable input")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, message", [
    (["--group-by", "(x)"], "--group-by needs --kind group"),
    (["--kind", "group", "--group-by", "no-group"], "has no capture group"),
    (["--kind", "group", "--group-by", "(unclosed"], "is not a regular expression"),
    (["--low", "0.8"], "need 0 <= low < high <= 1"),
])
def test_bad_settings_are_refused_before_anything_is_created(extra, message, shared_data,
                                                             tmp_path, capsys):
    frames = shared_data / "video/tum_freiburg_frames"
    assert main(["mine", str(frames), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()
