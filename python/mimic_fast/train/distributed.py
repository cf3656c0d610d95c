"""Process group and device from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class NoGpu(ValueError):
    """``--device cuda`` on a machine where torch sees no CUDA GPU (a usage error)."""


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise NoGpu("--device cuda was asked for but torch sees no CUDA GPU "
                    f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); "
                    "use --device cpu or auto")
    return name


def setup(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun (NCCL on CUDA, gloo on CPU)."""
    device = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=dev if device == "cuda" else None)
        log.info("rank %d of %d (%s, local rank %d)", rank, world, backend, local_rank)
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def all_gather_object(obj, info: DistInfo) -> list:
    if info.world == 1:
        return [obj]
    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
