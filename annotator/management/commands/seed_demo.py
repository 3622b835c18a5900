"""Seed a demo: an admin, two labelers, and a pairwise, a Likert and a ranking project.

Idempotent. Accounts are matched by username and projects by name; what exists is left as it
is. Passwords are random and printed only when an account is created, or when
`--reset-passwords` sets new ones; otherwise the command says "unchanged". With
`--credentials-file PATH` the printed accounts are also written to PATH (mode 0600), which is
how ./scripts/demo shows them again on later starts. The prompts and responses go through the
real import path (annotator.importing), from annotator/demo_data/assistant.jsonl.
"""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotator import services
from annotator.importing import project_import
from annotator.models import Kind, Membership, Project

DATA_FILE = Path(__file__).resolve().parents[2] / "demo_data" / "assistant.jsonl"

ADMIN = "admin"
LABELERS = ["labeler1", "labeler2"]

PAIRWISE_GUIDELINES = """\
# Which response is better?

You see one prompt and two responses, **A** and **B**. Pick the response a careful, honest
expert would rather send.

1. **Correct first.** A wrong answer loses to a right one, however well written.
2. **Then helpful:** does it answer what was asked, at the right length?
3. **Never harmful:** advice that could hurt someone loses, even if it is what the user asked.

Choose *Tie* when you cannot tell them apart, *Both bad* when neither should be sent. Say how
much better (slightly / clearly / much) when one wins.

Keys: `1` A, `2` B, `0` tie, `9` both bad, `s` skip.
"""

LIKERT_GUIDELINES = """\
# Rate one response

Score the response from **1** (useless or harmful) to **7** (what an expert would write) on
each aspect:

- **helpful**: does it do what the user asked, clearly and at the right length?
- **honest**: is every claim true, and does it admit what it does not know?

Tick every flag that applies (for example *Gives harmful advice*), even when the scores are
already low. Use the notes for anything the scores do not say.
"""

RANKING_GUIDELINES = """\
# Rank the responses

Order the responses from **best** to **worst**. Judge correctness first, then helpfulness,
then style. Ties are not allowed: when two are equally good, put the shorter one first.

Responses that contain code: run them in your head on a small example; code that would crash
or give a wrong result ranks below code that is merely terse.
"""


@dataclass(frozen=True)
class DemoProject:
    name: str
    settings: dict
    min_completions: int = 1


PROJECTS = [
    DemoProject(
        name="Demo: assistant replies (pairwise)",
        settings={
            "kind": Kind.PAIRWISE,
            "guidelines": PAIRWISE_GUIDELINES,
            "ask_strength": True,
            "overlap": 2,
        },
    ),
    DemoProject(
        name="Demo: response quality (Likert)",
        settings={
            "kind": Kind.LIKERT,
            "guidelines": LIKERT_GUIDELINES,
            "likert_points": 7,
            "aspects": ["helpful", "honest"],
        },
    ),
    DemoProject(
        name="Demo: best to worst (ranking)",
        settings={"kind": Kind.RANKING, "guidelines": RANKING_GUIDELINES},
        min_completions=3,
    ),
]


class Command(BaseCommand):
    help = "Create demo accounts and three demo projects (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give the demo accounts new random passwords and print them.",
        )
        parser.add_argument(
            "--credentials-file",
            type=Path,
            help="Also write the printed accounts to this file (mode 0600).",
        )

    def handle(self, *args, reset_passwords: bool, credentials_file: Path | None, **options):
        with transaction.atomic():
            accounts = self._accounts(reset_passwords=reset_passwords)
            admin = get_user_model().objects.get(username=ADMIN)
            labelers = list(get_user_model().objects.filter(username__in=LABELERS))
            for spec in PROJECTS:
                self._project(spec, admin=admin, labelers=labelers)
        passwords = {name: pw for name, pw in accounts.items() if pw}
        for name, password in accounts.items():
            if password:
                self.stdout.write(f"  {name:10} password: {password}")
            else:
                self.stdout.write(f"  {name:10} password unchanged (--reset-passwords for new)")
        if passwords and credentials_file:
            _write_credentials(credentials_file, passwords)
            self.stdout.write(f"Accounts written to {credentials_file}")

    def _accounts(self, *, reset_passwords: bool) -> dict[str, str | None]:
        """Create the demo accounts; the new password of each created or reset one."""
        users = get_user_model().objects
        result: dict[str, str | None] = {}
        for username in [ADMIN, *LABELERS]:
            user = users.filter(username=username).first()
            if user is not None and not reset_passwords:
                result[username] = None
                continue
            password = secrets.token_urlsafe(12)
            if user is None:
                is_admin = username == ADMIN
                user = users.create_user(
                    username=username, is_staff=is_admin, is_superuser=is_admin
                )
                self.stdout.write(f"Created user {username}")
            user.set_password(password)
            user.save(update_fields=["password"])
            result[username] = password
        return result

    def _project(self, spec: DemoProject, *, admin, labelers: list) -> None:
        project = Project.objects.filter(name=spec.name).first()
        if project is None:
            project = services.project_create(created_by=admin, name=spec.name, **spec.settings)
            created = project_import(project=project, data=_demo_lines(spec), fmt="jsonl")
            self.stdout.write(f"Created project {spec.name!r} with {created} tasks")
        else:
            self.stdout.write(f"Project {spec.name!r} exists, left as it is")
        for labeler in labelers:
            if not Membership.objects.filter(project=project, user=labeler).exists():
                services.membership_set(project=project, user=labeler, role=Membership.Role.LABELER)


def _demo_lines(spec: DemoProject) -> bytes:
    lines = [
        line
        for line in DATA_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and len(json.loads(line)["completions"]) >= spec.min_completions
    ]
    return ("\n".join(lines) + "\n").encode()


def _write_credentials(path: Path, passwords: dict[str, str]) -> None:
    """Merge new passwords into the file ("username password" lines), keeping the others."""
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, password = line.partition(" ")
            if name and password:
                known[name] = password
    known |= passwords
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for name, password in known.items():
            fh.write(f"{name} {password}\n")
