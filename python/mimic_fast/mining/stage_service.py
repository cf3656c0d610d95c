"""Stage servers of the local engine: one process per GPU holds the device and runs the
batched stages (a :class:`~mimic_fast.mining.stage_server.StageServer`) for every pool worker.

Without them, ``--device cuda --workers 16`` gave each of the 16 workers a CUDA context of
its own and its own small batches: 16 processes time-sliced one GPU (no MPS) with tiny kernels
and ~16 contexts of memory. With them (what ``--engine ray`` does with an actor per GPU), the
workers decode and run OpenCV's SIFT on their cores and send matching, RANSAC, overlap and the
native SIFT to a server, whose coalescer makes one batch of the requests of many workers.

- :class:`StageServers` (in the driver, :func:`mimic_fast.mining.engines.run_local`): starts
  one server process per visible GPU (at most one per worker), each pinned to its GPU with
  ``CUDA_VISIBLE_DEVICES`` (the native kernels run on the current device, so a process holds
  exactly one), from the pool's forkserver context: CUDA is initialised in the server only,
  never in the driver or the forkserver. A server that cannot start is a one-line error
  (:class:`StageServerUnavailable`). Closed (terminated) by the driver when the pool ends;
  it ends by itself when the driver dies (:mod:`mimic_fast._lifeline`).
- Transport: :mod:`multiprocessing.connection` on a Unix socket (in Linux's abstract
  namespace: no file to clean up) with a random key per run; in the server one thread per
  connection calls the server's blocking methods (its coalescer batches across them). A
  worker holds a :class:`StageClient` over a :class:`ServerConnection`: exceptions raised
  in the server are raised in the worker; a server that is gone raises
  :class:`~mimic_fast.mining.device.StageServerGone` at once (never a hang), which stops the
  run (recording the unit's source as failed would make a plain rerun skip it).

:data:`SERVED_DEVICES` says which stage devices get servers: ``("cuda",)``; tests add
``"cpu"`` to run the same code path without a GPU. Not served: one worker (the serial engine
runs in the driver, which then holds the device), and ``--decoder dali`` (its workers hold
the GPU for their decoders; see :func:`served`).
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Client, Listener
from typing import Any

from mimic_fast._lifeline import exit_with
from mimic_fast.mining.device import StageServerGone, is_cuda

SERVED_DEVICES = ("cuda",)  # stage devices whose stages run in server processes (local engine)
START_SECONDS = 300.0  # a server not ready by then is reported as unable to start
_METHODS = ("evaluate", "sift", "stats")  # what a connection may call


class StageServerUnavailable(ValueError):
    """A stage server could not start (a ValueError: the command line reports it in one line,
    as it does ``--device cuda``'s other refusals)."""


def served(device: str | None, decoder: str = "opencv") -> bool:
    """Whether a pool run with stage device ``device`` sends its stages to servers. Not with
    ``--decoder dali``: its workers decode on the GPU themselves (nvJPEG / NVDEC with
    ``--device cuda``, never a silent switch to DALI's CPU decoders), so they hold the GPU and
    run their stages there as well."""
    return (device is not None and str(device).split(":")[0] in SERVED_DEVICES
            and decoder != "dali")


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, and what a worker needs to reach it."""

    address: str
    authkey: bytes
    device: str  # the stage device as the workers see it ("cuda"): their SIFT batch size
    label: str  # for messages: "GPU 0", "cpu"


class ServerConnection:
    """A worker's connection to one server (opened at its first call): ``.evaluate(...)``,
    ``.sift(...)``, ``.stats()`` call the server's methods of those names."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._conn = None
        self._lock = threading.Lock()  # one call at a time on the connection

    def evaluate(self, *args: Any) -> Any:
        return self._call("evaluate", args)

    def sift(self, *args: Any) -> Any:
        return self._call("sift", args)

    def stats(self) -> dict:
        return self._call("stats", ())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _call(self, method: str, args: tuple) -> Any:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = Client(self.endpoint.address, family="AF_UNIX",
                                        authkey=self.endpoint.authkey)
                self._conn.send((method, args))
                ok, value = self._conn.recv()
            except (OSError, EOFError) as exc:  # refused, reset, closed: the server is gone
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise StageServerGone(f"the stage server ({self.endpoint.label}) is gone "
                                      f"({type(exc).__name__})") from None
        if not ok:
            raise value
        return value


class StageServers:
    """The stage server processes of one pool run (a context manager: closed at its end).

    ``device``: the stage device ("cuda": one server per visible GPU, at most ``limit``;
    "cpu": one). ``ctx``: the multiprocessing context to start them from (the pool's
    forkserver). ``driver``: a :func:`mimic_fast._lifeline.process_identity`, whose end ends
    the servers."""

    def __init__(self, ctx, device: str, limit: int, driver: tuple):
        self.device = str(device)
        self.endpoints: list[Endpoint] = []
        self._processes: list = []
        self._folder = None  # where the sockets are where there is no abstract namespace
        authkey = os.urandom(32)
        run = uuid.uuid4().hex
        try:
            for k, (label, pin) in enumerate(_server_plan(self.device, limit)):
                endpoint = Endpoint(self._address(run, k), authkey, self.device.split(":")[0],
                                    label)
                ready_in, ready_out = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_serve, name=f"mimic-fast-stages-{k}",
                                      args=(endpoint, pin, driver, ready_out), daemon=True)
                process.start()
                ready_out.close()
                self.endpoints.append(endpoint)
                self._processes.append((process, ready_in))
            for endpoint, (process, ready_in) in zip(self.endpoints, self._processes):
                _wait_ready(endpoint, process, ready_in, self.device)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "StageServers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stats(self) -> list[dict | None]:
        """Each server's :meth:`~mimic_fast.mining.stage_server.StageServer.stats` (None for
        one that is gone)."""
        out = []
        for endpoint in self.endpoints:
            connection = ServerConnection(endpoint)
            try:
                out.append(connection.stats())
            except StageServerGone:
                out.append(None)
            finally:
                connection.close()
        return out

    def exit_codes(self) -> list[int | None]:
        """Each server's exit code (None: running)."""
        return [process.exitcode for process, _ in self._processes]

    def pids(self) -> list[int]:
        return [process.pid for process, _ in self._processes]

    def close(self) -> None:
        """End the servers (the workers are done with them); their exit codes stay."""
        for process, ready_in in self._processes:
            ready_in.close()
            if process.exitcode is None:
                process.terminate()
        for process, _ in self._processes:
            process.join(10)
            if process.exitcode is None:
                process.kill()
                process.join()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _address(self, run: str, k: int) -> str:
        if sys.platform.startswith("linux"):  # abstract namespace: nothing on disk
            return f"\0mimic-fast-stages-{run}-{k}"
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="mimic-fast-stages-")
        return os.path.join(self._folder, f"{k}.sock")


