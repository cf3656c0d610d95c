"""Worker processes end when the process that started the work (the driver) is gone.

Pool workers here start through a forkserver, so their parent is the forkserver, not the
driver; and a forkserver outlives a driver killed with SIGKILL (seen: the forkserver and two
mining workers went on for minutes, writing shards into a folder a rerun was using). Neither
``PR_SET_PDEATHSIG`` nor torch's DataLoader watchdog (which watches the parent) sees the driver
go. So each worker runs a watchdog thread on the driver itself (pid and start time, so a
reused pid does not count) and, when the driver is gone, ends its forkserver and itself.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

from mimic_fast._output_folder import process_alive

POLL_SECONDS = 0.5


Identity = tuple[str, int, str]  # (host, pid, start time)


def process_identity(pid: int | None = None) -> Identity:
    """(host, pid, start time as the kernel records it: "" where there is no /proc)."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            started = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        started = ""
    return socket.gethostname(), pid, started


def driver_gone(driver: Identity) -> bool:
    _, pid, started = driver
    return not process_alive(pid) or (bool(started) and process_identity(pid)[2] != started)


def exit_with(driver: Identity, poll: float = POLL_SECONDS) -> bool:
    """Watch ``driver`` (a :func:`process_identity`) from a daemon thread; when it is gone,
    terminate this process's parent if that is a forkserver the driver started (not the
    driver, not init), then this process. Call it once per worker (pool initializers).
    Returns False (and watches nothing) on another host: a cluster's scheduler (Ray) ends
    the tasks of a dead driver there."""
    if driver[0] != socket.gethostname():
        return False

    def watch() -> None:
        while not driver_gone(driver):
            time.sleep(poll)
        parent = os.getppid()
        if parent not in (driver[1], 1) and _is_forkserver(parent):
            try:
                os.kill(parent, signal.SIGTERM)
            except OSError:
                pass
        os._exit(75)  # EX_TEMPFAIL: nothing of this worker's unfinished work is kept

    threading.Thread(target=watch, name="mimic-fast-lifeline", daemon=True).start()
    return True


def _is_forkserver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"multiprocessing.forkserver" in f.read()
    except OSError:
        return False
