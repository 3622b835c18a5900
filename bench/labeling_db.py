"""The Django side of bench/labeling_load.py: set up a benchmark project, check it afterwards.

Runs in its own process against the benchmark's database (DATABASE_URL), so the load client
never imports Django. Each command prints one JSON line.

    python bench/labeling_db.py setup --name run1 --overlap 1 --tasks 5000 --labelers 32
    python bench/labeling_db.py check --project 7
"""

import argparse
import json
import os
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


def setup(args) -> dict:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotator import services
    from annotator.importing import project_import
    from annotator.models import Membership

    users = get_user_model().objects
    admin, _ = users.get_or_create(username="bench-admin", defaults={"is_staff": True})
    project = services.project_create(
        created_by=admin, name=f"Load bench {args.name}", overlap=args.overlap
    )
    lines = (
        json.dumps(
            {
                "prompt": f"Question {i}: which answer is more helpful?",
                "completions": [f"First answer to {i}.", f"Second answer to {i}."],
            }
        )
        for i in range(args.tasks)
    )
    created = project_import(project=project, data="\n".join(lines).encode(), fmt="jsonl")
    tokens = []
    for i in range(args.labelers):
        user, _ = users.get_or_create(username=f"bench-labeler-{i}")
        services.membership_set(project=project, user=user, role=Membership.Role.LABELER)
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    return {"project": project.id, "tasks": created, "tokens": tokens}


def check(args) -> dict:
    """What the database says after a run: nothing lost, duplicated or over-filled."""
    from django.db.models import Count, F, Q
    from django.utils import timezone

    from annotator.models import Annotation, Assignment, Task

    now = timezone.now()
    tasks = Task.objects.filter(project_id=args.project).annotate(
        real=Count("annotations", distinct=True),
        live=Count(
            "assignments",
            filter=Q(assignments__status="active", assignments__expires_at__gt=now),
            distinct=True,
        ),
    )
    annotations = Annotation.objects.filter(task__project_id=args.project)
    assignments = Assignment.objects.filter(task__project_id=args.project)
    return {
        "tasks": tasks.count(),
        "complete": tasks.filter(is_complete=True).count(),
        "annotations": annotations.count(),
        "annotation_ids": sorted(annotations.values_list("id", flat=True)),
        "overfilled": tasks.filter(real__gt=F("overlap")).count(),
        # Answers plus live leases never exceed the overlap, also at the end of a run.
        "overcommitted": tasks.filter(real__gt=F("overlap") - F("live")).count(),
        "counter_mismatch": tasks.exclude(annotation_count=F("real")).count(),
        "complete_mismatch": tasks.filter(
            Q(is_complete=True, real__lt=F("overlap"))
            | Q(is_complete=False, real__gte=F("overlap"))
        ).count(),
        "duplicate_answers": annotations.values("task", "labeler")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
        "duplicate_leases": assignments.values("task", "labeler")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--name", required=True)
    p.add_argument("--overlap", type=int, default=1)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--labelers", type=int, default=32)
    p = sub.add_parser("check")
    p.add_argument("--project", type=int, required=True)
    args = parser.parse_args()
    django.setup()
    print(json.dumps({"setup": setup, "check": check}[args.command](args)))


if __name__ == "__main__":
    main()
