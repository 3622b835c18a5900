"""Labeling while parts fail (issue #13): 64 scripted labelers over HTTP against gunicorn on
PostgreSQL, with a loop enabled, while in turn

- redis:    the broker is stopped for 10 s and started again (a job is launched meanwhile);
- postgres: PostgreSQL is restarted (pg_ctl restart -m fast);
- gunicorn: one gunicorn worker is killed with SIGKILL;
- celery:   the Celery worker is killed with SIGKILL during a training job, then restarted.

Everything runs privately: a PostgreSQL cluster made with initdb under a temporary directory
and a redis-server, each on a free port, plus gunicorn, a Celery worker (solo, gpu+default
queues, as docker-compose runs it) and Celery beat. The machine's shared PostgreSQL and Redis
are never touched. Each scenario gets a fresh project; afterwards the database is checked:
acknowledged answers == stored ones (none lost, none duplicated, no task over its overlap),
and every job ended exactly once (succeeded, or failed with a reason; attempts == 1).

    nice .venv/bin/python bench/faults.py            # all four, about 4 minutes
    nice .venv/bin/python bench/faults.py --only redis,celery

Writes bench/results/faults.md and .json.
"""

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PY = sys.executable
sys.path.insert(0, str(REPO))

from bench.labeling_load import machine, server_env  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on port {port}")


# --- The private services -------------------------------------------------------------------


