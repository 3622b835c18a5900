"""The Django side of bench/faults.py: a loop on the bench project, job states, loop state.

Runs in its own process against the bench's private database (DATABASE_URL), so the fault
driver never imports Django. Each command prints one JSON line.

    python bench/faults_db.py loop --project 7 --model /tmp/tiny
    python bench/faults_db.py jobs --project 7
"""

import argparse
import json
import os
import sys
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")


def loop(args) -> dict:
    """Enable the project's loop (it never gets enough labels to train in a bench run, but
    every submit marks it due and the sweep advances it) and give the admin a token."""
    from rest_framework.authtoken.models import Token

    from annotator.models import Project
    from trainer.loop import services as loop_
    from trainer.models import ModelVersion

    project = Project.objects.get(id=args.project)
    base = ModelVersion.objects.create(project=project, name="tiny", role="policy", path=args.model)
    loop_.loop_configure(project=project, base_policy=base, enabled=True, reward_after=10**6)
    admin = project.created_by
    return {"admin_token": Token.objects.get_or_create(user=admin)[0].key}


def jobs(args) -> dict:
    from django.utils import timezone

    from trainer.models import LoopPolicy, TrainingJob

    rows = TrainingJob.objects.filter(project_id=args.project).order_by("id")
    mark = LoopPolicy.objects.filter(project_id=args.project).values_list(
        "advance_due_since", flat=True
    )
    since = mark.first()
    return {
        "jobs": [
            {
                "id": j.id, "status": j.status, "attempts": j.attempts, "step": j.step,
                "sent": j.sent_at is not None, "error": j.error[:160],
            }
            for j in rows
        ],
        "loop_mark_age_s": None if since is None else (timezone.now() - since).total_seconds(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("loop")
    p.add_argument("--project", type=int, required=True)
    p.add_argument("--model", required=True)
    p = sub.add_parser("jobs")
    p.add_argument("--project", type=int, required=True)
    args = parser.parse_args()
    django.setup()
    print(json.dumps({"loop": loop, "jobs": jobs}[args.command](args)))


if __name__ == "__main__":
    main()
