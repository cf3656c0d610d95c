"""``mimic-fast``: one entry point; each subpackage registers its own subcommands.

A command module exposes ``register(subparsers)`` and sets ``func`` on its parser; heavy
imports (torch, cv2, ray) happen inside the command, so ``mimic-fast --help`` stays fast.
Every option's help shows its default; an option that sets a field of a config dataclass is
made by :func:`add_dataclass_options`, which reads the default from the dataclass. A user
error (bad path, no GPU, unknown model, folder in use, disk full) is ONE line on stderr and a
non-zero exit (:func:`user_error`); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import traceback
import types
import typing
from collections.abc import Mapping, Sequence

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
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that subpackage has no commands (yet)
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():
        command.allow_abbrev = False  # `--worker` must not pass for `--workers`
        command.formatter_class = DefaultsShown
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")
    parser.commands = sub.choices  # name -> the command's parser
    return parser


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to every option's help, except where there is nothing to show
    (flags that are off, required options, positionals)."""

    def _get_help_string(self, action):
        help_ = action.help or ""
        off = any(action.default is v for v in (None, False, argparse.SUPPRESS))  # not 0, 0.0
        if off or action.required or not action.option_strings or "%(default)" in help_:
            return help_
        return f"{help_} (default: %(default)s)".lstrip()


def add_dataclass_options(group, cls, helps: Mapping[str, str], *,
                          choices: Mapping[str, Sequence[str]] | None = None,
                          renamed: Mapping[str, str] | None = None) -> None:
    """Add one option to ``group`` (a parser or argument group) per entry of ``helps``, a field
    of the dataclass ``cls`` -> its help text, in the order of ``helps``.

    The dataclass is the one place that decides a default (a ``default_factory`` is called);
    the field's annotation gives the type (``int | None`` -> int). A bool field that is off is
    a flag ``--x``, one that is on is ``--x/--no-x``. The option is ``--field-name`` stored in
    ``args.field_name``; ``renamed`` gives a field another name where two configs of a command
    have a field of the same name (``{"strict": "strict_data"}``: ``--strict-data``).
    ``choices`` limits a field's values; each default must be one of them.
    """
    choices, renamed = dict(choices or {}), dict(renamed or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in [*helps, *choices, *renamed]:
        if name not in fields:
            raise ValueError(f"{cls.__name__} has no field {name!r}")
        if name not in helps:  # would be silently ignored
            raise ValueError(f"{name!r} has choices or a new name but no help text, so no option")
    hints = typing.get_type_hints(cls)
    for name, help_ in helps.items():
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        type_ = _option_type(cls.__name__, name, hints[name])
        dest = renamed.get(name, name)
        flag = "--" + dest.replace("_", "-")
        if type_ is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            group.add_argument(flag, dest=dest, default=default, action=action, help=help_)
            continue
        allowed = choices.get(name)
        if allowed is not None and default is not None and default not in allowed:
            raise ValueError(f"{cls.__name__}.{name}: default {default!r} is not one of {allowed}")
        group.add_argument(flag, dest=dest, default=default, type=type_, choices=allowed,
                           help=help_)


def _option_type(owner: str, name: str, hint) -> type:
    """The value type of a field annotated ``hint``: bool, int, float or str, maybe ``| None``."""
    options = [hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(options) != 1 or options[0] not in (bool, int, float, str):
        raise TypeError(f"{owner}.{name} is a {hint}: only bool, int, float and str fields "
                        "(or None) can be options")
    return options[0]


def user_error(args: argparse.Namespace, exc: BaseException | str, code: int = 2) -> int:
    """Report a user error as one line on stderr (with the traceback under --debug); returns
    the exit code for the command to return."""
    if getattr(args, "debug", False) and isinstance(exc, BaseException):
        traceback.print_exception(exc)
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    print(f"mimic-fast {args.command}: error: {message}", file=sys.stderr)
    return code


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
        if isinstance(exc, FolderInUse):
            return user_error(args, exc, 3)
        if args.debug:
            traceback.print_exception(exc)
        return user_error(args, out_of_space_message(exc), 4)


if __name__ == "__main__":
    sys.exit(main())
