"""Our own loops under `accelerate launch` (RAFT): the few collectives they need.

Without a launcher (WORLD_SIZE unset or 1) every function is the single-process identity, and
torch.distributed is never touched.
"""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


def rank() -> int:
    return int(os.environ.get("RANK") or 0)


def is_main() -> bool:
    return rank() == 0


def setup(device: str) -> str:
    """Join the launcher's process group (gloo on the CPU, NCCL on GPUs) before the first
    collective, and return this process's device: its own GPU (LOCAL_RANK) under a launcher."""
    if world_size() == 1:
        return device
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    return "cpu" if device == "cpu" else str(state.device)


def shard(items: list) -> list:
    """This rank's share (every world_size-th item), in order."""
    return items[rank() :: world_size()]


def gather(items: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank."""
    if world_size() == 1:
        return list(items)
    import torch.distributed as dist

    parts: list = [None] * world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def barrier() -> None:
    if world_size() == 1:
        return
    import torch.distributed as dist

    dist.barrier()
