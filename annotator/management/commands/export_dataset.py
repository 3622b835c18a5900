"""Write a project's labels to a dataset file, the same bytes as the export API.

    manage.py export_dataset --project 3 --schema preference --format jsonl --out prefs.jsonl
    manage.py export_dataset --project 3 --out prefs.parquet --format parquet \\
        --min-votes 2 --push-to-hub my-org/prefs

--push-to-hub needs a Hugging Face token (HF_TOKEN, or `hf auth login`); without one the
command stops before writing anything.
"""

import hashlib
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from annotator.export import AGGREGATES, FORMATS, SCHEMAS, export_start, params_from_query
from annotator.models import Project


class Command(BaseCommand):
    help = "Export a project's labels as a preference / ranking / Likert / unpaired / raw file."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, required=True)
        parser.add_argument("--schema", choices=SCHEMAS, default="preference")
        parser.add_argument("--format", choices=FORMATS, default="jsonl")
        parser.add_argument("--out", required=True, help="File to write.")
        parser.add_argument("--aggregate", choices=AGGREGATES, default="majority")
        parser.add_argument("--min-votes", type=int)
        parser.add_argument("--min-agreement", type=float)
        parser.add_argument("--since", help="ISO 8601 time; annotations at or after it.")
        parser.add_argument("--until", help="ISO 8601 time; annotations before it.")
        parser.add_argument("--split", choices=["train", "eval"])
        parser.add_argument("--round", type=int)
        parser.add_argument("--labeler", type=int, action="append", help="User id (repeat).")
        parser.add_argument("--harmful-flag", action="append", help="Flag name (repeat).")
        parser.add_argument("--allow-harmful-chosen", action="store_true")
        parser.add_argument("--aspect")
        parser.add_argument("--likert-threshold", type=float)
        parser.add_argument(
            "--push-to-hub", metavar="REPO", help="Also push to this Hugging Face dataset repo."
        )
        parser.add_argument("--private", action="store_true", help="Make the hub repo private.")

    def handle(self, *args, **options):
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']}.")
        token = _hub_token() if options["push_to_hub"] else None
        if options["push_to_hub"] and not token:
            raise CommandError("--push-to-hub needs a Hugging Face token (set HF_TOKEN).")
        names = ["schema", "format", "aggregate", "min_votes", "min_agreement", "since",
                 "until", "split", "round", "labeler", "harmful_flag", "aspect",
                 "likert_threshold"]  # fmt: skip
        query = {name: options[name] for name in names if options[name] is not None}
        query["allow_harmful_chosen"] = options["allow_harmful_chosen"]
        try:
            params = params_from_query(project=project, data=query)
        except ValidationError as exc:
            raise CommandError(json.dumps(exc.detail)) from None

        job = export_start(project=project, params=params)
        out = Path(options["out"])
        digest, size = hashlib.sha256(), 0
        with out.open("wb") as f:
            for chunk in job.chunks():
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        summary = job.summary(size=size, sha256=digest.hexdigest())
        self.stdout.write(json.dumps({"file": str(out), **summary}, indent=2))
        if options["push_to_hub"]:
            _push(out, params.format, options["push_to_hub"], token, options["private"])
            self.stdout.write(f"Pushed to https://huggingface.co/datasets/{options['push_to_hub']}")


def _hub_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _push(path: Path, fmt: str, repo: str, token: str, private: bool) -> None:
    from datasets import load_dataset

    builder = {"jsonl": "json", "csv": "csv", "parquet": "parquet"}[fmt]
    dataset = load_dataset(builder, data_files=str(path), split="train")
    dataset.push_to_hub(repo, token=token, private=private)
