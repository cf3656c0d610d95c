"""Helpers for input-safety tests: crafted image headers, and running a call that might hang
or eat the memory (a FIFO, /dev/zero) where it can only fail the test."""

from __future__ import annotations

import contextlib
import json
import signal
import struct
import subprocess
import sys
import zlib


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (valid IHDR and IEND, a token IDAT)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def bmp_header_only(w: int, h: int) -> bytes:
    """A BMP that claims w x h 24-bit pixels, and no pixel data (PIL reads its header)."""
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40, 0, 0, 14 + 40) + dib


def radiance_header_only(w: int, h: int) -> bytes:
    """A Radiance HDR header that claims w x h pixels, and no pixel data."""
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode()


@contextlib.contextmanager
def time_limit(seconds: int):
    """TimeoutError instead of a hang in a blocking system call (opening a FIFO)."""
    def fail(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
{code}
"""


def run_limited(code: str, timeout: int = 60, memory: int = 3 << 30) -> dict:
    """Run ``code`` (which must print one JSON line last) in a fresh interpreter with at most
    ``memory`` bytes of address space and ``timeout`` seconds; returns the JSON, or
    {"crashed": why} when it hung, ran out of memory or died."""
    script = _CHILD.format(limit=memory, code=code)
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"crashed": f"still running after {timeout} s"}
    if proc.returncode != 0:
        return {"crashed": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
    return json.loads(proc.stdout.splitlines()[-1])

