"""CLI: ``mimic-fast show | stats``: look at a mined dataset (pictures, counts).

Heavy imports (cv2, matplotlib) happen inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("show", help="draw a mined pair with its patch correspondences")
    p.add_argument("dataset", type=Path)
    p.add_argument("key", help="sample key (see index.jsonl)")
    p.add_argument("--out", type=Path, default=Path("pair.png"), help="PNG to write")
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser("stats", help="counts of a mined dataset and an overlap histogram")
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=Path, default=None,
                   help="histogram PNG (default DATASET/overlap_hist.png)")
    p.set_defaults(func=cmd_stats)


def cmd_show(args: argparse.Namespace) -> int:
    from mimic_fast.dataset.errors import DataError
    from mimic_fast.dataset.reader import read_sample
    from mimic_fast.viz.correspondences import draw_correspondences, save_png

    try:
        s = read_sample(args.dataset, args.key)
    except (KeyError, FileNotFoundError, DataError) as exc:
        print(f"mimic-fast show: error: {exc.args[0]}", file=sys.stderr)
        return 2
    m = s.meta
    title = (f"{Path(m['source']).name} frames {m['frames'][0]}-{m['frames'][1]}: overlap "
             f"{m['overlap']:.3f}, {len(m['correspondences'])} patch pairs")
    img = draw_correspondences(s.view1, s.view2, m["correspondences"],
                               patch_size=m["patch_size"], title=title)
    print(f"wrote {save_png(img, args.out)}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from mimic_fast.dataset.reader import read_index, read_summary
    from mimic_fast.dataset.schema import DONE_DIR
    from mimic_fast.mining.run import format_summary
    from mimic_fast.viz.histogram import overlap_histogram

    try:
        summary, rows = read_summary(args.dataset), read_index(args.dataset)
    except FileNotFoundError as exc:
        print(f"mimic-fast stats: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    cands = []
    for p in sorted((args.dataset / DONE_DIR).glob("source-*.json")):
        cands += json.loads(p.read_text())["candidate_overlaps"]
    acc = np.array([r["overlap"] for r in rows], float)
    if len(acc):
        print(f"overlap of accepted pairs: mean {acc.mean():.3f}, min {acc.min():.3f}, "
              f"max {acc.max():.3f}")
    mining = json.loads((args.dataset / "config.json").read_text()).get("mining", {})
    out = args.out or args.dataset / "overlap_hist.png"
    overlap_histogram(np.array(cands, float), acc, out, mining.get("low", 0.5),
                      mining.get("high", 0.75), title=f"{args.dataset.name}: patch overlap")
    print(f"wrote {out}")
    return 0
