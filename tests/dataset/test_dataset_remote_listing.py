"""A streamed remote dataset folder is read as a local one: exactly the shards its index.jsonl
lists (a stray shard is ignored with a warning, a missing one is an error)."""

from __future__ import annotations

import logging

import pytest

from mimic_fast.dataset.errors import DataError
from mimic_fast.dataset.paths import list_stream_urls

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def remote(mined_tum):
    fs = fsspec.filesystem("memory")
    root = "/remote-ds"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    for p in list(mined_tum.glob("*.tar")) + [mined_tum / "index.jsonl"]:
        fs.pipe(f"{root}/{p.name}", p.read_bytes())
    yield fs, root
    fs.rm(root, recursive=True)


def test_a_stray_shard_is_ignored(remote, caplog):
    fs, root = remote
    fs.pipe(f"{root}/pairs-000099.tar", b"left by a killed run")
    with caplog.at_level(logging.WARNING):
        urls = list_stream_urls(f"memory://{root}")
    assert urls and not any("000099" in u for u in urls)
    assert "not in its index.jsonl" in caplog.text


def test_a_missing_listed_shard_is_an_error(remote):
    fs, root = remote
    shard = next(n for n in fs.ls(root, detail=False) if n.endswith(".tar"))
    fs.pipe(f"{root}/pairs-000099.tar", fs.cat(shard))  # not listed: does not stand in for it
    fs.rm(shard)
    with pytest.raises(DataError, match="lacks 1 shard"):
        list_stream_urls(f"memory://{root}")
