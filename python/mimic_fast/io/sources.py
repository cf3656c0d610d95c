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

``group_by`` (kind "group"): one flat folder holds many scenes, told apart by the file name
(how the MIMIC authors grouped street-view images by target id): each value of the regular
expression's first capture group is a source of its own; images that match no group are
reported, not silently dropped.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mimic_fast.io.images import is_image_path
from mimic_fast.io.video import is_video_path

KINDS = ("auto", "video", "frames", "group", "list")


@dataclass(frozen=True, order=True)
class Source:
    path: str  # absolute, normalised
    kind: str  # "video" | "frames" | "group" | "list"
    group: str | None = None  # --group-by: the capture group's value (the folder's images
    # whose name gives it); None: the whole folder

    @property
    def id(self) -> str:
        """16 hex digits naming this source in sample keys; a function of kind, path (and
        group)."""
        name = f"{self.kind}:{self.path}" + ("" if self.group is None else f"#{self.group}")
        return hashlib.sha1(name.encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        d = {"path": self.path, "kind": self.kind, "id": self.id}
        return d if self.group is None else {**d, "group": self.group}


def check_group_by(pattern: str, kind: str) -> re.Pattern:
    """The compiled --group-by pattern; ValueError (one line) when it cannot be used."""
    if kind != "group":
        raise ValueError(f"--group-by needs --kind group (got --kind {kind})")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--group-by {pattern!r} is not a regular expression: {exc}") from None
    if regex.groups < 1:
        raise ValueError(f"--group-by {pattern!r} has no capture group: put the part of the "
                         "file name that names the group in parentheses")
    return regex


def group_of(name: str, regex: re.Pattern) -> str | None:
    """The group a file name belongs to (the first capture group of the first match)."""
    m = regex.search(name)
    return None if m is None or m.group(1) is None else m.group(1)


def group_members(folder: str, pattern: str) -> dict[str | None, list[Path]]:
    """A folder's images (:func:`mimic_fast.io.frames.list_images` order) by their
    --group-by group (None: those of no group). Listed and matched once per folder and
    pattern while the folder is unchanged, not once per group: a flat folder of 100,000
    street-view images holds thousands of groups."""
    return _group_members(folder, pattern, os.stat(folder).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _group_members(folder: str, pattern: str, _mtime: int) -> dict[str | None, list[Path]]:
    from mimic_fast.io.frames import list_images

    regex = re.compile(pattern)
    members: dict[str | None, list[Path]] = {}
    for f in list_images(folder):
        members.setdefault(group_of(f.name, regex), []).append(f)
    return members


def discover(inputs: list[str | Path], kind: str = "auto",
             group_by: str | None = None) -> tuple[list[Source], list[dict]]:
    """Sources under ``inputs`` (sorted by path, kind, group; duplicates removed) and
    errors: {input, error} for inputs that resolve to nothing, {input, error, files} for a
    folder's images that match no --group-by group."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    regex = None if group_by is None else check_group_by(group_by, kind)
    found: set[Source] = set()
    errors: list[dict] = []
    for raw in inputs:
        path = Path(os.path.abspath(os.fspath(raw)))
        if not path.exists():
            errors.append({"input": str(raw), "error": "no such file or folder"})
            continue
        here = _from_file(path, kind) if path.is_file() else _from_folder(path, kind)
        if regex is not None:
            here = _split_groups(here, regex, errors)
        if not here:
            errors.append({"input": str(raw), "error": f"no {_what(kind)} found"})
        found.update(here)
    return sorted(found, key=lambda s: (s.path, s.kind, s.group or "")), errors


def _split_groups(folders: list[Source], regex: re.Pattern, errors: list[dict]) -> list[Source]:
    out = []
    for folder in folders:
        members = group_members(folder.path, regex.pattern)
        unmatched = members.get(None, [])
        if unmatched:
            errors.append({"input": folder.path, "files": len(unmatched),  # not a failed source
                           "error": f"{len(unmatched)} images match no --group-by group (e.g. "
                                    f"{unmatched[0].name}); they are not mined"})
        groups = sorted(g for g in members if g is not None)
        out += [Source(folder.path, "group", g) for g in groups]
    return out


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
