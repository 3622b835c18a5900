"""Registering a base model in a project's registry (the training side's model form).

A base model is a ModelVersion without a job: a local checkpoint directory or a Hugging Face
hub id that jobs of the project can start from.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from annotator.models import Project
from trainer.exceptions import JobError
from trainer.models import ModelVersion

# "gpt2", "org/name", "org/name-v1.5": what the hub accepts as a repository id.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class RegistryError(JobError):
    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


def model_path_check(path: str) -> str:
    """A local directory (absolute, or relative to the worker) or a hub id, else RegistryError."""
    path = path.strip()
    if not path:
        raise RegistryError("Enter a local directory or a Hugging Face model id.", field="path")
    is_local = path.startswith(("/", "./", "../", "~"))
    if not is_local and not HUB_ID.match(path):
        raise RegistryError(
            "This is neither a local directory (starting with / or ./) nor a Hugging Face "
            "model id such as “gpt2” or “Qwen/Qwen2.5-0.5B-Instruct”.",
            field="path",
        )
    if any(c in path for c in "\x00\n\r"):
        raise RegistryError("The path has a control character in it.", field="path")
    return path


def model_register(
    *,
    project: Project,
    name: str,
    role: str,
    path: str,
    created_by: AbstractBaseUser | None = None,
) -> ModelVersion:
    """Add a base model (no parent, no job) to the project's registry."""
    name = name.strip()
    if not name:
        raise RegistryError("Give the model a name.", field="name")
    if role not in ModelVersion.Role.values:
        raise RegistryError("Pick policy or reward model.", field="role")
    path = model_path_check(path)
    if ModelVersion.objects.filter(project=project, name=name).exists():
        raise RegistryError(f"The project already has a model named “{name}”.", field="name")
    config = {"registered_by": created_by.get_username()} if created_by else {}
    return ModelVersion.objects.create(
        project=project, name=name, role=role, path=path, config=config
    )


MERGE_TIMEOUT_S = 3600


def model_merge(*, model: ModelVersion, created_by: AbstractBaseUser | None = None) -> ModelVersion:
    """Fold a LoRA adapter version into its base's weights: a new version (full weights, its
    parent the adapter) beside it; the adapter and the base are left as they are.

    The merge runs in a child process (torch never loads in the web or Celery parent process,
    docs/architecture.md) and this call waits for it: seconds for a small model, minutes for a
    7-8B one, which an admin may rather run as ``manage.py merge_adapter ID`` on a worker."""
    if not model.is_adapter:
        raise RegistryError(
            f"{model.name} holds full weights, not a LoRA adapter: there is nothing to merge.",
            field="model",
        )
    name = f"{model.name}-merged"
    if ModelVersion.objects.filter(project=model.project, name=name).exists():
        raise RegistryError(f"{model.name} was already merged into {name}.", field="model")
    output = Path(settings.PREFLOOP_MODELS_DIR) / f"merged-{model.id}"
    done = subprocess.run(
        [sys.executable, "-m", "trainer.algorithms.lora", "merge", model.path, str(output)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=MERGE_TIMEOUT_S,
    )
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RegistryError(f"The merge of {model.name} failed: {reason[0]}", field="model")
    json.loads(done.stdout.strip().splitlines()[-1])  # the child's report: it finished
    config = {"merged_from": model.id, "adapter_base": model.adapter_base}
    if created_by is not None:
        config["merged_by"] = created_by.get_username()
    return ModelVersion.objects.create(
        project=model.project,
        name=name,
        role=model.role,
        path=str(output),
        parent=model,
        metrics=dict(model.metrics),
        config=config,
    )
