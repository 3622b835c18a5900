"""Export benchmark: 1,000,000 pairwise annotations in PostgreSQL, exported as JSONL over HTTP.

    .venv/bin/python bench/export.py                   # build (once) and measure
    .venv/bin/python bench/export.py --rebuild         # drop the database and build again
    .venv/bin/python bench/export.py --annotations 20000 --db prefloop_bench_small

Builds the data with COPY (users, a project, prompts, completions, tasks, annotations), starts
gunicorn on it (one sync worker, production settings), warms the worker with an empty export,
then downloads the `preference` JSONL export (three times by default) while sampling the
worker's RSS with psutil. It prints rows/s (median run) and the worker's memory growth,
checks the last download against the summary endpoint (row count and sha256), and writes
bench/results/export.json and export.md.
Targets (issue #3): >= 50,000 rows/s and < 100 MB memory growth.
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORDS = (
    "the model answer explains a clear short helpful reply about python code data river "
    "garden music weather friend question because however simple example better worse "
    "step first second then finally check result value list table number safe kind"
).split()
SEQUENCED = ["auth_user", "annotator_project", "annotator_prompt", "annotator_completion",
             "annotator_task", "annotator_taskcompletion", "annotator_annotation"]  # fmt: skip
TARGET_ROWS_PER_S = 50_000
TARGET_MEMORY_MB = 100


# --- Building the data ----------------------------------------------------------------------


def database_url(db: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{db}"


def ensure_database(db: str, rebuild: bool) -> bool:
    """Create the database if needed; True when it is new (and must be filled)."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if exists and rebuild:
            c.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            exists = None
        if not exists:
            c.execute(f'CREATE DATABASE "{db}"')
    return not exists


