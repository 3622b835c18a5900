"""Server render time of the app's pages with the demo data (issue #16: under 100 ms each).

Seeds the demo into a fresh SQLite database in a temporary directory, signs in as the demo
admin (and as labeler1 for the labeling pages) with Django's test client, and times each page
over N requests. It measures Django's work for one request (views, queries, templates), not
the network or the browser.

    .venv/bin/python bench/page_render.py            # 15 requests a page
    .venv/bin/python bench/page_render.py --repeats 30

Writes bench/results/page_render.json and .md (machine, load average, command).
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0


def setup_django(var_dir: str) -> None:
    os.environ["PREFLOOP_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["PREFLOOP_API_RATE"] = "off"
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)


def pages() -> list[tuple[str, str, str]]:
    """(who, name, url) for every page a person opens, on the demo's first project."""
    from django.urls import reverse

    from annotator.models import Project

    project = Project.objects.order_by("id").first()
    admin = [
        ("home", reverse("home")),
        ("project", reverse("project_admin", args=[project.id])),
        ("settings", reverse("project_settings", args=[project.id])),
        ("members", reverse("project_members", args=[project.id])),
        ("export", reverse("project_export", args=[project.id])),
        ("audit log", reverse("audit_log", args=[project.id])),
        ("labelers", reverse("quality_labelers", args=[project.id])),
        ("gold", reverse("gold_page", args=[project.id])),
        ("review queue", reverse("review_queue", args=[project.id])),
        ("training", reverse("training")),
        ("jobs", reverse("training_jobs", args=[project.id])),
        ("launch reward job", reverse("training_job_new", args=[project.id, "reward"])),
        ("models", reverse("training_models", args=[project.id])),
        ("loop", reverse("training_loop", args=[project.id])),
        ("api token", reverse("api_token")),
    ]
    labeler = [
        ("label", reverse("label", args=[project.id])),
        ("my annotations", reverse("my_annotations", args=[project.id])),
    ]
    return [("admin", *p) for p in admin] + [("labeler1", *p) for p in labeler]


def time_page(client, url: str, repeats: int) -> dict:
    first = client.get(url)
    if first.status_code != 200:
        return {"status": first.status_code}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return {
        "status": 200,
        "median_ms": statistics.median(times),
        "max_ms": max(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "page_render"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as var_dir:
        setup_django(var_dir)
        from django.contrib.auth import get_user_model
        from django.test import Client

        users = get_user_model().objects
        clients = {}
        for name in ("admin", "labeler1"):
            clients[name] = Client(HTTP_HOST="127.0.0.1")
            clients[name].force_login(users.get(username=name))
        load = os.getloadavg()
        rows = []
        for who, name, url in pages():
            result = time_page(clients[who], url, args.repeats)
            rows.append({"who": who, "page": name, "url": url, **result})
            shown = f"{result['median_ms']:.1f}" if "median_ms" in result else "-"
            print(f"{who:9} {name:20} {shown:>8} ms  ({result['status']})")
    report = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "load_before": load,
        "repeats": args.repeats,
        "target_ms": TARGET_MS,
        "pages": rows,
    }
    Path(args.out + ".json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Page render times (demo data)",
        "",
        f"`{report['command']}` · {report['machine']} · load average before "
        f"{', '.join(f'{x:.2f}' for x in load)} · {args.repeats} requests a page after one "
        "warm-up · SQLite, DJANGO_DEBUG=1, Django's test client (server time only)",
        "",
        "| who | page | median ms | max ms | under 100 ms (median) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "median_ms" in r:
            ok = "yes" if r["median_ms"] < TARGET_MS else "**no**"
            lines.append(
                f"| {r['who']} | {r['page']} | {r['median_ms']:.1f} | {r['max_ms']:.1f} | {ok} |"
            )
        else:
            lines.append(f"| {r['who']} | {r['page']} | status {r['status']} | - | - |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.out}.json and .md")


if __name__ == "__main__":
    main()
