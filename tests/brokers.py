"""A Redis broker of the test's own, that it can stop and start again, and the Celery app
pointed at it (the shared Redis on 6379 is never stopped)."""

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def queue_length(self, queue: str) -> int:
        import redis

        return redis.Redis.from_url(self.url).llen(queue)


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (its producers) at another broker for the block."""
    from webapp.celery import app

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_write_url
    app.conf.broker_write_url = url  # what producers connect to
    reset()
    try:
        yield app
    finally:
        app.conf.broker_write_url = old
        reset()


def own_redis():
    """For a fixture: `yield from own_redis()`."""
    server = RedisServer()
    server.start()
    with celery_broker(server.url):
        yield server
    server.stop()
