"""``python -m mimic_fast.train ARGS`` / ``torchrun --nproc_per_node N -m mimic_fast.train ARGS``:
the same arguments as ``mimic-fast train``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mimic_fast.train.commands import add_train_arguments, run_train


def main(argv: list[str] | None = None) -> int:
    from mimic_fast.cli import DefaultsShown

    parser = argparse.ArgumentParser(prog="python -m mimic_fast.train", description=__doc__.splitlines()[0],
                                     allow_abbrev=False, formatter_class=DefaultsShown)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.set_defaults(command="train")  # names the command in one-line errors
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s")
    return run_train(args)


if __name__ == "__main__":
    sys.exit(main())
