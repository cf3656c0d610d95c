"""CLI: ``mimic-fast show | stats | report``: look at a mined dataset (a pair's picture, the
counts and the stats plot, a report page).

Pictures are written where the user says, by default into the current directory (never
into the dataset), and an existing file is never replaced without ``--force``.
Heavy imports (cv2, matplotlib) happen inside the command functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "show",
        help="draw a mined pair with its patch correspondences",
        description="Draw one pair of a mined dataset: both views, matched patches in the "
        "same colour, unmatched patches grey. Choose the pair by KEY, --index or --random "
        "(default: the first pair).")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a mined dataset folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("key", nargs="?", default=None, metavar="KEY",
                       help="the pair's key (as in DATASET/index.jsonl)")
    which.add_argument("--index", type=int, default=None, metavar="N",
                       help="the N-th pair of index.jsonl, counted from 0 (default: 0 when "
                       "no KEY and no --random)")
    which.add_argument("--random", action="store_true", help="a pair chosen at random")
    p.add_argument("--out", type=Path, default=None, metavar="PNG",
                   help="picture to write, or a folder to write KEY.png in (default: ./KEY.png "
                   "in the current directory)")
    p.add_argument("--force", action="store_true", help="replace an existing picture")
    p.add_argument("--lines", type=int, default=0, metavar="N",
                   help="join N matches (evenly spread) by lines (default: %(default)s)")
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser(
        "stats",
        help="counts of a mined dataset and its stats plot",
        description="Print the counts of a mined dataset and plot the overlap of its "
        "candidates against the accepted pairs (keep band shaded) beside the rejection "
        "reasons.")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a mined dataset folder")
    p.add_argument("--out", type=Path, default=None, metavar="PNG",
                   help="plot to write, or a folder to write DATASETNAME-stats.png in (default: "
                   "./DATASETNAME-stats.png in the current directory)")
    p.add_argument("--force", action="store_true", help="replace an existing picture")
    p.set_defaults(func=cmd_stats)

    p = subparsers.add_parser(
        "report",
        help="a static HTML page of a mined dataset (summary, sources, errors, pairs)",
        description="Write one HTML page (opens from file://, no server) with the summary, "
        "rejection reasons, overlap histogram, sources, errors, and a gallery of pairs with "
        "their correspondence pictures and metadata. Pictures are written beside the page.")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a mined dataset folder")
    p.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                   help="folder of the page: new, empty, or an earlier report (default: "
                   "DATASET/report)")
    p.add_argument("--per-page", type=int, default=24, metavar="N",
                   help="pairs per gallery page")
    p.add_argument("--max-pairs", type=int, default=1000, metavar="N",
                   help="draw at most N pairs, evenly spread over the index (0: all)")
    p.add_argument("--lines", type=int, default=8, metavar="N",
                   help="join N matches of each pair by lines (0: none)")
    p.set_defaults(func=cmd_report)


def _error(args: argparse.Namespace, problem: BaseException | str) -> int:
    from mimic_fast.cli import user_error

    return user_error(args, problem)


def _picture_path(out: Path | None, name: str) -> Path:
    """``--out`` as given, ``name`` in it when it is a folder, else ``name`` here."""
    if out is None:
        return Path(name)
    return out / name if out.is_dir() else out


def _refuse_overwrite(path: Path, force: bool) -> str | None:
    """Why ``path`` may not be written (None: it may)."""
    if path.is_dir():
        return f"{path} is a folder"
    if path.exists() and not force:
        return f"{path} exists; use --force to replace it, or --out to write elsewhere"
    return None


def cmd_show(args: argparse.Namespace) -> int:
    import random

    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.reader import read_index, read_sample
    from mimic_fast.dataset.schema import check_member_key
    from mimic_fast.viz.correspondences import (
        draw_correspondences, pair_title, save_png, view_labels,
    )

    try:
        key = args.key
        if key is None:
            rows = read_index(args.dataset)
            if not rows:
                return _error(args, f"{args.dataset} has no pairs")
            n = random.randrange(len(rows)) if args.random else (args.index or 0)
            if not 0 <= n < len(rows):
                return _error(args, f"--index {n} is out of range: {args.dataset} has "
                              f"{len(rows)} pairs (0..{len(rows) - 1})")
            key = rows[n]["key"]
            if args.random:
                print(f"pair {n} of {len(rows)}: {key}")
        check_member_key(key)  # a key names a file here: no '/', no '.', not empty
        out = _picture_path(args.out, f"{key}.png")
        problem = _refuse_overwrite(out, args.force)
        if problem:
            return _error(args, problem)
        s = read_sample(args.dataset, key)
    except (KeyError, FileNotFoundError, ValueError, DataError) as exc:
        return _error(args, exc)
    m = s.meta
    fig = draw_correspondences(s.view1, s.view2, m["correspondences"],
                               patch_size=m["patch_size"], title=pair_title(m),
                               labels=view_labels(m), lines=args.lines)
    print(f"wrote {save_png(fig, out)}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from mimic_fast.mining.run import format_summary
    from mimic_fast.viz.histogram import overlap_histogram
    from mimic_fast.viz.overview import load_overview

    try:
        ov = load_overview(args.dataset)
    except FileNotFoundError as exc:
        return _error(args, exc)
    out = _picture_path(args.out, f"{ov.name}-stats.png")
    problem = _refuse_overwrite(out, args.force)
    if problem:
        return _error(args, problem)
    print(format_summary(ov.summary))
    acc = ov.accepted_overlaps
    if len(acc):
        print(f"overlap of accepted pairs: mean {acc.mean():.3f}, min {acc.min():.3f}, "
              f"max {acc.max():.3f}")
    overlap_histogram(ov.candidate_overlaps, acc, out, ov.low, ov.high,
                      title=f"{ov.name}: patch overlap", rejected=ov.summary.get("rejected", {}))
    print(f"wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mimic_fast.viz.report import ReportError, write_report

    try:
        r = write_report(args.dataset, args.out, per_page=args.per_page,
                         max_pairs=args.max_pairs, lines=args.lines)
    except ReportError as exc:
        return _error(args, exc)
    print(f"wrote {r.page} ({r.pictures} of {r.pairs} pairs drawn); open "
          f"{r.page.resolve().as_uri()} in a browser")
    return 0
