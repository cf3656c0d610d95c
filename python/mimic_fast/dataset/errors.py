"""Errors of reading a pair dataset."""

from __future__ import annotations


class DataError(RuntimeError):
    """A dataset that cannot be read; the message names the path and what is wrong."""


class DamagedData(DataError):
    """Data that differs from what its writer recorded (a damaged tar header, a truncated
    shard, bytes that do not match their hash): never read silently. ``lost``: how many
    recorded pairs it costs, when known."""

    def __init__(self, message: str, lost: int | None = None):
        super().__init__(message)
        self.lost = lost
