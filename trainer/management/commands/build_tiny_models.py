"""Build a tiny policy and its tokenizer locally (no download) and optionally register it.

    python manage.py build_tiny_models --out var/tiny
    python manage.py build_tiny_models --out var/tiny --project 3 --name tiny-base

Torch runs in a subprocess, so this command's process stays free of it.
"""

import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotator.models import Project
from trainer.models import ModelVersion


class Command(BaseCommand):
    help = "Build a tiny local policy + tokenizer (for tests and demos) and register it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="Directory to write the model to.")
        parser.add_argument(
            "--pretrain-steps",
            type=int,
            default=300,
            help="Steps of pretraining on the built-in corpus (0: none).",
        )
        parser.add_argument("--project", type=int, help="Register it as a policy of this project.")
        parser.add_argument("--name", default="tiny-base", help="Name of the model version.")

    def handle(
        self, *args, out: str, pretrain_steps: int, project: int | None, name: str, **options
    ) -> None:
        target = Path(out).resolve()
        if project is not None and not Project.objects.filter(id=project).exists():
            raise CommandError(f"No project with id {project}.")
        code = (
            "import sys; from trainer.algorithms.tiny import build_tiny_policy; "
            "print(build_tiny_policy(sys.argv[1], pretrain_steps=int(sys.argv[2])))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, str(target), str(pretrain_steps)],
            cwd=settings.BASE_DIR,
            check=False,
        )
        if result.returncode != 0:
            raise CommandError("Building the tiny model failed (see the output above).")
        self.stdout.write(f"Built a tiny policy in {target}")
        if project is not None:
            version = ModelVersion.objects.create(
                project_id=project,
                name=name,
                role=ModelVersion.Role.POLICY,
                path=str(target),
                config={"built_by": "build_tiny_models", "pretrain_steps": pretrain_steps},
            )
            self.stdout.write(f"Registered it as model version {version.id} ({name}).")
