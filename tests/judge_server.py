"""The simulated OpenAI-compatible judge server (trainer/loop/judge_server.py) as a separate
process, for the judge tests and the benchmark."""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def judge_server(auth_log: Path | None = None):
    """Yields the base URL (…/v1) of a fresh server; stops it on exit."""
    command = [sys.executable, "-m", "trainer.loop.judge_server", "--port", "0"]
    if auth_log is not None:
        command += ["--auth-log", str(auth_log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
