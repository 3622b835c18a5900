"""Before a job is queued: its peak-memory estimate (trainer/algorithms/memory.py) against the
devices of the workers that serve the training queue (trainer/inventory.py).

A job is refused only when the estimate says it cannot fit on any live worker's largest device;
when the model's files are not on this machine (a hub id), no worker has reported, or the job
spreads over several devices (PPO's device_map, an accelerate config), it is not checked and the
launch form says so.
"""

from dataclasses import dataclass, field

from django.conf import settings

from trainer import inventory
from trainer.algorithms.memory import GIB, Estimate, advice, estimate_job, model_shape
from trainer.exceptions import JobError
from trainer.kinds import ACCELERATE_CONFIG


@dataclass
class MemoryView:
    """What the launch form shows and the check decides on."""

    estimate: Estimate | None = None
    device: str = ""  # the largest device of the queue's workers, in words
    capacity_bytes: int | None = None
    unchecked: str = ""  # why there is no verdict
    tips: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool | None:
        if self.estimate is None or self.capacity_bytes is None:
            return None
        return self.estimate.total_bytes <= self.capacity_bytes

    @property
    def capacity_gib(self) -> float | None:
        return None if self.capacity_bytes is None else self.capacity_bytes / GIB


def _largest_device(queue: str) -> tuple[str, int, str] | None:
    best = None
    for worker in inventory.workers_for_queue(queue):
        for device in worker.devices or []:
            total = int(device.get("total_bytes") or 0)
            if best is None or total > best[1]:
                best = (f"{device.get('name', '?')} on {worker.name}", total, device.get("kind"))
    return best


def job_memory_view(*, kind: str, config: dict) -> MemoryView:
    """The estimate for a job's (validated or form) config and the capacity it is held to."""
    view = MemoryView()
    policy = model_shape(config.get("model_name_or_path"))
    if policy is None:
        view.unchecked = (
            "no estimate: the model's files are not on this machine (a hub id, or a path on "
            "the workers only)"
        )
        return view
    reward = model_shape(config.get("reward_model_path") or config.get("ref_model_name_or_path"))
    best = _largest_device(settings.PREFLOOP_TRAINING_QUEUE)
    device_kind = "cuda" if best is None or best[2] == "cuda" else "cpu"
    if str(config.get("device", "auto")).startswith("cpu"):
        device_kind = "cpu"
    view.estimate = estimate_job(kind, config, policy, reward, device=device_kind)
    view.tips = advice(kind, config)
    if config.get(ACCELERATE_CONFIG) or config.get("device_map"):
        view.unchecked = "not checked: the job spreads over several devices"
    elif best is None:
        view.unchecked = (
            f"not checked: no worker serving the {settings.PREFLOOP_TRAINING_QUEUE!r} queue "
            "has reported its devices"
        )
    else:
        view.device, view.capacity_bytes = best[0], best[1]
    return view


def job_memory_check(*, kind: str, config: dict) -> MemoryView:
    """The view, or JobError naming the numbers and what to change when the job cannot fit."""
    view = job_memory_view(kind=kind, config=config)
    if view.fits is False:
        raise JobError(
            f"This job needs about {view.estimate.summary()} at its peak, and the largest "
            f"device of the workers serving the {settings.PREFLOOP_TRAINING_QUEUE!r} queue has "
            f"{view.capacity_gib:.1f} GiB ({view.device}). To fit: " + "; ".join(view.tips) + "."
        )
    return view
