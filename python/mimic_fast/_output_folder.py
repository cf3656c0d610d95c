"""One run per output folder: an exclusive lock, and the sweep of dead writers' temporaries.

``mine`` (a dataset folder) and ``train`` (a run folder) hold :class:`FolderLock` on their
output folder for as long as they write to it. The lock is ``flock`` on ``DIR/.mimic-fast.lock``
(which records the holder: pid, host, command, start time): the kernel releases it when the
holder dies however it dies, so a lock left by a killed run is simply taken over, and a second
run started while the first is alive stops at once with a message naming the first. The lock
file is never deleted (deleting it would let two runs lock two different files).

Temporary files (``.NAME.tmp-hHOST-PID-...``, :func:`temporary_name`) belong to the process
PID on the host whose name hashes to HOST (mining workers of a Ray cluster write into one
shared folder from many hosts); :func:`remove_dead_temporaries` deletes only those of this
host whose process is gone: a process on another host cannot be asked, so its temporaries
are left alone (older names without a host count as this host's).

A full disk (or quota) is not a problem of one input: :func:`is_out_of_space` lets the
writers stop the whole run on it, and the CLI says so in one line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import sys
import time
import uuid
from pathlib import Path

LOCK_NAME = ".mimic-fast.lock"
_TEMPORARY = re.compile(r"^\..+\.tmp-(?:h([0-9a-f]{8})-)?(\d+)(?:-[0-9a-f]+)?$")


def host_tag(host: str | None = None) -> str:
    """8 hex digits naming a host in temporary names."""
    return hashlib.sha1((host or socket.gethostname()).encode()).hexdigest()[:8]


def temporary_name(final: Path) -> Path:
    """The sibling of ``final`` that this process writes before renaming it into place."""
    return final.with_name(f".{final.name}.tmp-h{host_tag()}-{os.getpid()}-"
                           f"{uuid.uuid4().hex[:8]}")


class FolderInUse(RuntimeError):
    """Another live process holds the folder; the message names it."""


class FolderLock:
    """``with FolderLock(folder): ...`` holds ``folder`` (created if missing) exclusively."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise FolderInUse(f"{self.folder} is in use by another run ({holder}); wait for it "
                              "to finish or use another folder") from None
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": " ".join(sys.argv)[:500],
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode())
        return f"pid {h['pid']} on {h['host']} since {h['started']}: {h['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def remove_dead_temporaries(*folders: str | Path) -> int:
    """Delete the temporary files in ``folders`` whose writer process is gone; returns how
    many. (Hold the folder's lock: then no other run is writing there.)"""
    n, here = 0, host_tag()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _TEMPORARY.match(p.name)
            if m and m.group(1) in (None, here) and not process_alive(int(m.group(2))):
                p.unlink(missing_ok=True)
                n += 1
    return n


def is_out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def out_of_space_message(exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"no space left on the device{where} ({exc.strerror}); what was finished is kept "
            "and nothing half-written is: free some space (or choose another output folder) "
            "and run the same command again")
