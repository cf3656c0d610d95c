"""Processes of a test's subprocess tree: start a command in its own session, find what is
left of the session after its leader is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def start_session(args: list[str], **kw) -> subprocess.Popen:
    """``args`` as the leader of a new session (its descendants share the session id)."""
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    members = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != b"Z":  # fields: state ppid pgrp session
            members.append(int(d.name))
    return members


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def kill_leader_and_wait(proc: subprocess.Popen, timeout: float) -> list[int]:
    """SIGKILL the session leader ``proc``; the members of its session still alive after
    ``timeout`` seconds (none: they all ended with it)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not session_members(proc.pid), timeout)
    return session_members(proc.pid)


def kill_session(sid: int) -> None:
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
