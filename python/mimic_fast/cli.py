"""``mimic-fast``: one entry point; each subpackage registers its own subcommands.

A command module exposes ``register(subparsers)`` and sets ``func`` on its parser; heavy
imports (torch, cv2, ray) happen inside the command, so ``mimic-fast --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "mimic_fast.demo",
    "mimic_fast.mining.commands",
    "mimic_fast.viz.commands",
    "mimic_fast.train.commands",
)


def build_parser() -> argparse.ArgumentParser:
    import mimic_fast

    parser = argparse.ArgumentParser(
        prog="mimic-fast",
        description="Mine multi-view image pairs from videos and image collections (MIMIC) "
        "and pretrain CroCo / MAE on them.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version",
                        version=f"mimic-fast {mimic_fast.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that subpackage has no commands (yet)
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():  # `--worker` must not pass for `--workers`
        command.allow_abbrev = False
    parser.commands = sub.choices  # name -> the command's parser
    return parser


def main(argv: list[str] | None = None) -> int:
    from mimic_fast._output_folder import FolderInUse, is_out_of_space, out_of_space_message

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the command's own usage, not the top level's
        parser.commands[args.command].error(
            f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (FolderInUse, OSError) as exc:  # of any command that writes an output folder
        if isinstance(exc, OSError) and not is_out_of_space(exc):
            raise
        logging.getLogger(__name__).debug("traceback", exc_info=True)
        message = str(exc) if isinstance(exc, FolderInUse) else out_of_space_message(exc)
        print(f"mimic-fast {args.command}: error: {message}", file=sys.stderr)
        return 3 if isinstance(exc, FolderInUse) else 4


if __name__ == "__main__":
    sys.exit(main())
