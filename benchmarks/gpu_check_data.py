"""Training data for gpu_check.sh: the TUM frames of ../shared/data mined, then their pairs
repeated (keys renamed) into one shard of at least --pairs pairs, so a GPU batch of 128 fits.

    python benchmarks/gpu_check_data.py OUT [--pairs 264]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--pairs", type=int, default=264)
    args = ap.parse_args()

    from mimic_fast.dataset.reader import iter_samples
    from mimic_fast.dataset.writer import ShardWriter
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import mine

    with tempfile.TemporaryDirectory() as tmp:
        mined = Path(tmp) / "tum"
        mine([SHARED / "video/tum_freiburg_frames"], mined, MineConfig(kind="frames"),
             RunOptions(progress=False))
        samples = [(s.key, {"0.jpg": s.jpeg1, "1.jpg": s.jpeg2}) for s in iter_samples(mined)]
    if not samples:
        print("no pairs mined from the TUM frames", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(args.out / "pairs-000000.tar")
    copies = -(-args.pairs // len(samples))
    for r in range(copies):
        for key, members in samples:
            writer.add(f"{key}-r{r:03d}", members)
    writer.commit()
    print(f"{copies * len(samples)} pairs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
