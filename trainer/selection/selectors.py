"""Reads of a project's prompt selectors (prompt_reward jobs' models) and their choices."""

import json
from pathlib import Path

from annotator.models import Project
from trainer.algorithms.prompt_oirl import CHOICES_FILENAME, choose_strategy, load_selector
from trainer.models import ModelVersion

Role = ModelVersion.Role


class SelectionError(Exception):
    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message, self.status = message, status


def prompt_selectors(*, project: Project):
    return ModelVersion.objects.filter(project=project, role=Role.PROMPT_SELECTOR).order_by("-id")


def prompt_selector_get(*, project: Project, model_id: int | None) -> ModelVersion:
    """The project's selector with this id, or its newest; SelectionError when it has none."""
    models = prompt_selectors(project=project)
    model = models.filter(id=model_id).first() if model_id else models.first()
    if model is None:
        if model_id:
            raise SelectionError("The project has no prompt selector with this id.", 404)
        raise SelectionError(
            "The project has no prompt selector yet: run a Prompt reward (Prompt-OIRL) job."
        )
    return model


def selector_choices(*, model: ModelVersion) -> list[dict]:
    """The held-out queries of the model's training run: each one's choice, scores and the
    logged outcomes; empty when the model's directory is not on this machine."""
    path = Path(model.path) / CHOICES_FILENAME
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def selector_choose(*, model: ModelVersion, query: str) -> dict:
    """``{"strategy", "scores"}`` for a query. Selectors that embed with a language model are
    refused here: the web process does not load torch models (use choose_strategy in your
    serving code or a worker)."""
    try:
        selector = load_selector(model.path)
    except (FileNotFoundError, OSError):
        raise SelectionError(
            f"The selector's files are not on this machine ({model.path}).", 409
        ) from None
    if selector.encoder_spec.get("name") != "hashing":
        raise SelectionError(
            "This selector embeds queries with a language model, which the web server does not "
            "load: call trainer.algorithms.prompt_oirl.choose_strategy in your serving code.",
            409,
        )
    return choose_strategy(query, model.path)
