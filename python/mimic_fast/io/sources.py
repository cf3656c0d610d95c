"""Finding the sources (the unit of mining work) under the inputs a user names.

A source is one video file, one folder of ordered frames, one folder of unordered views of a
scene (a group), or one CSV list of candidate pairs. ``discover`` turns inputs into a sorted,
de-duplicated list of sources plus {input, error} records for inputs that resolve to nothing.

``kind="auto"``: a file with a video extension is a video, a ``.csv`` is a list, any other
file is tried as a video (so a non-video file is reported, not ignored); a folder is searched
recursively, every video, CSV and image-holding folder in it becoming a source. A folder that
holds images is ONE frame folder: its subfolders (thumbnails, masks, ...) are not searched;
videos and CSVs beside its images are still sources. With an explicit kind, files and folders
are taken as that kind (folders are searched for that kind's sources; for frames and group,
again without descending into a folder that holds images).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mimic_fast.io.images import is_image_path
from mimic_fast.io.video import is_video_path

KINDS = ("auto", "video", "frames", "group", "list")


@dataclass(frozen=True, order=True)
class Source:
    path: str  # absolute, normalised
    kind: str  # "video" | "frames" | "group" | "list"

    @property
    def id(self) -> str:
        """16 hex digits naming this source in sample keys; a function of kind and path."""
        return hashlib.sha1(f"{self.kind}:{self.path}".encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "id": self.id}


def discover(inputs: list[str | Path], kind: str = "auto") -> tuple[list[Source], list[dict]]:
    """Sources under ``inputs`` (sorted by path, then kind; duplicates removed) and errors."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    found: set[Source] = set()
    errors: list[dict] = []
    for raw in inputs:
        path = Path(os.path.abspath(os.fspath(raw)))
        if not path.exists():
            errors.append({"input": str(raw), "error": "no such file or folder"})
            continue
        here = _from_file(path, kind) if path.is_file() else _from_folder(path, kind)
        if not here:
            errors.append({"input": str(raw), "error": f"no {_what(kind)} found"})
        found.update(here)
    return sorted(found), errors


def _from_file(path: Path, kind: str) -> list[Source]:
    if kind == "auto":
        kind = "list" if path.suffix.lower() == ".csv" else "video"
    if kind in ("frames", "group"):
        return []  # those are folders
    return [Source(str(path), kind)]


def _from_folder(root: Path, kind: str) -> list[Source]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files = sorted(filenames)
        has_images = any(is_image_path(f) for f in files)
        if kind in ("auto", "frames", "group") and has_images:
            out.append(Source(dirpath, "frames" if kind == "auto" else kind))
            dirnames.clear()  # a folder of images is one source, not a tree of them
        for f in files:
            p = os.path.join(dirpath, f)
            if kind in ("auto", "video") and is_video_path(f):
                out.append(Source(p, "video"))
            elif kind in ("auto", "list") and f.lower().endswith(".csv"):
                out.append(Source(p, "list"))
    return out


def _what(kind: str) -> str:
    return {"auto": "video, image folder or CSV", "video": "video", "frames": "image folder",
            "group": "image folder", "list": "CSV"}[kind]
