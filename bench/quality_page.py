"""The Labelers page at 100 labelers and 100 000 pairwise answers: first view after a change
(nothing cached) and cached view, with where the first view's time goes.

Builds the project of bench/label_quality.py's timings (make_big) in the PostgreSQL database
prefloop_bench_run_quality_page, or reuses it with --reuse (filling takes about a minute).
Times the page through Django's test client: one view to warm the process, then --repeats
first views (the cache cleared before each) and cached views. --profile prints the 25 most
expensive functions of one first view (cProfile, cumulative).

    nice /work/main/.venv/bin/python bench/quality_page.py
    nice /work/main/.venv/bin/python bench/quality_page.py --reuse --profile

Writes bench/results/quality_page.json and .md (machine, load, command).
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.labeling_load import PG_BASE, fresh_database, machine, server_env  # noqa: E402

RESULTS = REPO / "bench" / "results"
DB = "quality_page"
TARGET_S = 1.0


def setup(reuse: bool) -> None:
    url = f"{PG_BASE}/prefloop_bench_run_{DB}" if reuse else fresh_database("postgres", DB)
    env = server_env(url)
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,testserver"
    os.environ.update(env)
    import django

    django.setup()


def project_and_admin(labelers: int, answers: int):
    from django.contrib.auth import get_user_model

    from annotator.models import Project
    from bench.label_quality import make_big

    project = Project.objects.filter(name="Quality bench: 100 labelers").order_by("id").last()
    if project is None:
        started = time.perf_counter()
        project, admin = make_big(labelers, answers)
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
    else:
        admin = get_user_model().objects.get(username="bench-admin")
    # The table statistics a running server's autovacuum keeps (this test server runs without
    # it): without them PostgreSQL plans the reads for an empty project.
    from webapp import sql

    sql.run("ANALYZE")
    return project, admin


def measure(project, admin, repeats: int, profile: bool) -> dict:
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse

    from annotator.models import Annotation

    client = Client()
    client.force_login(admin)
    url = reverse("quality_labelers", args=[project.id])
    assert client.get(url).status_code == 200  # templates compiled, connection open

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    ticks = os.sysconf("SC_CLK_TCK")

    def db_cpu() -> float:
        """CPU seconds the database server's process for this connection has used (it runs
        on this machine): user + system time from /proc."""
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    cpu: list[float] = []

    def view() -> float:
        t, c, d = time.perf_counter(), time.process_time(), db_cpu()
        resp = client.get(url)
        assert resp.status_code == 200, resp.status_code
        cpu.append(time.process_time() - c + db_cpu() - d)
        return time.perf_counter() - t

    first, cached, first_cpu, cached_cpu = [], [], [], []
    for _ in range(repeats):
        cache.clear()
        first.append(view())
        first_cpu.append(cpu[-1])
        cached.append(view())
        cached_cpu.append(cpu[-1])
    top = None
    if profile:
        cache.clear()
        prof = cProfile.Profile()
        prof.enable()
        view()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        top = out.getvalue()
        print(top)
    return {
        "answers": Annotation.objects.filter(task__project=project).count(),
        "labelers": project.memberships.count() - 1,
        "first_s": first,
        "cached_s": cached,
        "first_cpu_s": first_cpu,
        "cached_cpu_s": cached_cpu,
        "profile": top,
    }


def report(result: dict, meta: dict) -> str:
    first, cached = result["first_s"], result["cached_s"]

    def line(name, values):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return (
            f"| {name} | {statistics.median(values):.3f} | {statistics.fmean(values):.3f} "
            f"± {sd:.3f} | {min(values):.3f} | {max(values):.3f} | < {TARGET_S:g} |"
        )

    met_wall = "met" if max(first) < TARGET_S else "NOT met"
    met_cpu = "met" if max(result["first_cpu_s"]) < TARGET_S else "NOT met"
    return "\n".join([
        "# Labelers page at 100 labelers (bench/quality_page.py)", "",
        f"- command: `{meta['command']}`", f"- when: {meta['when']} UTC",
        f"- machine: {meta['machine']['nproc']} cores, {meta['machine']['cpu']}, "
        f"{meta['machine']['memory_gib']} GiB; PostgreSQL {meta['machine']['postgresql']}; "
        f"Python {meta['machine']['python']}",
        f"- load average before: {meta['load_before']}, after: {meta['load_after']} "
        "(the machine is shared with other sessions)", "",
        f"Project of {result['labelers']} labelers and {result['answers']} pairwise answers "
        "(overlap 3, five loop rounds). Seconds per view of `/projects/{id}/labelers/` through "
        f"Django's test client, {len(first)} views each:", "",
        "| view | median | mean ± sd | min | max | target |", "|---|---|---|---|---|---|",
        line("first view after a change (nothing cached: reads, fit, every metric)", first),
        line("cached (the page's numbers cached until the next answer or skip)", cached), "",
        "CPU seconds per view, this process (Django, numpy) plus the PostgreSQL server process "
        "serving its connection (read from /proc: the server runs on this machine). The view "
        "runs one step at a time, Python waiting on the database and back, so this is what "
        "it takes on cores nobody else is using; the wall times above also hold the time the "
        "two processes waited for a core while other sessions' work ran:", "",
        "| view | median | mean ± sd | min | max | target |", "|---|---|---|---|---|---|",
        line("first view after a change", result["first_cpu_s"]),
        line("cached", result["cached_cpu_s"]), "",
        f"Target (every first view under {TARGET_S:g} s): {met_cpu} in CPU time; {met_wall} in "
        "wall time at the load above.", "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    parser.add_argument("--labelers", type=int, default=100)
    parser.add_argument("--answers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    setup(args.reuse)
    load_before = os.getloadavg()
    project, admin = project_and_admin(args.labelers, args.answers)
    result = measure(project, admin, args.repeats, args.profile)
    meta = {
        "command": "nice /work/main/.venv/bin/python bench/quality_page.py "
        + shlex.join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    text = report(result, meta)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "quality_page.json").write_text(
            json.dumps({"meta": meta, **result}, indent=1, default=str)
        )
        (RESULTS / "quality_page.md").write_text(text)


if __name__ == "__main__":
    main()