class Postgres:
    """A private cluster (initdb) on a free port; run as the postgres user when we are root."""

    def __init__(self, root: Path):
        self.dir = root / "pg"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True)

    def start(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if not (initdb and pg_ctl):
            sys.exit("initdb / pg_ctl not found: the postgres scenario needs them")
        self.dir.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run(initdb, "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust")
        self.ctl("start", "-w")

    def ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._run(
            shutil.which("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
            "-o", options, action, *extra,
        )  # fmt: skip

    def restart(self) -> None:
        self.ctl("restart", "-w", "-m", "fast")

    def stop(self) -> None:
        try:
            self.ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/prefloop_faults"


class Redis:
    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or sys.exit("redis-server not found"),
             "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Proc:
    """gunicorn, a Celery worker or beat, logging to a file."""

    def __init__(self, name: str, cmd: list[str], env: dict, logdir: Path):
        self.name, self.cmd, self.env, self.log = name, cmd, env, logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def django_cmd(env: dict, script: str, *args: str) -> dict:
    out = subprocess.run(
        [PY, f"bench/{script}", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"{script} {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- The labelers ---------------------------------------------------------------------------


class Labelers:
    """N labelers, a thread each, at human pace, that keep going through every error and record
    each answer acknowledged and each error with its time."""

    def __init__(self, *, port: int, project: int, tokens: list[str], pause: float):
        self.port, self.project, self.tokens, self.pause = port, project, tokens, pause
        self.acks: list[tuple[float, int]] = []  # (time, annotation id)
        self.errors: list[tuple[float, str]] = []  # (time, "5xx 500" / "client ...")
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(t, i), daemon=True)
            for i, t in enumerate(tokens)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def _run(self, token: str, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        time.sleep(rng.uniform(0, 2 * self.pause))

        def post(path: str, body: dict | None):
            nonlocal conn
            try:
                conn.request("POST", path, body=json.dumps(body) if body else b"", headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.errors.append((time.monotonic(), f"client {type(exc).__name__}"))
                return None, b""

        while not self.stop.is_set():
            status, data = post(f"/api/v1/projects/{self.project}/tasks/next/", None)
            if status != 200:
                if status is not None and status >= 500:
                    self.errors.append((time.monotonic(), f"5xx {status}"))
                time.sleep(0.2)
                continue
            task = json.loads(data)
            time.sleep(rng.expovariate(1 / self.pause))
            answer = {"choice": rng.choice(["a", "b", "tie"]), "time_spent_ms": 900}
            for _ in range(20):  # the same answer again until it is acknowledged or refused
                status, data = post(f"/api/v1/tasks/{task['id']}/annotations/", answer)
                if status == 201:
                    self.acks.append((time.monotonic(), json.loads(data)["id"]))
                    break
                if status == 409 and b"annotation_id" in data:  # stored by an earlier try
                    self.acks.append((time.monotonic(), json.loads(data)["annotation_id"]))
                    break
                if status is not None and status >= 500:
                    self.errors.append((time.monotonic(), f"5xx {status}"))
                elif status is not None:
                    self.errors.append((time.monotonic(), f"submit {status}"))
                    break
                time.sleep(0.2)

    def rate(self, start: float, end: float) -> float:
        return sum(1 for t, _ in self.acks if start <= t < end) / max(1e-9, end - start)


# --- Scenarios ------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, root: Path):
        self.args, self.root = args, root
        self.pg, self.redis = Postgres(root), Redis()
        self.port = free_port()

    def env(self) -> dict:
        env = server_env(self.pg.url)
        env.update(
            CELERY_BROKER_URL=self.redis.url,
            PREFLOOP_VAR_DIR=str(self.root / "var"),
            PREFLOOP_JOB_HEARTBEAT_TIMEOUT="10",
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
        )
        return env

    def up(self) -> None:
        self.pg.start()
        subprocess.run(
            ["psql", f"postgres://postgres@127.0.0.1:{self.pg.port}/postgres", "-qc",
             "CREATE DATABASE prefloop_faults"], check=True,
        )  # fmt: skip
        self.redis.start()
        env = self.env()
        subprocess.run([PY, "manage.py", "migrate", "--verbosity=0"], cwd=REPO, env=env, check=True)
        bin_ = Path(PY).parent
        self.web = Proc(
            "gunicorn",
            [str(bin_ / "gunicorn"), "webapp.wsgi", "-w", str(self.args.workers), "-b",
             f"127.0.0.1:{self.port}", "--worker-class", "gthread", "--threads", "4",
             "--keep-alive", "30", "--log-level", "warning"],
            env, self.root,
        )  # fmt: skip
        self.worker = Proc(
            "worker",
            [PY, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu,default", "--pool=solo",
             "--concurrency=1", "--prefetch-multiplier=1", "--without-gossip",
             "--without-mingle", "--loglevel=WARNING"],
            env, self.root,
        )  # fmt: skip
        self.beat = Proc(
            "beat",
            [PY, "-m", "celery", "-A", "webapp", "beat", "--loglevel=WARNING",
             "-s", str(self.root / "beat-schedule")],
            env, self.root,
        )  # fmt: skip
        for proc in (self.web, self.worker, self.beat):
            proc.start()
        wait_port(self.port)
        from trainer.algorithms.tiny import build_tiny_policy

        self.model = str(build_tiny_policy(self.root / "tiny", pretrain_steps=0))

    def down(self) -> None:
        for proc in (getattr(self, n, None) for n in ("web", "worker", "beat")):
            if proc is not None:
                proc.stop()
        self.redis.stop()
        self.pg.stop()

    def api(self, token: str, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        started = time.monotonic()
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null"), time.monotonic() - started
        finally:
            conn.close()

    def launch(self, token: str, project: int, **config) -> dict:
        config = {"model_name_or_path": self.model, "batch_size": 4, "save_steps": 0,
                  "device": "cpu", **config}  # fmt: skip
        status, body, took = self.api(
            token, "POST", "/api/v1/jobs/", {"kind": "reward", "project": project, "config": config}
        )
        return {"status": status, "id": (body or {}).get("id"), "took_s": round(took, 3)}

    def jobs(self, project: int) -> dict:
        return django_cmd(self.env(), "faults_db.py", "jobs", f"--project={project}")

    def wait_jobs_end(self, project: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.jobs(project)
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in state["jobs"]):
                return state
            if time.monotonic() > deadline:
                return state
            time.sleep(2)

    def scenario(self, name: str) -> dict:
        args, env = self.args, self.env()
        setup = django_cmd(
            env, "labeling_db.py", "setup", f"--name={name}", "--overlap=1",
            f"--tasks={args.tasks}", f"--labelers={args.labelers}",
        )  # fmt: skip
        project = setup["project"]
        admin = django_cmd(
            env, "faults_db.py", "loop", f"--project={project}", f"--model={self.model}"
        )
        token = admin["admin_token"]
        labelers = Labelers(
            port=self.port, project=project, tokens=setup["tokens"], pause=args.pause
        )
        notes: dict = {}
        labelers.start()
        time.sleep(args.baseline)
        fault_start = time.monotonic()
        if name == "redis":
            self.redis.stop()
            time.sleep(1)
            notes["job launched while Redis was down"] = self.launch(token, project, max_steps=2)
            time.sleep(args.outage - 1)
            self.redis.start()
        elif name == "postgres":
            self.pg.restart()
        elif name == "gunicorn":
            children = psutil.Process(self.web.proc.pid).children()
            os.kill(children[0].pid, signal.SIGKILL)
            notes["killed gunicorn worker pid"] = children[0].pid
        elif name == "celery":
            job = self.launch(token, project, max_steps=100_000)
            notes["long job"] = job
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running = [j for j in self.jobs(project)["jobs"] if j["step"] >= 1]
                if running:
                    break
                time.sleep(1)
            notes["job step when killed"] = running[0]["step"] if running else None
            fault_start = time.monotonic()
            os.kill(self.worker.proc.pid, signal.SIGKILL)
            time.sleep(2)
            self.worker.start()
            time.sleep(3)
            notes["job launched after the worker restarted"] = self.launch(
                token, project, max_steps=2
            )
        fault_end = time.monotonic()
        time.sleep(args.after)
        stopped = time.monotonic()  # the rates are read up to here: then the labelers stop
        labelers.finish()
        state = self.wait_jobs_end(project, timeout=args.job_timeout)
        check = django_cmd(env, "labeling_db.py", "check", f"--project={project}")
        return self.summary(
            name, labelers, check, state, notes, fault_start, fault_end, stopped
        )  # fmt: skip

    def summary(self, name, labelers, check, state, notes, fault_start, fault_end, stopped):
        acked = [a for _, a in labelers.acks]
        stored = set(check["annotation_ids"])
        # The rate over the last 6 s before the fault: the labelers have all started by then.
        baseline = labelers.rate(fault_start - 6, fault_start)
        window = 5.0
        recovered = None
        t = fault_end
        while t + window <= stopped:
            if labelers.rate(t, t + window) >= 0.85 * baseline:
                recovered = round(t - fault_end, 1)
                break
            t += 0.5
        lowest = min(
            (labelers.rate(t0, t0 + window) for t0 in _steps(fault_start, stopped - window)),
            default=0.0,
        )
        five = [(t, e) for t, e in labelers.errors if e.startswith("5xx")]
        settle = fault_end + 2.0
        jobs = state["jobs"]
        ended_once = all(
            j["status"] in ("succeeded", "failed", "cancelled") and j["attempts"] <= 1
            and (j["status"] != "failed" or j["error"]) for j in jobs
        )  # fmt: skip
        return {
            "scenario": name,
            "acked": len(set(acked)),
            "stored": len(stored),
            "lost": len(set(acked) - stored),
            "unacknowledged": len(stored - set(acked)),
            "duplicated": check["duplicate_answers"],
            "over_overlap": check["overfilled"],
            "5xx": len(five),
            "5xx_after_fault": sum(1 for t, _ in five if t > settle),
            "client_errors": sum(1 for _, e in labelers.errors if e.startswith("client")),
            "baseline_per_s": round(baseline, 1),
            "lowest_5s_pct": round(100 * lowest / max(baseline, 1e-9)),
            "back_to_speed_s": recovered,
            "fault_s": round(fault_end - fault_start, 1),
            "jobs": jobs,
            "jobs_ended_once": ended_once and bool(jobs or name not in ("redis", "celery")),
            "loop_mark_age_s": state["loop_mark_age_s"],
            # Answers acknowledged per 2 s, from the start of the baseline; the fault's start
            # and end, in seconds from the same origin.
            "timeline": _timeline(labelers, fault_start - self.args.baseline, stopped),
            "fault_at_s": [
                round(self.args.baseline, 1),
                round(fault_end - fault_start + self.args.baseline, 1),
            ],
            "notes": notes,
        }


def _timeline(labelers: Labelers, start: float, end: float, step: float = 2.0) -> list[int]:
    buckets = [0] * int((end - start) // step + 1)
    for t, _ in labelers.acks:
        if start <= t < end:
            buckets[int((t - start) // step)] += 1
    return buckets


def _steps(start: float, end: float, step: float = 0.5):
    t = start
    while t <= end:
        yield t
        t += step


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | fault s | acked | stored | lost | dup | over overlap | 5xx (after) | "
        "client errors | ans/s before | lowest 5 s | back to speed | jobs (status, attempts) |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        jobs = ", ".join(f"{j['status']}/{j['attempts']}" for j in r["jobs"]) or "-"
        back = "-" if r["back_to_speed_s"] is None else f"{r['back_to_speed_s']} s"
        lines.append(
            f"| {r['scenario']} | {r['fault_s']} | {r['acked']} | {r['stored']} | {r['lost']} | "
            f"{r['duplicated']} | {r['over_overlap']} | {r['5xx']} ({r['5xx_after_fault']}) | "
            f"{r['client_errors']} | {r['baseline_per_s']} | {r['lowest_5s_pct']} % | {back} | "
            f"{jobs}{'' if r['jobs_ended_once'] else ' NOT ENDED ONCE'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="redis,postgres,gunicorn,celery")
    parser.add_argument("--labelers", type=int, default=64)
    parser.add_argument("--pause", type=float, default=1.0, help="mean human pause, seconds")
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds before the fault")
    parser.add_argument("--outage", type=float, default=10.0, help="Redis down, seconds")
    parser.add_argument("--after", type=float, default=20.0, help="seconds after the fault")
    parser.add_argument("--job-timeout", type=float, default=120.0)
    parser.add_argument("--out", default=str(RESULTS / "faults"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="prefloop-faults-"))
    os.chmod(root, 0o755)  # noqa: S103 -- the postgres user makes its cluster inside
    bench = Bench(args, root)
    rows = []
    try:
        bench.up()
        for name in args.only.split(","):
            row = bench.scenario(name)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    finally:
        bench.down()
    command = shlex.join(["nice", ".venv/bin/python", "bench/faults.py", *sys.argv[1:]])
    info = machine()
    report = {"command": command, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": info, "settings": vars(args), "scenarios": rows}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = [
        "# Labeling while parts fail",
        "",
        f"`{command}`",
        "",
        f"{report['when']} · {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
        f"shared with other work (1-min load {os.getloadavg()[0]:.1f} at the end) · PostgreSQL "
        f"{info['postgresql']} (a private cluster), Redis, gunicorn ({args.workers} gthread "
        "workers x 4 threads), one Celery worker (solo, gpu+default) and beat, all on this "
        f"machine · {args.labelers} labelers over HTTP at human pace (mean pause "
        f"{args.pause:g} s), {args.baseline:g} s before the fault and {args.after:g} s after "
        "it · the project's loop enabled (every submit marks it due).",
        "",
        table(rows),
        "",
        "acked: answers acknowledged to labelers (201, or 409 naming the stored answer after a "
        "lost reply); stored: annotations in the database; lost = acked but not stored; dup = "
        "two answers of one labeler to one task; 5xx (after): server errors during the whole "
        "run (of them, more than 2 s after the fault ended); client errors: connections reset "
        "or refused; lowest 5 s: the worst 5-second answer rate from the fault on, against the "
        "rate over the 6 s before the fault; back to speed: from the end of the fault until a "
        "5-second window reaches 85 % of that rate; jobs: each job's final status and how many "
        "times it was claimed.",
        "",
        "Answers acknowledged per 2 s (the fault from the first to the second time named):",
        "",
        *[
            f"- {r['scenario']} (fault {r['fault_at_s'][0]}-{r['fault_at_s'][1]} s): "
            f"{' '.join(map(str, r['timeline']))}; {json.dumps(r['notes'], default=str)}"
            for r in rows
        ],
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print()
    print(table(rows))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
