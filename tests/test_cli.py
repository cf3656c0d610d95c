"""The command line: --version, no abbreviations, a command's own usage on a typo, and no
torch imported to show help or to mine."""

from __future__ import annotations

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