def migrate(db: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(db), "DJANGO_DEBUG": "1"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def build(db: str, *, annotations: int, overlap: int, labelers: int, seed: int = 0) -> dict:
    """Fill the database with COPY. Returns the project id and the admin's token."""
    rng = random.Random(seed)
    tasks = annotations // overlap
    now = datetime.now(UTC) - timedelta(days=1)
    token = secrets.token_hex(20)
    with psycopg.connect(database_url(db)) as conn, conn.cursor() as cur:
        user_cols = (
            "id, password, is_superuser, username, first_name, last_name, email, is_staff, "
            "is_active, date_joined"
        )
        with cur.copy(f"COPY auth_user ({user_cols}) FROM STDIN") as copy:
            copy.write_row((1, "!", False, "bench-admin", "", "", "", True, True, now))
            for i in range(labelers):
                copy.write_row((i + 2, "!", False, f"labeler{i}", "", "", "", False, True, now))
        cur.execute(
            "INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, 1, %s)", [token, now]
        )
        cur.execute(
            "INSERT INTO annotator_project (id, name, guidelines, kind, overlap, lease_seconds, "
            "allow_tie, allow_both_bad, ask_strength, wide_lines, likert_points, flags, aspects,"
            " created_by_id, created_at) VALUES (1, 'Export bench', '', 'pairwise', %s, 600, "
            "true, true, true, 'all_pairs', 7, '[]', '[]', 1, %s)",
            [overlap, now],
        )
        with cur.copy(
            "COPY annotator_membership (project_id, user_id, role, created_at) FROM STDIN"
        ) as copy:
            copy.write_row((1, 1, "admin", now))
            for i in range(labelers):
                copy.write_row((1, i + 2, "labeler", now))
        _copy_items(cur, rng, tasks, now)
        _copy_annotations(cur, rng, tasks, overlap, labelers, now)
        for table in SEQUENCED:
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
    with psycopg.connect(database_url(db), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {"project": 1, "token": token}


def _copy_items(cur, rng: random.Random, tasks: int, now) -> None:
    """One prompt per task, two completions each (ids: prompt i -> completions 2i-1, 2i)."""
    with cur.copy(
        "COPY annotator_prompt (id, project_id, text, meta, split, created_at) FROM STDIN"
    ) as copy:
        for i in range(1, tasks + 1):
            split = "eval" if i % 10 == 0 else "train"
            text = f"Question {i}: {sentence(rng, 12)}?"
            copy.write_row((i, 1, text, "{}", split, now))
    with cur.copy(
        "COPY annotator_completion (id, prompt_id, text, source, generation, meta, created_at) "
        "FROM STDIN"
    ) as copy:
        for i in range(1, tasks + 1):
            for j in (0, 1):
                text = sentence(rng, 25) + "."
                copy.write_row((2 * i - 1 + j, i, text, "imported", "{}", "{}", now))
    with cur.copy(
        "COPY annotator_task (id, project_id, prompt_id, kind, priority, overlap, "
        "annotation_count, is_complete, round, meta, created_at) FROM STDIN"
    ) as copy:
        for i in range(1, tasks + 1):
            copy.write_row((i, 1, i, "pairwise", 0, 1, 1, True, i % 5, "{}", now))
    with cur.copy(
        "COPY annotator_taskcompletion (id, task_id, completion_id, position) FROM STDIN"
    ) as copy:
        for i in range(1, tasks + 1):
            copy.write_row((2 * i - 1, i, 2 * i - 1, 0))
            copy.write_row((2 * i, i, 2 * i, 1))


def _copy_annotations(cur, rng, tasks: int, overlap: int, labelers: int, now) -> None:
    """Labelers prefer the first completion 75% of the time; 5% tie, 3% both bad."""
    cols = (
        "id, task_id, labeler_id, kind, verdict, chosen_id, rejected_id, strength, scores, "
        "flags, ranking, notes, shown_order, time_spent_ms, labeler_kind, created_at"
    )
    with cur.copy(f"COPY annotator_annotation ({cols}) FROM STDIN") as copy:
        aid = 0
        for i in range(1, tasks + 1):
            first, second = 2 * i - 1, 2 * i
            shown = f"[{first}, {second}]"
            for labeler in rng.sample(range(2, labelers + 2), overlap):
                aid += 1
                roll = rng.random()
                if roll < 0.05:
                    verdict, chosen, rejected, strength = "tie", None, None, None
                elif roll < 0.08:
                    verdict, chosen, rejected, strength = "both_bad", None, None, None
                else:
                    chosen, rejected = (first, second) if roll < 0.77 else (second, first)
                    verdict, strength = "preferred", rng.randint(1, 3)
                at = now + timedelta(milliseconds=aid)
                row = (aid, i, labeler, "pairwise", verdict, chosen, rejected, strength, "{}",
                       "[]", "[]", "", shown, 4000, "simulated", at)  # fmt: skip
                copy.write_row(row)


# --- Serving and measuring ------------------------------------------------------------------


def start_server(db: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(db),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "DJANGO_HTTPS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [str(gunicorn), "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
               "--timeout", "900", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/api/v1/projects/")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def worker_of(server: subprocess.Popen) -> psutil.Process:
    for _ in range(100):
        children = psutil.Process(server.pid).children()
        if children:
            return children[0]
        time.sleep(0.1)
    raise SystemExit("no gunicorn worker")


def download(port: int, path: str, token: str) -> dict:
    """GET `path`, reading 1 MiB at a time; counts lines and hashes the bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status} {response.read()[:500]!r}")
    digest, size, lines, first_byte = hashlib.sha256(), 0, 0, None
    while chunk := response.read(1 << 20):
        if first_byte is None:
            first_byte = time.perf_counter() - started
        digest.update(chunk)
        size += len(chunk)
        lines += chunk.count(b"\n")
    return {
        "seconds": time.perf_counter() - started,
        "first_byte_seconds": first_byte,
        "bytes": size,
        "rows": lines,
        "sha256": digest.hexdigest(),
        "until": response.getheader("X-Export-Until"),
    }


class RssSampler(threading.Thread):
    def __init__(self, process: psutil.Process, every: float = 0.05):
        super().__init__(daemon=True)
        self.process, self.every = process, every
        self.peak = process.memory_info().rss
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every)


def machine() -> dict:
    load = os.getloadavg()
    return {
        "cpu": platform.processor() or _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "postgres": _postgres_version(),
        "load_average": [round(x, 2) for x in load],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _postgres_version() -> str:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as c:
        return c.execute("SHOW server_version").fetchone()[0]


def measure(args, token: str) -> dict:
    """Start gunicorn, warm it up, download the export `args.runs` times, check the last
    download against the summary endpoint. Rows/s is the median run; memory growth the
    largest over all runs, from the RSS after the warm-up."""
    before = machine()
    server = start_server(args.db, args.port)
    runs = []
    try:
        worker = worker_of(server)
        base = "/api/v1/projects/1/export/?schema=preference&format=jsonl"
        # Warm-up: the same view and code paths, with an `until` before any annotation.
        download(args.port, base + "&until=2000-01-01T00:00:00Z", token)
        baseline = worker.memory_info().rss
        for _ in range(args.runs):
            load = os.getloadavg()[0]
            sampler = RssSampler(worker)
            sampler.start()
            cpu_before = worker.cpu_times()
            result = download(args.port, base, token)
            sampler.stop.set()
            sampler.join()
            cpu_after = worker.cpu_times()
            cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            runs.append({
                "seconds": round(result["seconds"], 2),
                "first_byte_seconds": round(result["first_byte_seconds"], 3),
                "rows_per_second": round(result["rows"] / result["seconds"]),
                "worker_cpu_seconds": round(cpu, 2),
                "worker_rss_peak_mb": round(sampler.peak / 2**20, 1),
                "load_average_1min_at_start": round(load, 2),
            })  # fmt: skip
            print(json.dumps(runs[-1]), flush=True)
        summary_started = time.perf_counter()
        summary = _get_json(args.port, f"/api/v1/projects/1/export/summary/?until="
                                       f"{result['until'].replace('+', '%2B')}", token)  # fmt: skip
        summary_seconds = time.perf_counter() - summary_started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    median = sorted(runs, key=lambda run: run["rows_per_second"])[len(runs) // 2]
    peak = max(run["worker_rss_peak_mb"] for run in runs)
    return {
        "machine_before": before,
        "machine_after": machine(),
        "rows": result["rows"],
        "bytes": result["bytes"],
        "runs": runs,
        "seconds": median["seconds"],
        "first_byte_seconds": median["first_byte_seconds"],
        "rows_per_second": median["rows_per_second"],
        "annotations_per_second": round(args.annotations / median["seconds"]),
        "worker_cpu_seconds": median["worker_cpu_seconds"],
        "worker_rss_baseline_mb": round(baseline / 2**20, 1),
        "worker_rss_peak_mb": peak,
        "worker_memory_growth_mb": round(peak - baseline / 2**20, 1),
        "summary": {k: summary[k] for k in ("rows", "bytes", "sha256", "dropped")},
        "summary_seconds": round(summary_seconds, 2),
        "checksum_matches": summary["sha256"] == result["sha256"]
        and summary["rows"] == result["rows"],
    }


def _get_json(port: int, path: str, token: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status} {response.read()[:500]!r}")
    return json.loads(response.read())


def write_results(args, built: dict, result: dict) -> None:
    met = (
        result["rows_per_second"] >= TARGET_ROWS_PER_S
        and result["worker_memory_growth_mb"] < TARGET_MEMORY_MB
    )
    record = {
        "command": " ".join([".venv/bin/python", "bench/export.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "annotations": args.annotations,
        "overlap": args.overlap,
        "build_seconds": built.get("seconds"),
        "targets": {"rows_per_second": TARGET_ROWS_PER_S, "memory_growth_mb": TARGET_MEMORY_MB},
        "targets_met": met,
        **result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    m = result["machine_before"]
    lines = [
        "# Export benchmark",
        "",
        f"`{record['command']}` — {record['date']}",
        "",
        f"{args.annotations:,} pairwise annotations (overlap {args.overlap}, {args.labelers} "
        f"labelers; 5% tie and 3% both-bad answers, which never become pairs) in PostgreSQL "
        f"{m['postgres']}: one prompt (~90 characters) and two completions (~150 characters) "
        "per task. `preference` schema as JSONL over HTTP from gunicorn (1 sync worker, "
        "DJANGO_DEBUG=0), default majority aggregation; the client reads 1 MiB at a time and "
        "hashes what it reads. "
        + (
            f"Data built with COPY in {built['seconds']} s."
            if built.get("seconds")
            else "Data reused from an earlier build (`--rebuild` builds it again)."
        ),
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| rows written | {result['rows']:,} | |",
        f"| bytes | {result['bytes']:,} | |",
        f"| wall time (median run) | {result['seconds']} s (first byte "
        f"{result['first_byte_seconds']} s) | |",
        f"| **rows/s (median of {len(result['runs'])})** | **{result['rows_per_second']:,}** | "
        f">= {TARGET_ROWS_PER_S:,} |",
        "| rows/s each run (1-min load at its start) | "
        + ", ".join(
            f"{r['rows_per_second']:,} ({r['load_average_1min_at_start']})" for r in result["runs"]
        )
        + " | |",
        f"| annotations/s | {result['annotations_per_second']:,} | |",
        f"| worker CPU (median run) | {result['worker_cpu_seconds']} s = "
        f"{round(result['rows'] / result['worker_cpu_seconds']):,} rows per CPU-second "
        "(does not depend on the machine's load) | |",
        f"| worker RSS after warm-up / peak of all runs | {result['worker_rss_baseline_mb']} / "
        f"{result['worker_rss_peak_mb']} MB | |",
        f"| **worker memory growth** | **{result['worker_memory_growth_mb']} MB** | "
        f"< {TARGET_MEMORY_MB} MB |",
        f"| summary endpoint (count + sha256) | {result['summary_seconds']} s, matches: "
        f"{result['checksum_matches']} | |",
        f"| dropped (counted in the summary) | {result['summary']['dropped']} | |",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}."
        f" Shared with other engineers' work: load average before {m['load_average']}, after "
        f"{result['machine_after']['load_average']} (`uptime` before: `{m['uptime']}`).",
        "",
        f"Targets met: **{met}**.",
        "",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="prefloop_bench_export")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true", help="Drop and rebuild the data.")
    parser.add_argument("--name", default="export", help="Result file name in bench/results.")
    parser.add_argument("--runs", type=int, default=3, help="Downloads to measure (median).")
    args = parser.parse_args()

    built: dict = {}
    if ensure_database(args.db, args.rebuild):
        migrate(args.db)
        started = time.perf_counter()
        built = build(
            args.db, annotations=args.annotations, overlap=args.overlap, labelers=args.labelers
        )
        built["seconds"] = round(time.perf_counter() - started, 1)
        print(f"built {args.annotations:,} annotations in {built['seconds']} s", flush=True)
    with psycopg.connect(database_url(args.db)) as conn:
        token = conn.execute("SELECT key FROM authtoken_token WHERE user_id = 1").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM annotator_annotation").fetchone()[0]
    if count != args.annotations:
        raise SystemExit(f"{args.db} holds {count} annotations; run with --rebuild")
    result = measure(args, token)
    write_results(args, built, result)
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("machine")}, indent=2))


if __name__ == "__main__":
    main()
