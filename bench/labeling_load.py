"""Labeling under load (issue #2): N scripted labelers over HTTP against gunicorn.

Each labeler is its own user with its own token and its own keep-alive connection; it asks
for the next task (POST /api/v1/projects/{id}/tasks/next/), optionally pauses like a fast
human (exponential, mean --pause seconds), and submits a pairwise answer
(POST /api/v1/tasks/{id}/annotations/). Every scenario gets a fresh project of --tasks
imported tasks on a freshly migrated database (PostgreSQL and/or a SQLite file), and is
checked afterwards in the database: acknowledged submits == stored annotations, no task
over-filled, no duplicate (task, labeler).

    .venv/bin/python bench/labeling_load.py --db both --labelers 1,8,32 --duration 20

Writes bench/results/labeling_load.json and .md (with the machine, versions and command).
"""

import argparse
import http.client
import json
import math
import multiprocessing
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PY = sys.executable
PG_BASE = "postgres://postgres@127.0.0.1:5432"
SQLITE_DIR = Path("/tmp/prefloop_bench")


# --- The scripted labeler -------------------------------------------------------------------


@dataclass
class LabelerResult:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # time.monotonic() of each ack
    warm_up_acked: list[int] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    drained: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0


class Labeler:
    def __init__(self, *, port: int, token: str, project: int, pause: float, seed: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        self.project = project
        self.pause = pause
        self.rng = random.Random(seed)
        self.result = LabelerResult()

    def _post(self, path: str, body: dict | None) -> tuple[int, bytes, float]:
        payload = json.dumps(body).encode() if body is not None else b""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.conn.request("POST", path, body=payload, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data, (time.perf_counter() - started) * 1000
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before reading the request:
                # nothing was processed, so sending it again is safe (and the submit endpoint
                # is idempotent anyway).
                self.conn.close()
                self.result.errors["reconnect"] += 1
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _cycle(self, *, pause: bool) -> tuple[float, float | None, int | None] | None:
        """next, pause, submit: (next ms, submit ms, acked annotation id); None when drained."""
        r = self.result
        status, data, next_ms = self._post(f"/api/v1/projects/{self.project}/tasks/next/", None)
        if status == 204:
            return None
        if status != 200:
            r.errors[f"next {status}"] += 1
            return next_ms, None, None
        task = json.loads(data)
        if pause and self.pause:
            time.sleep(self.rng.expovariate(1 / self.pause))
        answer = {"choice": self.rng.choice(["a", "b", "tie"]), "time_spent_ms": 900}
        status, data, submit_ms = self._post(f"/api/v1/tasks/{task['id']}/annotations/", answer)
        if status == 201:
            return next_ms, submit_ms, json.loads(data)["id"]
        if status == 409 and "annotation_id" in json.loads(data):
            r.errors["already answered (acked earlier)"] += 1
        else:
            r.errors[f"submit {status}"] += 1
        return next_ms, submit_ms, None

    def warm_up(self) -> None:
        """One untimed cycle, so every server thread has its database connection and every
        code path has run once before the clock starts."""
        try:
            cycle = self._cycle(pause=False)
            if cycle and cycle[2] is not None:
                self.result.warm_up_acked.append(cycle[2])
        except Exception as exc:
            self.result.errors[f"client {type(exc).__name__}"] += 1

    def run(self, deadline: float) -> LabelerResult:
        r = self.result
        r.started_at = time.monotonic()
        try:
            if self.pause:
                # People do not all click "next" in the same instant: each starts at a random
                # point of its own rhythm. (Released together, all N labelers would queue
                # behind each other once, and that one burst would be the p99.)
                time.sleep(self.rng.uniform(0, 2 * self.pause))
            while time.monotonic() < deadline:
                cycle = self._cycle(pause=True)
                if cycle is None:
                    r.drained = True
                    break
                next_ms, submit_ms, acked = cycle
                r.next_ms.append(next_ms)
                if submit_ms is not None:
                    r.submit_ms.append(submit_ms)
                if acked is not None:
                    r.acked.append(acked)
                    r.acked_at.append(time.monotonic())
        except Exception as exc:  # counted and reported, never hidden
            r.errors[f"client {type(exc).__name__}"] += 1
        finally:
            r.finished_at = time.monotonic()
            self.conn.close()
        return r


def _in_threads(fn, labelers) -> None:
    threads = [threading.Thread(target=fn, args=(lb,)) for lb in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _run_labelers(port, project, tokens, pause, duration, seed, barrier) -> list[LabelerResult]:
    """One client process: a thread per labeler; all processes start the clock together."""
    labelers = [
        Labeler(port=port, token=t, project=project, pause=pause, seed=seed + i)
        for i, t in enumerate(tokens)
    ]
    _in_threads(Labeler.warm_up, labelers)
    if barrier is not None:
        barrier.wait(timeout=300)
    deadline = time.monotonic() + duration
    _in_threads(lambda lb: lb.run(deadline), labelers)
    return [lb.result for lb in labelers]


def _client_process(args, queue) -> None:
    cpu = time.process_time()
    results = _run_labelers(*args)
    queue.put((results, time.process_time() - cpu))


def drive(*, port, project, tokens, pause, duration, client_procs) -> dict:
    """Run the labelers (split over `client_procs` processes) and collect what they saw."""
    wall = time.monotonic()
    shares = [tokens[i::client_procs] for i in range(client_procs)]
    shares = [s for s in shares if s]
    if len(shares) == 1:
        cpu = time.process_time()
        results = _run_labelers(port, project, shares[0], pause, duration, 0, None)
        client_cpu = time.process_time() - cpu
    else:
        ctx = multiprocessing.get_context("fork")
        queue, barrier = ctx.Queue(), ctx.Barrier(len(shares))
        procs = [
            ctx.Process(
                target=_client_process,
                args=((port, project, share, pause, duration, 1000 * i, barrier), queue),
            )
            for i, share in enumerate(shares)
        ]
        for p in procs:
            p.start()
        collected = [queue.get(timeout=duration + 600) for _ in procs]
        for p in procs:
            p.join()
        results = [r for rs, _ in collected for r in rs]
        client_cpu = sum(c for _, c in collected)
    started = min(r.started_at for r in results)
    # Throughput counts the answers acknowledged within the timed window; the last submits
    # after it (a labeler finishes the task it holds) are still checked in the database.
    window = min(duration, max(r.finished_at for r in results) - started)
    in_window = sum(1 for r in results for at in r.acked_at if at - started <= window)
    return {
        "results": results,
        "elapsed": max(r.finished_at for r in results) - started,
        "window": window,
        "in_window": in_window,
        "client_cpu": client_cpu,
        "wall": time.monotonic() - wall,  # warm-up included, as in the CPU figures
    }


# --- Statistics -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[rank], 2)


def summarise(run: dict) -> dict:
    results = run["results"]
    next_ms = [v for r in results for v in r.next_ms]
    submit_ms = [v for r in results for v in r.submit_ms]
    acked = [a for r in results for a in (*r.warm_up_acked, *r.acked)]
    errors = sum((r.errors for r in results), Counter())
    return {
        "annotations": run["in_window"],
        "window_s": round(run["window"], 2),
        "annotations_per_s": round(run["in_window"] / run["window"], 1),
        "next_ms": {f"p{q}": percentile(next_ms, q) for q in (50, 95, 99)},
        "submit_ms": {f"p{q}": percentile(submit_ms, q) for q in (50, 95, 99)},
        "next_calls": len(next_ms),
        "submit_calls": len(submit_ms),
        "errors": dict(errors),
        "drained": sum(r.drained for r in results),
        "client_cpu_pct": round(100 * run["client_cpu"] / run["wall"], 1),
        "_acked": acked,
    }


# --- Databases and servers ------------------------------------------------------------------


def django_cmd(env: dict, *args: str) -> dict:
    out = subprocess.run(
        [PY, "bench/labeling_db.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        sys.exit(f"labeling_db.py {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_database(db: str, run_name: str, log_slow_ms: int = 0) -> str:
    """A freshly migrated database; returns its DATABASE_URL."""
    if db == "postgres":
        import psycopg

        name = f"prefloop_bench_run_{run_name}"
        with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
            if log_slow_ms:
                # Profiling aid: the plan of every statement slower than this goes to the
                # server log, for this database only.
                for setting in (
                    "session_preload_libraries = 'auto_explain'",
                    f"auto_explain.log_min_duration = {int(log_slow_ms)}",
                    "auto_explain.log_analyze = on",
                    "auto_explain.log_nested_statements = on",
                ):
                    conn.execute(f'ALTER DATABASE "{name}" SET {setting}')
        url = f"{PG_BASE}/{name}"
    else:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        path = SQLITE_DIR / f"{run_name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    subprocess.run(
        [PY, "manage.py", "migrate", "--verbosity=0"],
        cwd=REPO,
        env=server_env(url),
        check=True,
    )
    return url


def server_env(database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_LOG_LEVEL="WARNING",
        # Simulated labelers answer flat out, far past a person's rate: no API rate limit.
        PREFLOOP_API_RATE="off",
        DATABASE_URL=database_url,
        PYTHONPATH=str(REPO),
    )
    return env


class Server:
    def __init__(
        self,
        *,
        database_url: str,
        port: int,
        workers: int,
        worker_class: str,
        threads: int,
        extra: str = "",
    ):
        self.cmd = [
            str(Path(PY).parent / "gunicorn"),
            "webapp.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--keep-alive",
            "30",
            "--backlog",
            "256",
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            *shlex.split(extra),
        ]
        self.env = server_env(database_url)
        self.port = port

    def __enter__(self) -> "Server":
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env)
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/projects/")
                if conn.getresponse().status == 401:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"gunicorn exited with {self.proc.returncode}")
            time.sleep(0.1)
        sys.exit("gunicorn did not come up")

    def cpu_seconds(self) -> float:
        try:
            master = psutil.Process(self.proc.pid)
            procs = [master, *master.children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        except psutil.Error:
            return 0.0

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL process (others' work included: a rough gauge)."""
    seconds = {}
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            try:
                times = proc.cpu_times()
                seconds[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
    return seconds


def postgres_cpu_since(before: dict[int, float]) -> float:
    """CPU used since `before` by PostgreSQL processes alive now (new ones count in full)."""
    return sum(now - before.get(pid, 0.0) for pid, now in postgres_cpu().items())


def free_port(preferred: int) -> int:
    for port in range(preferred, 8200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    sys.exit("no free port in 8100-8199")


# --- The benchmark --------------------------------------------------------------------------


def machine() -> dict:
    import django
    import rest_framework

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    pg = subprocess.run(
        ["psql", PG_BASE, "-Atc", "show server_version"], capture_output=True, text=True
    ).stdout.strip()
    import sqlite3

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "gunicorn": subprocess.run(
            [str(Path(PY).parent / "gunicorn"), "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "postgresql": pg,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def run_scenario(*, db, server, args, labelers, pace_name, pause) -> dict:
    name = f"{db}-{labelers}-{pace_name}"
    setup = django_cmd(
        server.env,
        "setup",
        f"--name={name}",
        f"--overlap={args.overlap}",
        f"--tasks={args.tasks}",
        f"--labelers={labelers}",
    )
    load_before = os.getloadavg()
    server_cpu = server.cpu_seconds()
    db_cpu = postgres_cpu() if db == "postgres" else {}
    run = drive(
        port=server.port,
        project=setup["project"],
        tokens=setup["tokens"],
        pause=pause,
        duration=args.duration,
        client_procs=min(args.client_procs, labelers),
    )
    server_cpu = server.cpu_seconds() - server_cpu
    db_cpu = postgres_cpu_since(db_cpu) if db == "postgres" else 0.0
    summary = summarise(run)
    check = django_cmd(server.env, "check", f"--project={setup['project']}")
    acked = summary.pop("_acked")
    summary.update(
        db=db,
        labelers=labelers,
        pace=pace_name,
        overlap=args.overlap,
        server_cpu_pct=round(100 * server_cpu / run["wall"], 1),
        postgres_cpu_pct=round(100 * db_cpu / run["wall"], 1),
        # Web (and, on PostgreSQL, database) CPU per stored annotation: the cost, whatever
        # else the machine was doing.
        cpu_ms_per_annotation=round(1000 * (server_cpu + db_cpu) / max(1, len(acked)), 2),
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
        check={
            "stored": check["annotations"],
            "acked": len(acked),
            "lost": len(set(acked) - set(check["annotation_ids"])),
            "unacknowledged": len(set(check["annotation_ids"]) - set(acked)),
            "acked_twice": len(acked) - len(set(acked)),
            **{
                k: check[k]
                for k in (
                    "overfilled",
                    "overcommitted",
                    "counter_mismatch",
                    "complete_mismatch",
                    "duplicate_answers",
                    "duplicate_leases",
                )
            },
        },
    )
    bad = {k: v for k, v in summary["check"].items() if k not in ("stored", "acked") and v}
    summary["ok"] = not bad and check["annotations"] == len(acked)
    return summary


def fmt_ms(d: dict) -> str:
    return " / ".join("-" if v is None else f"{v:.1f}" for v in d.values())


def table(rows: list[dict]) -> str:
    head = (
        "| db | labelers | pace | answers in window | ann/s | next p50/p95/p99 ms (n) | "
        "submit p50/p95/p99 ms | errors | checks | web CPU % | PG CPU % | client CPU % | "
        "CPU ms/ann | load |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r['db']} | {r['labelers']} | {r['pace']} | {r['annotations']} | "
            f"{r['annotations_per_s']} | {fmt_ms(r['next_ms'])} (n={r['next_calls']}) | "
            f"{fmt_ms(r['submit_ms'])} | "
            f"{sum(r['errors'].values())} | {'ok' if r['ok'] else 'FAILED'} | "
            f"{r['server_cpu_pct']} | {r['postgres_cpu_pct'] if r['db'] == 'postgres' else '-'} | "
            f"{r['client_cpu_pct']} | {r['cpu_ms_per_annotation']} | {r['loadavg_before'][0]} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """Issue #2's targets, met or not, as Markdown lines."""
    lines = ["Targets (issue #2):", ""]
    flat = [r for r in rows if r["db"] == "postgres" and r["pace"] == "flat"]
    if flat:
        best = max(flat, key=lambda r: r["labelers"])
        ok = best["annotations_per_s"] >= 150
        lines.append(
            f"- PostgreSQL flat out at {best['labelers']} labelers >= 150 answers/s: "
            f"{best['annotations_per_s']} ({'met' if ok else 'missed'})"
        )
    for r in rows:
        if r["pace"] == "human" and r["next_ms"]["p99"] is not None and r["labelers"] > 1:
            ok = r["next_ms"]["p99"] < 50
            lines.append(
                f"- {r['db']}, {r['labelers']} labelers at human pace, p99 of next < 50 ms: "
                f"{r['next_ms']['p99']} ms ({'met' if ok else 'missed'})"
            )
    over = sum(r["check"]["overfilled"] for r in rows)
    lines.append(f"- over-filled tasks, all scenarios: {over} ({'met' if not over else 'missed'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--labelers", default="1,8,32", help="comma-separated counts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--pace", choices=["flat", "human", "both"], default="both")
    parser.add_argument("--pause", type=float, default=1.0, help="mean human pause, seconds")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    # gthread keeps connections alive and hands a thread only a request that has arrived;
    # a sync worker (no proxy in front here) sits idle on each client between its connect
    # and its request, and measured half the throughput at 32 labelers.
    parser.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=0, help="tasks per scenario (default 5000)")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes")
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--quick", action="store_true", help="5 s scenarios, 2000 tasks")
    parser.add_argument("--out", default=str(RESULTS / "labeling_load"), help="path stem")
    parser.add_argument("--gunicorn-args", default="", help="more gunicorn arguments")
    parser.add_argument(
        "--pg-log-slow-ms", type=int, default=0, help="log plans of slower statements (PG)"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 5.0)
        args.tasks = args.tasks or 2000
    args.tasks = args.tasks or 5000
    counts = [int(n) for n in args.labelers.split(",")]
    paces = {"flat": 0.0, "human": args.pause}
    if args.pace != "both":
        paces = {args.pace: paces[args.pace]}
    dbs = ["postgres", "sqlite"] if args.db == "both" else [args.db]

    rows = []
    for db in dbs:
        url = fresh_database(db, run_name=db, log_slow_ms=args.pg_log_slow_ms)
        port = free_port(args.port)
        with Server(
            database_url=url,
            port=port,
            workers=args.workers,
            worker_class=args.worker_class,
            threads=args.threads,
            extra=args.gunicorn_args,
        ) as server:
            for pace_name, pause in paces.items():
                for n in counts:
                    row = run_scenario(
                        db=db,
                        server=server,
                        args=args,
                        labelers=n,
                        pace_name=pace_name,
                        pause=pause,
                    )
                    rows.append(row)
                    print(table([row]).splitlines()[-1], flush=True)

    command = shlex.join([".venv/bin/python", "bench/labeling_load.py", *sys.argv[1:]])
    report = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "server": Server(
            database_url="",
            port=args.port,
            workers=args.workers,
            worker_class=args.worker_class,
            threads=args.threads,
            extra=args.gunicorn_args,
        ).cmd,
        "scenarios": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# Labeling under load",
        "",
        f"`{command}`",
        "",
        f"{report['when']} · {report['machine']['nproc']} CPUs ({report['machine']['cpu']}), "
        f"{report['machine']['memory_gib']} GiB · web, database and client on one machine · "
        f"gunicorn `{' '.join(report['server'][1:])}` · overlap {args.overlap} · "
        f"{args.duration:g} s per scenario · human pace = exponential pause, mean {args.pause:g} s,"
        " between next and submit.",
        "",
        table(rows),
        "",
        *targets(rows),
        "",
        "checks: acknowledged submits == stored annotations (none lost, none unacknowledged),"
        " no task over-filled, counters exact, no duplicate (task, labeler). load: 1-min load"
        " average before the scenario.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print()
    print(table(rows))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    if not all(r["ok"] for r in rows):
        sys.exit("some scenario failed its database checks")


if __name__ == "__main__":
    main()
