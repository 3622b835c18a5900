"""Validate a job's config against its algorithm's config dataclass (no torch import)."""

import dataclasses
import importlib
from pathlib import Path

from trainer.exceptions import JobError
from trainer.kinds import ACCELERATE_CONFIG, ACCELERATE_CONFIG_HELP, KINDS
from trainer.models import ModelVersion


def config_class(kind: str) -> type:
    if kind not in KINDS:
        available = ", ".join(sorted(KINDS))
        raise JobError(f"Jobs of kind {kind!r} cannot be launched yet; available: {available}.")
    return getattr(importlib.import_module(KINDS[kind].module), KINDS[kind].config_class)


def validate_config(
    *,
    kind: str,
    config: dict,
    input_model: ModelVersion | None,
    reward_model: ModelVersion | None = None,
) -> dict:
    """The full config (defaults filled in) as JSON, or JobError naming what is wrong."""
    from trainer.algorithms.common import config_from_dict

    if not isinstance(config, dict):
        raise JobError("config must be a JSON object.")
    cls = config_class(kind)
    config = dict(config)
    launch = accelerate_config_validate(kind=kind, value=config.pop(ACCELERATE_CONFIG, None))
    names = {f.name for f in dataclasses.fields(cls)}
    # A kind without a model to start from (prompt_reward) leaves a picked model out.
    if input_model is not None and "model_name_or_path" in names:
        config.setdefault("model_name_or_path", input_model.path)
    if reward_model is not None and "reward_model_path" in names:
        config.setdefault("reward_model_path", reward_model.path)
    if "reward_model_path" in names and not config.get("reward_model_path"):
        raise JobError(f"A {kind} job needs a reward model: pick one, or set reward_model_path.")
    try:
        return {**dataclasses.asdict(config_from_dict(cls, config)), **launch}
    except (TypeError, ValueError) as exc:
        raise JobError(f"Invalid {kind} config: {exc}") from None


def accelerate_config_validate(*, kind: str, value) -> dict:
    """A job's own accelerate config: {} when not given, else {ACCELERATE_CONFIG: path} for a
    readable YAML file holding a mapping; JobError otherwise, or for a kind that does not run
    under `accelerate launch`."""
    import yaml

    if value is None or value == "":
        return {}
    if not KINDS[kind].distributed:
        raise JobError(
            f"{ACCELERATE_CONFIG}: {KINDS[kind].label} jobs do not run under accelerate launch "
            "(they train in one process); remove the field."
        )
    if not isinstance(value, str):
        raise JobError(f"{ACCELERATE_CONFIG} must be the path of a YAML file on the worker.")
    path = Path(value)
    if not path.is_absolute():
        raise JobError(f"{ACCELERATE_CONFIG} must be an absolute path, not {value!r}.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise JobError(f"{ACCELERATE_CONFIG}: cannot read {value!r} ({reason}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobError(f"{ACCELERATE_CONFIG}: {value!r} is not valid YAML ({exc}).") from None
    if not isinstance(data, dict):
        raise JobError(
            f"{ACCELERATE_CONFIG}: {value!r} is not an accelerate config (a YAML mapping, as "
            "`accelerate config --config_file PATH` writes)."
        )
    return {ACCELERATE_CONFIG: str(path)}


def config_fields(kind: str) -> list[dict]:
    """Name, default, help and whether it must be given (no default), for the launch form
    and the API docs."""
    from trainer.algorithms.lora import SCALE_FIELD_NAMES

    fields = []
    # The kind's own settings first; LoRA, precision and memory settings (shared) after them.
    ordered = sorted(
        dataclasses.fields(config_class(kind)), key=lambda f: f.name in SCALE_FIELD_NAMES
    )
    for f in ordered:
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        required = default is dataclasses.MISSING
        if required:
            default = None
        fields.append(
            {
                "name": f.name,
                "default": default,
                "help": f.metadata.get("help", ""),
                "required": required,
            }
        )
    if KINDS[kind].distributed:
        fields.append(
            {"name": ACCELERATE_CONFIG, "default": "", "help": ACCELERATE_CONFIG_HELP,
             "required": False}
        )  # fmt: skip
    return fields