def _server_plan(device: str, limit: int) -> list[tuple[str, str | None]]:
    """(label, CUDA_VISIBLE_DEVICES for the server or None) of each server to start: one per
    visible GPU for "cuda" (at most ``limit``), one for anything else."""
    if not is_cuda(device):
        return [(device, None)]
    if ":" in device:  # one GPU named: that one, alone
        k = int(device.split(":")[1])
        return [(f"GPU {k}", _visible_gpu(k))]
    return [(f"GPU {k}", _visible_gpu(k)) for k in range(max(1, min(_gpu_count(), limit)))]


def _gpu_count() -> int:
    """GPUs this process sees (the CUDA runtime's count, which creates no context)."""
    import mimic_fast

    return int(mimic_fast.build_config().get("cuda_devices", 0))


def _visible_gpu(k: int, visible: str | None = None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value that shows a process only the k-th GPU this process
    sees: the k-th entry of this process's own list when it has one (indices or UUIDs)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if visible is None or not visible.strip():
        return str(k)
    return [v.strip() for v in visible.split(",")][k]


def _wait_ready(endpoint: Endpoint, process, ready_in, device: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    why = f"not ready after {START_SECONDS:.0f} s"
    while time.monotonic() < deadline:
        if ready_in.poll(0.2):
            try:
                why = ready_in.recv()
            except EOFError:
                why = "it exited"
            if why is None:
                return
            break
        if process.exitcode is not None:
            why = f"it exited with code {process.exitcode}"
            break
    raise StageServerUnavailable(f"--device {device}: the stage server for {endpoint.label} "
                                 f"could not start: {why}")


def _serve(endpoint: Endpoint, pin: str | None, driver: tuple, ready) -> None:
    """A server process: the stages on its device, for every connection, until terminated
    (or its driver is gone)."""
    exit_with(driver)
    try:
        if pin is not None:  # before CUDA is initialised: this process sees its GPU only
            os.environ["CUDA_VISIBLE_DEVICES"] = pin
        from mimic_fast.mining.stage_server import StageServer

        # one CPU thread: the workers have the cores; the server's work is on its device
        server = StageServer(endpoint.device, threads=1)
        listener = Listener(endpoint.address, family="AF_UNIX", authkey=endpoint.authkey)
    except BaseException as exc:  # noqa: BLE001 (reported to the driver, in one line)
        text = str(exc).strip().splitlines()
        ready.send(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
        return
    ready.send(None)
    ready.close()
    while True:
        try:
            conn = listener.accept()
        except Exception:  # noqa: BLE001 (a client that failed the handshake; keep serving)
            continue
        threading.Thread(target=_answer, args=(server, conn), daemon=True).start()


def _answer(server, conn) -> None:
    """Serve one connection: (method, args) -> (True, result) or (False, exception)."""
    with conn:
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):  # the worker is done (or gone)
                return
            try:
                if method not in _METHODS:
                    raise ValueError(f"the stage server has no method {method!r}")
                reply = (True, getattr(server, method)(*args))
            except Exception as exc:  # noqa: BLE001 (raised again in the caller)
                reply = (False, _portable(exc))
            try:
                conn.send(reply)  # pickled whole before a byte is sent
            except OSError:
                return
            except Exception as exc:  # noqa: BLE001 (a result that does not pickle)
                conn.send((False, RuntimeError(f"the stage server's reply to {method} could "
                                               f"not be sent: {type(exc).__name__}: {exc}")))


def _portable(exc: Exception) -> Exception:
    """``exc`` as it can travel to the caller (its own type when it pickles, else a
    RuntimeError naming it), with the server's traceback as a note."""
    exc.add_note("in the stage server:\n" + "".join(traceback.format_tb(exc.__traceback__)))
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        portable = RuntimeError(f"{type(exc).__name__}: {exc}")
        portable.__notes__ = list(getattr(exc, "__notes__", []))
        return portable
