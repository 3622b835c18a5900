"""Writes of a project's prompt strategies: create, change, delete; and how one wraps a query."""

import re

from django.db import IntegrityError, transaction

from annotator.exceptions import ServiceError
from annotator.models import Project, PromptStrategy
from webapp import safejson

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_TEXT = 20_000
QUERY = "{query}"


def _clean(name: str, system_prompt: str, instruction: str) -> tuple[str, str, str]:
    name = (name or "").strip()
    if not NAME.match(name):
        raise ServiceError(
            "Name the strategy with letters, digits, _ . or - (e.g. step_by_step), at most 100 "
            "characters.",
            field="name",
        )
    for field, value in (("system_prompt", system_prompt), ("instruction", instruction)):
        if len(value or "") > MAX_TEXT:
            raise ServiceError(f"At most {MAX_TEXT} characters.", field=field)
        try:
            safejson.check_text(value or "", field)
        except safejson.UnsafeJSON as exc:
            raise ServiceError(str(exc), field=field) from None
    return name, system_prompt or "", instruction or ""


def strategy_create(
    *, project: Project, name: str, system_prompt: str = "", instruction: str = ""
) -> PromptStrategy:
    name, system_prompt, instruction = _clean(name, system_prompt, instruction)
    try:
        with transaction.atomic():
            return PromptStrategy.objects.create(
                project=project, name=name, system_prompt=system_prompt, instruction=instruction
            )
    except IntegrityError:
        raise ServiceError(
            f"The project already has a strategy named “{name}”.", field="name"
        ) from None


@transaction.atomic
def strategy_update(*, strategy: PromptStrategy, **values) -> PromptStrategy:
    """Change a strategy's templates (and name). Completions name their strategy by name, so a
    rename leaves the old name's completions under the old name."""
    unknown = sorted(set(values) - {"name", "system_prompt", "instruction"})
    if unknown:
        raise ServiceError(f"Unknown strategy field: {', '.join(unknown)}.", field=unknown[0])
    merged = {
        "name": strategy.name,
        "system_prompt": strategy.system_prompt,
        "instruction": strategy.instruction,
    } | values
    name, system_prompt, instruction = _clean(**merged)
    taken = PromptStrategy.objects.filter(project_id=strategy.project_id, name=name)
    if taken.exclude(id=strategy.id).exists():
        raise ServiceError(f"The project already has a strategy named “{name}”.", field="name")
    strategy.name, strategy.system_prompt, strategy.instruction = name, system_prompt, instruction
    strategy.save(update_fields=["name", "system_prompt", "instruction"])
    return strategy


def strategy_delete(*, strategy: PromptStrategy) -> None:
    """The completions that name it keep their outcomes; they are no longer a defined strategy."""
    strategy.delete()


def strategy_render(*, strategy: PromptStrategy, query: str) -> list[dict]:
    """The chat messages a model gets for `query` under `strategy`."""
    instruction = strategy.instruction
    if not instruction:
        user = query
    elif QUERY in instruction:
        user = instruction.replace(QUERY, query)
    else:
        user = f"{instruction}\n{query}"
    system = [{"role": "system", "content": strategy.system_prompt}]
    return (system if strategy.system_prompt else []) + [{"role": "user", "content": user}]
