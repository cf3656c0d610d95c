"""CLI: ``mimic-fast mine | verify | pack | export-mimic | import-mimic``.

Heavy imports (cv2, ray) happen inside the command functions so ``mimic-fast --help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    _register_mine(subparsers)
    p = subparsers.add_parser(
        "verify", help="check every shard and pair of a dataset against its index (counts, "
        "sizes, sha256); exit 1 naming what is damaged")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "pack", help="copy a mined dataset into shards of N pairs (mining writes one per source)")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("out", type=Path, help="new dataset folder")
    p.add_argument("--pairs-per-shard", type=int, default=1000, help="pairs per shard")
    p.set_defaults(func=cmd_pack)

    p = subparsers.add_parser("export-mimic", help="write a dataset in the published layout")
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("out", type=Path, help="folder for <scene>/<pair>/0000.jpg ... and the CSV")
    p.add_argument("--csv", default="pairs.csv", help="name of the CSV written under OUT")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("import-mimic", help="convert a published-layout dataset")
    p.add_argument("root", type=Path, help="folder with <scene>/<pair>/0000.jpg ... and a CSV")
    p.add_argument("out", type=Path, help="dataset folder to write")
    p.add_argument("--csv", type=Path, default=None, help="the CSV (default: the one in ROOT)")
    p.set_defaults(func=cmd_import)


# Help for every mining setting; the defaults and types come from the dataclasses
# (mining/config.py), the one place that decides them (cli.add_dataclass_options). Every field
# of MineConfig and RunOptions must be here (building the parser fails otherwise).
MINE_HELP = {
    "kind": "what the inputs are; auto: a video file is a video, a .csv a list of pairs, a "
            "folder of images a frame folder (folders are searched)",
    "interval": "seconds between the video frames that are sampled",
    "stride": "frame folders: use every N-th image",
    "walk": "ordered sources: 'published' = (i, i+1), and (i, i+2) when (i, i+1) overlaps "
            "too much, skipping i+1 when that pair is kept; 'all' = every (i, i+1), no skip",
    "group_keep": "groups: keep 'all' pairs in range, or only the 'best' (lowest overlap)",
    "group_by": "groups: split each folder into groups by the first capture group of this "
                "regular expression on the file name (e.g. '^(\\d+)_' for 0042_a.jpg); "
                "needs --kind group",
    "size": "views are SIZE x SIZE pixels",
    "resize": "'squash' the frame to the square (published) or 'crop' its centre square",
    "interpolation": "resize to the view: 'linear' as published, 'area' anti-aliased",
    "exact_decode": "decode JPEGs in full, as published; --no-exact-decode: at 1/2-1/8 size "
                    "(IDCT scaling) when the picture is at least twice the view (faster, a "
                    "different, low-passed view)",
    "decoder": "'opencv' as published; 'dali' = NVIDIA DALI (nvJPEG and NVDEC on --device cuda, "
               "its CPU decoders otherwise: images as OpenCV's, MJPEG/VP8/VP9 videos only; "
               "needs the 'dali' extra)",
    "min_side": "frames whose shorter side is below this many pixels are rejected",
    "sift": "'opencv' = cv2.SIFT per view, as published; 'native' = mimic_fast.sift (the "
            "same keypoints within 0.01 px, on the --device; on the CPU about 7x slower); "
            "'auto' = native on a CUDA --device, else opencv (config.json records which)",
    "ratio": "Lowe's ratio test: a match needs best distance < RATIO x second best",
    "min_matches": "a pair needs MORE than this many ratio-test matches",
    "ransac_threshold": "RANSAC inlier threshold in view pixels",
    "ransac": "'opencv' = cv2.findHomography per pair, as published; 'native' = "
              "mimic_fast.find_homographies on each batch (the same method with its own "
              "samples, keyed by --seed); 'auto' = native on a CUDA --device, else opencv "
              "(config.json records which)",
    "patch_size": "patch side in view pixels for the overlap",
    "samples": "sample points per patch for the overlap",
    "overlap_sampling": "'random' as published; 'grid' = a fixed grid of points, so decisions "
                        "near --low / --high do not depend on --seed",
    "low": "keep a pair when LOW < overlap",
    "high": "keep a pair when overlap < HIGH",
    "static_fraction": "static-camera test: reject a pair when this fraction of its inliers "
                       "stands still while H moves them (0 = off, as published; 0.1 suits "
                       "footage from static cameras)",
    "static_min": "the static-camera test needs MORE than this many still matches",
    "seed": "key of the patch-overlap sample points and of --ransac native",
    "jpeg_quality": "JPEG quality of the stored views",
    # how the run is computed (may change between a run and its resumption)
    "engine": "'local' = processes on this machine, 'ray' = a Ray cluster",
    "workers": "local engine processes (1 = in this process)",
    "chunk": "videos and frame folders with more sampled frames are split into work units of "
             "this many, so workers share one long source (0 = never split); the dataset does "
             "not depend on it",
    "ray_address": "Ray cluster address (default: an already started Ray, else a local one)",
    "device": "where the batched stages run (matching, RANSAC with --ransac native, overlap, "
              "SIFT with --sift native): 'cuda' = the GPU (never run on one yet), 'auto' = cpu "
              "until it has",
    "strict": "exit 1 when any input, source or frame failed",
    "retry_failed": "redo the sources an earlier run recorded as failed",
    "progress": "show a progress bar",
}


def _register_mine(subparsers) -> None:
    import dataclasses

    from mimic_fast.cli import add_dataclass_options
    from mimic_fast.mining import config

    p = subparsers.add_parser(
        "mine", help="mine multi-view pairs from videos, frame folders, image groups, CSV lists",
        description="Mine image pairs (SIFT, ratio test, RANSAC homography, patch overlap) "
                    "into WebDataset shards. Resumable: rerun the same command to continue.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="videos, folders (searched), CSV lists of path1,path2 rows")
    p.add_argument("--out", type=Path, required=True,
                   help="dataset folder (new, empty, or a dataset to continue)")

    def every_field(cls) -> dict[str, str]:  # every mining setting can be set
        return {f.name: MINE_HELP[f.name] for f in dataclasses.fields(cls)}

    add_dataclass_options(
        p.add_argument_group("what is mined (recorded in config.json)"), config.MineConfig,
        every_field(config.MineConfig),
        choices={"kind": config.KINDS, "walk": config.WALKS, "group_keep": config.GROUP_KEEP,
                 "resize": config.RESIZE_MODES, "interpolation": config.INTERPOLATIONS,
                 "ransac": config.RANSACS, "sift": config.SIFTS, "decoder": config.DECODERS,
                 "overlap_sampling": config.OVERLAP_SAMPLINGS})
    add_dataclass_options(p.add_argument_group("how it is computed"), config.RunOptions,
                          every_field(config.RunOptions),
                          choices={"engine": config.ENGINES, "device": config.DEVICES})
    p.set_defaults(func=cmd_mine)


def _dataclass_from_args(cls, args: argparse.Namespace):
    import dataclasses

    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def cmd_mine(args: argparse.Namespace) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.device import StageServerGone
    from mimic_fast.mining.run import DatasetMismatch, format_summary, mine

    try:
        summary = mine(args.inputs, args.out, _dataclass_from_args(MineConfig, args),
                       _dataclass_from_args(RunOptions, args))
    except (ValueError, DatasetMismatch, NotImplementedError) as exc:
        return user_error(args, exc)
    except StageServerGone as exc:
        return user_error(args, f"{exc}: mining stopped; what landed is kept, and the same "
                                "command continues", 1)
    print(format_summary(summary))
    print(next_steps(args.out, summary))
    if args.strict and (summary["errors"] or summary["sources_failed"]):
        return 1
    return 0


def next_steps(out: Path, summary: dict) -> str:
    """The closing lines of ``mine``: where the dataset is and what to run next."""
    lines = [f"dataset: {out} ({summary['accepted']} pairs)"]
    if summary["accepted"]:
        lines += ["next:",
                  f"  mimic-fast report {out}        # a page with every pair, in a browser",
                  f"  mimic-fast train --data {out} --model croco_test --out runs/first "
                  "--max-steps 300 --batch-size 8"]
    else:
        lines.append("no pairs were kept: see the rejection reasons above (and "
                     "summary.json for every error)")
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.verify import verify

    try:
        report = verify(args.dataset)
    except DataError as exc:
        return user_error(args, exc)
    for line in report.problems:
        print(f"DAMAGED {line}")
    print(report.summary())
    return 0 if report.ok else 1


def cmd_pack(args: argparse.Namespace) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.pack import PackError, pack

    try:
        summary = pack(args.dataset, args.out, args.pairs_per_shard)
    except (PackError, DataError, ValueError, FileNotFoundError) as exc:
        return user_error(args, exc)
    print(f"packed {summary['accepted']} pairs into {len(summary['shards'])} shards in "
          f"{args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.mimic_layout import export_mimic

    try:
        n = export_mimic(args.dataset, args.out, args.csv)
    except (DataError, FileNotFoundError, ValueError) as exc:
        return user_error(args, exc)
    print(f"exported {n} pairs to {args.out} ({args.csv})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.dataset.mimic_layout import import_mimic
    from mimic_fast.mining.run import format_summary

    try:
        summary = import_mimic(args.root, args.out, args.csv)
    except (FileNotFoundError, ValueError) as exc:
        return user_error(args, exc)
    print(format_summary(summary))
    return 0
