"""Labeling clients for the SQLite concurrency test, one process each (see
test_concurrency.py). Run with DATABASE_URL pointing at a SQLite file:

    python -m tests.annotator.sqlite_clients setup --overlap 2 --tasks 30 --labelers 6
    python -m tests.annotator.sqlite_clients label --project 1 --users 2,3
    python -m tests.annotator.sqlite_clients check --project 1

Each command prints one JSON line.
"""

import argparse
import json
import threading
import time

import django


def setup(args) -> dict:
    from django.core.management import call_command

    from annotator.models import Membership
    from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task

    call_command("migrate", verbosity=0)
    project = ProjectFactory(overlap=args.overlap)
    users = [UserFactory() for _ in range(args.labelers)]
    for user in users:
        MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    for _ in range(args.tasks):
        make_task(project)
    return {"project": project.id, "users": [u.id for u in users]}


def label(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotator import services
    from annotator.models import Project

    user_ids = [int(u) for u in args.users.split(",")]
    result = {"acked": [], "leases": [], "errors": []}
    start = threading.Barrier(len(user_ids))

    def run(user_id: int) -> None:
        try:
            project = Project.objects.get(pk=args.project)
            user = get_user_model().objects.get(pk=user_id)
            start.wait(timeout=60)
            while True:
                assignment = services.task_claim_next(project=project, labeler=user)
                got = time.monotonic()
                if assignment is None:
                    return
                sent = time.monotonic()
                submitted = services.annotation_submit(
                    task=assignment.task, labeler=user, answer={"choice": "a"}
                )
                result["leases"].append((assignment.task_id, got, sent))
                result["acked"].append(submitted.annotation.id)
        except Exception as exc:
            result["errors"].append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(u,)) for u in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def check(args) -> dict:
    from django.db.models import Count, F, Q

    from annotator.models import Annotation, Assignment, Task

    tasks = Task.objects.filter(project_id=args.project).annotate(
        real=Count("annotations", distinct=True), leases=Count("assignments", distinct=True)
    )
    exact = tasks.filter(
        Q(real=F("overlap"), annotation_count=F("overlap"), leases=F("overlap"), is_complete=True)
    )
    dup = Count("id")
    return {
        "tasks": tasks.count(),
        "exact": exact.count(),
        "duplicate_leases": Assignment.objects.values("task", "labeler")
        .annotate(n=dup)
        .filter(n__gt=1)
        .count(),
        "duplicate_answers": Annotation.objects.values("task", "labeler")
        .annotate(n=dup)
        .filter(n__gt=1)
        .count(),
        "annotation_ids": sorted(
            Annotation.objects.filter(task__project_id=args.project).values_list("id", flat=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--overlap", type=int, default=1)
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--labelers", type=int, default=6)
    p = sub.add_parser("label")
    p.add_argument("--project", type=int, required=True)
    p.add_argument("--users", required=True)
    p = sub.add_parser("check")
    p.add_argument("--project", type=int, required=True)
    args = parser.parse_args()
    django.setup()
    print(json.dumps({"setup": setup, "label": label, "check": check}[args.command](args)))


if __name__ == "__main__":
    main()
