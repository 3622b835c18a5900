"""Preference import benchmark: 100,000 preference rows (JSONL) into a PostgreSQL project.

    .venv/bin/python bench/preference_import.py                  # 100,000 rows, 3 runs
    .venv/bin/python bench/preference_import.py --rows 20000 --runs 1

Writes a JSONL file of explicit-prompt preferences (prompt, chosen, rejected, margin), then
imports it into a fresh project of a benchmark database (created and migrated if need be)
through annotator.preference_import.preferences_import, reading the file as a stream, as the
API does after upload. Each run is a new project; the time covers parsing, validation and the
bulk inserts (prompts, completions, tasks, their links, annotations) up to the commit.
Prints a table and writes bench/results/preference_import.md and .json.
Target (issue #14): 100,000 rows in under 30 s.
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_S = 30.0
WORDS = (
    "the model answer explains a clear short helpful reply about python code data river "
    "garden music weather friend question because however simple example better worse"
).split()


def ensure_database(db: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            c.execute(f'CREATE DATABASE "{db}"')
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def write_file(path: Path, rows: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(rows):
            line = {
                "prompt": f"Question {i}: " + " ".join(rng.choices(WORDS, k=20)),
                "chosen": " ".join(rng.choices(WORDS, k=40)),
                "rejected": " ".join(rng.choices(WORDS, k=40)),
                "margin": rng.choice([0.0, 1.0, 2.0, 3.0]),
            }
            f.write(json.dumps(line) + "\n")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="prefloop_bench_prefimport")
    args = parser.parse_args()

    ensure_database(args.db)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.db}"
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["PREFLOOP_IMPORT_MAX_BYTES"] = str(1 << 31)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from annotator.models import Annotation, Project
    from annotator.preference_import import preferences_import

    times = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preferences.jsonl"
        size = write_file(path, args.rows)
        for run in range(args.runs):
            project = Project.objects.create(name=f"import bench {run}")
            start = time.perf_counter()
            with path.open("rb") as stream:
                result = preferences_import(
                    project=project, data=stream, fmt="jsonl", filename=path.name
                )
            times.append(time.perf_counter() - start)
            stored = Annotation.objects.filter(
                task__project=project, labeler_kind="imported"
            ).count()
            assert result.preferences == stored == args.rows, (result, stored)
            print(f"run {run + 1}: {times[-1]:.1f} s")
            # Kept: deleting 600,000 rows by cascade takes longer than the import.

    median = statistics.median(times)
    load = " / ".join(f"{x:.2f}" for x in load_before)
    load_after = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    command = f"python bench/preference_import.py --rows {args.rows} --runs {args.runs}"
    table = [
        "| rows | file MB | runs | median s | min s | max s | rows/s (median) | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {args.rows:,} | {size / 1e6:.1f} | {len(times)} | {median:.1f} | {min(times):.1f} "
        f"| {max(times):.1f} | {args.rows / median:,.0f} | < {TARGET_S:.0f} s: "
        f"{'met' if median < TARGET_S else 'NOT met'} |",
    ]
    print("\n".join(table))
    machine = f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preference_import.md").write_text(
        "# Preference import (issue #14)\n\n"
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine} · PostgreSQL 127.0.0.1 · "
        f"load average before the runs {load}, after {load_after}\n\n"
        f"Command: `{command}`\n\n"
        "An explicit-prompt JSONL file (prompt, chosen, rejected, margin) read as a stream and "
        "imported all-or-nothing: each row a prompt, two completions, a complete pairwise "
        "task, its two links and one imported annotation (six rows written per line).\n\n"
        + "\n".join(table)
        + "\n"
    )
    (RESULTS / "preference_import.json").write_text(
        json.dumps(
            {
                "rows": args.rows,
                "bytes": size,
                "seconds": times,
                "median_s": median,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "machine": machine,
                "command": command,
            },
            indent=2,
        )  # fmt: skip
        + "\n"
    )


if __name__ == "__main__":
    main()
