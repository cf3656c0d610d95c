"""One run per dataset folder (a lock), dead writers' temporaries swept, a full disk stops the
run with one line and leaves nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mimic_fast._output_folder import LOCK_NAME, FolderLock, host_tag, temporary_name
from mimic_fast.cli import main
from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine

QUIET = RunOptions(progress=False)

# A mining run that pauses 3 s after each source lands: long enough to start a second run.
SLOW_MINE = """
import sys, time
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine
s = mine(sys.argv[1:-1], sys.argv[-1], MineConfig(), RunOptions(progress=False),
         on_source_done=lambda m: time.sleep(3))
print(s["accepted"])
"""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for k, name in enumerate(("astronaut", "coffee")):
        frames, _ = synthetic.camera_path(synthetic.photo(name), 8, (240, 320), seed=30 + k)
        synthetic.write_frames(frames, root / f"scene{k}")
    return [root / "scene0", root / "scene1"]


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    return int(p.stdout)


def test_a_second_run_into_a_busy_folder_stops_at_once(scenes, tmp_path, capsys):
    out = tmp_path / "ds"
    first = subprocess.Popen([sys.executable, "-c", SLOW_MINE, *map(str, scenes), str(out)],
                             stdout=subprocess.PIPE, text=True)
    try:
        lock = out / LOCK_NAME
        deadline = time.time() + 60
        while not (lock.is_file() and str(first.pid) in lock.read_text()):
            assert time.time() < deadline and first.poll() is None, "first run did not start"
            time.sleep(0.05)
        t = time.time()
        rc = main(["mine", *map(str, scenes), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 3 and time.time() - t < 5
        assert err.count("\n") == 0 and f"pid {first.pid}" in err and "in use" in err, err
        accepted = int(first.communicate(timeout=120)[0].strip())
    finally:
        first.kill()
    assert first.returncode == 0
    # the first run's dataset is whole: every pair of every manifest is in the index
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    manifests = [json.loads(p.read_text()) for p in sorted((out / "_done").glob("*.json"))]
    assert len(index) == accepted == sum(m["accepted"] for m in manifests) > 0
    assert all(m["status"] == "done" and not m["errors"] for m in manifests)


def test_the_lock_of_a_dead_run_is_taken_over(scenes, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "h", "command": "x",
                                             "started": "then"}) + "\n")
    assert mine(scenes[:1], out, MineConfig(), QUIET)["sources_done"] == 1
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_the_lock_is_exclusive_and_released(tmp_path):
    with FolderLock(tmp_path / "f"):
        with pytest.raises(RuntimeError, match="in use by another run"):
            FolderLock(tmp_path / "f").acquire()
    FolderLock(tmp_path / "f").acquire().release()  # free again


def test_only_temporaries_of_dead_writers_are_removed(scenes, tmp_path):
    out = tmp_path / "ds"
    mine(scenes[:1], out, MineConfig(), QUIET)
    dead = [out / f".pairs-000007.tar.tmp-{_dead_pid()}-0123abcd",
            out / "_done" / f".source-000007.json.tmp-{_dead_pid()}-4567cdef"]
    dead.append(out / f".pairs-000008.tar.tmp-h{host_tag()}-{_dead_pid()}-0123abcd")
    alive = [out / f".pairs-000009.tar.tmp-{os.getppid()}-89abcdef",  # pytest's parent lives
             out / f".pairs-000009.tar.tmp-h{host_tag()}-{os.getppid()}-89abcdef",
             # a writer on another host of a cluster cannot be asked whether it lives
             out / f".pairs-000010.tar.tmp-h{host_tag('another-host')}-{_dead_pid()}-0123"]
    for p in dead + alive:
        p.write_bytes(b"partial")
    mine(scenes[:1], out, MineConfig(), QUIET)
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in alive)


def test_temporaries_name_their_host_and_process(tmp_path):
    name = temporary_name(tmp_path / "pairs-000001.tar").name
    assert name.startswith(f".pairs-000001.tar.tmp-h{host_tag()}-{os.getpid()}-")


def _small_tmpfs(path: Path, size: str):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_disk_full_stops_the_run_with_one_line_and_nothing_half_written(scenes, tmp_path,
                                                                         capsys, monkeypatch):
    """On a small tmpfs where the machine allows mounting one (CI runs as root), else with a
    simulated ENOSPC from the shard writer."""
    disk = tmp_path / "disk"
    mounted = _small_tmpfs(disk, "120k")
    if not mounted:
        from mimic_fast.dataset import writer

        add = writer.ShardWriter.add

        def full(self, key, members):  # the second source finds the disk full
            if self.final.name == "pairs-000001.tar":
                raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp))
            return add(self, key, members)
        monkeypatch.setattr(writer.ShardWriter, "add", full)
    try:
        out = disk / "ds"
        rc = main(["mine", *map(str, scenes), "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 4, err
        assert len(err) == 1 and "no space left" in err[0] and "Traceback" not in err[0]
        assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # nothing half-written
        landed = list((out / "_done").glob("*.json"))
        assert mounted or len(landed) == 1  # (on the tmpfs, how far it got depends on sizes)
        for m in landed:  # what landed is whole
            m = json.loads(m.read_text())
            assert m["status"] == "done" and (m["shard"] is None or (out / m["shard"]).is_file())
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # lazy: never left behind
