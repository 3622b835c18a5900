"""Worker inventory: each Celery worker reports its devices (name, total and free memory; the
machine's RAM when it has no GPU) when it starts and then every PREFLOOP_WORKER_REPORT_SECONDS,
into a Worker row. The jobs page lists them; the memory check (trainer/memory_check.py) compares
a job's estimate with the devices of the workers that serve the job's queue.

The worker's parent process must not load torch (a forked child would hang,
docs/architecture.md), so GPUs are read with ``nvidia-smi``, not torch.cuda.
"""

import os
import subprocess
import threading
from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from trainer.models import Worker

MIB = 1024**2


def gpu_devices() -> list[dict]:
    """CUDA devices as ``nvidia-smi`` reports them; empty without a driver."""
    query = "--query-gpu=name,memory.total,memory.free"
    try:
        done = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    devices = []
    for index, line in enumerate(done.stdout.strip().splitlines()):
        name, total, free = (part.strip() for part in line.split(","))
        devices.append(
            {
                "name": f"cuda:{index} {name}",
                "kind": "cuda",
                "total_bytes": int(float(total) * MIB),
                "free_bytes": int(float(free) * MIB),
            }
        )
    return devices


def cpu_memory() -> dict:
    """The machine's RAM (Linux /proc/meminfo; os.sysconf elsewhere)."""
    total = free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle}
        total, free = info["MemTotal"], info.get("MemAvailable", info["MemFree"])
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        total = free = pages
    return {"name": "cpu (RAM)", "kind": "cpu", "total_bytes": total, "free_bytes": free}


def device_report() -> list[dict]:
    """This machine's devices: its GPUs, or its RAM when it has none."""
    return gpu_devices() or [cpu_memory()]


def worker_report(*, name: str, queues: list[str], devices: list[dict] | None = None) -> Worker:
    """Record (or refresh) a worker's devices."""
    worker, _ = Worker.objects.update_or_create(
        name=name,
        defaults={
            "queues": sorted(queues),
            "devices": device_report() if devices is None else devices,
            "seen_at": timezone.now(),
        },
    )
    return worker


def live_cutoff():
    """Reports older than three report intervals are a silent worker's."""
    return timezone.now() - timedelta(seconds=3 * settings.PREFLOOP_WORKER_REPORT_SECONDS)


def workers_live() -> QuerySet[Worker]:
    return Worker.objects.filter(seen_at__gte=live_cutoff())


def workers_for_queue(queue: str) -> list[Worker]:
    return [w for w in workers_live() if queue in (w.queues or [])]


def start_reporting(*, name: str, queues: list[str]) -> threading.Thread:
    """Report now, then every PREFLOOP_WORKER_REPORT_SECONDS from a daemon thread."""
    from django.db import close_old_connections

    def loop() -> None:
        stop = threading.Event()
        while True:
            try:
                worker_report(name=name, queues=queues)
            except Exception as exc:  # the database away: try again next time
                print(f"worker inventory: report failed ({exc})", flush=True)
            finally:
                close_old_connections()
            if stop.wait(settings.PREFLOOP_WORKER_REPORT_SECONDS):
                return

    thread = threading.Thread(target=loop, name="prefloop-inventory", daemon=True)
    thread.start()
    return thread


def on_worker_ready(sender=None, **kwargs) -> None:
    """Celery's worker_ready signal (connected in webapp/celery.py)."""
    consumer = getattr(sender, "controller", None) or sender
    queues: list[str] = []
    task_consumer = getattr(getattr(sender, "task_consumer", None), "queues", None)
    if task_consumer:
        queues = [q.name for q in task_consumer]
    elif consumer is not None and getattr(consumer, "app", None) is not None:
        queues = list(consumer.app.amqp.queues.keys())
    start_reporting(name=getattr(sender, "hostname", "worker"), queues=queues)
