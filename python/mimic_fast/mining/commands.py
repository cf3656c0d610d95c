"""CLI: ``mimic-fast mine | verify | pack | export-mimic | import-mimic``.

Heavy imports (cv2, ray) happen inside the command functions so ``mimic-fast --help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    _register_mine(subparsers)
    p = subparsers.add_parser(
        "verify", help="check every shard and pair of a dataset against its index (counts, "
        "sizes, sha256); exit 1 naming what is damaged")
    p.add_argument("dataset", type=Path)
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "pack", help="copy a mined dataset into shards of N pairs (mining writes one per source)")
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path, help="new dataset folder")
    p.add_argument("--pairs-per-shard", type=int, default=1000)
    p.set_defaults(func=cmd_pack)

    p = subparsers.add_parser("export-mimic", help="write a dataset in the published layout")
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--csv", default="pairs.csv", help="name of the CSV written under OUT")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("import-mimic", help="convert a published-layout dataset")
    p.add_argument("root", type=Path, help="folder with <scene>/<pair>/0000.jpg ... and a CSV")
    p.add_argument("out", type=Path, help="dataset folder to write")
    p.add_argument("--csv", type=Path, default=None, help="the CSV (default: the one in ROOT)")
    p.set_defaults(func=cmd_import)


def _register_mine(subparsers) -> None:
    from mimic_fast.mining.config import OVERLAP_SAMPLINGS, RANSACS, WALKS
    from mimic_fast.mining.config import MineConfig as C

    p = subparsers.add_parser(
        "mine", help="mine multi-view pairs from videos, frame folders, image groups, CSV lists",
        description="Mine image pairs (SIFT, ratio test, RANSAC homography, patch overlap) "
                    "into WebDataset shards. Resumable: rerun the same command to continue.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--kind", default=C.kind, choices=("auto", "video", "frames", "group", "list"))
    p.add_argument("--interval", type=float, default=C.interval, help="seconds between frames")
    p.add_argument("--stride", type=int, default=C.stride, help="frame-folder step")
    p.add_argument("--group-keep", default=C.group_keep, choices=("all", "best"))
    p.add_argument("--resize", default=C.resize, choices=("squash", "crop"))
    p.add_argument("--walk", default=C.walk, choices=WALKS,
                   help="ordered sources: 'published' = the (i, i+2) rule with its skip; 'all' "
                        "= every (i, i+1), no skip (more, partly redundant pairs) "
                        "(default: %(default)s)")
    p.add_argument("--interpolation", default=C.interpolation, choices=("linear", "area"),
                   help="resize to the view: 'linear' as published, 'area' anti-aliased "
                        "(default: %(default)s)")
    p.add_argument("--exact-decode", action=argparse.BooleanOptionalAction,
                   default=C.exact_decode,
                   help="decode JPEGs in full, as published; --no-exact-decode: at 1/2-1/8 "
                        "size (IDCT scaling) when the picture is at least twice the view "
                        "(default: %(default)s)")
    p.add_argument("--ransac", default=C.ransac, choices=RANSACS,
                   help="'opencv' = cv2.findHomography per pair, as published; 'native' = "
                        "mimic_fast.find_homographies on each batch (the same method with "
                        "its own samples, keyed by --seed) (default: %(default)s)")
    p.add_argument("--samples", type=int, default=C.samples,
                   help="sample points per patch for the overlap (default: %(default)s)")
    p.add_argument("--overlap-sampling", default=C.overlap_sampling, choices=OVERLAP_SAMPLINGS,
                   help="'random' as published; 'grid' = a fixed grid of points, so decisions "
                        "near 0.5 / 0.75 do not depend on --seed (default: %(default)s)")
    p.add_argument("--size", type=int, default=C.size, help="view side in pixels")
    p.add_argument("--low", type=float, default=C.low, help="keep when low < overlap")
    p.add_argument("--high", type=float, default=C.high, help="keep when overlap < high")
    p.add_argument("--static-fraction", type=float, default=C.static_fraction,
                   help="static-camera test: reject a pair when this fraction of its "
                        "inliers stands still while H moves them (0 = off, as published; "
                        "0.1 suits footage from static cameras) (default: %(default)s)")
    p.add_argument("--jpeg-quality", type=int, default=C.jpeg_quality)
    p.add_argument("--seed", type=int, default=C.seed,
                   help="key of the patch-overlap sample points (RANSAC needs none)")
    p.add_argument("--workers", type=int, default=1, help="local engine processes")
    p.add_argument("--engine", default="local", choices=("local", "ray"))
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: local)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--strict", action="store_true", help="exit 1 when any input failed")
    p.add_argument("--retry-failed", action="store_true", help="redo sources that failed")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_mine)


def cmd_mine(args: argparse.Namespace) -> int:
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import DatasetMismatch, format_summary, mine

    try:
        cfg = MineConfig(
            kind=args.kind, interval=args.interval, stride=args.stride, walk=args.walk,
            exact_decode=args.exact_decode, samples=args.samples, ransac=args.ransac,
            overlap_sampling=args.overlap_sampling, group_keep=args.group_keep,
            size=args.size, resize=args.resize, interpolation=args.interpolation, low=args.low, high=args.high,
            static_fraction=args.static_fraction, seed=args.seed,
            jpeg_quality=args.jpeg_quality)
        opts = RunOptions(engine=args.engine, workers=args.workers,
                          ray_address=args.ray_address, device=args.device,
                          strict=args.strict, retry_failed=args.retry_failed,
                          progress=not args.no_progress)
        summary = mine(args.inputs, args.out, cfg, opts)
    except (ValueError, DatasetMismatch, NotImplementedError) as exc:
        print(f"mimic-fast mine: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    print(f"dataset: {args.out}")
    if args.strict and (summary["errors"] or summary["sources_failed"]):
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.verify import verify

    try:
        report = verify(args.dataset)
    except DataError as exc:
        print(f"mimic-fast verify: error: {exc}", file=sys.stderr)
        return 2
    for line in report.problems:
        print(f"DAMAGED {line}")
    print(report.summary())
    return 0 if report.ok else 1


def cmd_pack(args: argparse.Namespace) -> int:
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.pack import PackError, pack

    try:
        summary = pack(args.dataset, args.out, args.pairs_per_shard)
    except (PackError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"mimic-fast pack: error: {exc}", file=sys.stderr)
        return 2
    print(f"packed {summary['accepted']} pairs into {len(summary['shards'])} shards in "
          f"{args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.mimic_layout import export_mimic

    try:
        n = export_mimic(args.dataset, args.out, args.csv)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"mimic-fast export-mimic: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {n} pairs to {args.out} ({args.csv})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mimic_fast.dataset.mimic_layout import import_mimic
    from mimic_fast.mining.run import format_summary

    try:
        summary = import_mimic(args.root, args.out, args.csv)
    except (FileNotFoundError, ValueError) as exc:
        print(f"mimic-fast import-mimic: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0
