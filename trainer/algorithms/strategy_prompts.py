"""Responses under several prompt strategies (Prompt-OIRL, docs/prompt-optimisation.md).

A strategy is a name, a system prompt and an instruction in which ``{query}`` marks where the
query goes (without it the query follows the instruction on a new line). The generate job's
rows carry the templates of the strategies it was asked for (``"strategies": {name: {
"system_prompt", "instruction"}}``, put there by the Django side); :func:`expand_rows` turns
each row into one row per strategy with the prompt rendered around the query. No Django here.

A plain-text prompt stays plain text: the system prompt, a blank line, then the instruction
with the query. A chat prompt (a list of messages) keeps its transcript: the instruction wraps
the last user message, and the system prompt goes first (before the transcript's own system
message's text when it has one).
"""

from __future__ import annotations

QUERY = "{query}"
STRATEGIES_KEY = "strategies"


def wrap_query(instruction: str, query: str) -> str:
    if not instruction:
        return query
    if QUERY in instruction:
        return instruction.replace(QUERY, query)
    return f"{instruction}\n{query}"


def render_prompt(prompt: str | list[dict], strategy: dict) -> str | list[dict]:
    """``prompt`` (plain text or chat messages) under ``strategy``: {system_prompt, instruction}."""
    system = strategy.get("system_prompt") or ""
    instruction = strategy.get("instruction") or ""
    if not isinstance(prompt, list):
        user = wrap_query(instruction, prompt)
        return f"{system}\n\n{user}" if system else user
    messages = [dict(m) for m in prompt]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if users:
        last = messages[users[-1]]
        last["content"] = wrap_query(instruction, last.get("content") or "")
    if system:
        if messages and messages[0].get("role") == "system":
            messages[0]["content"] = f"{system}\n\n{messages[0].get('content') or ''}"
        else:
            messages.insert(0, {"role": "system", "content": system})
    return messages


def check_names(names) -> list[str]:
    """The config's strategy names: a list of distinct non-empty strings."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ValueError('strategies must be a list of strategy names (e.g. ["plain", "cot"]).')
    if len(set(names)) != len(names):
        raise ValueError("strategies names a strategy twice.")
    return names


def expand_rows(rows: list[dict], names: list[str]) -> list[dict]:
    """One row per (row, strategy name), in that order: ``prompt`` rendered, ``query`` the
    original prompt, ``strategy`` the name. Rows without the templates of a name are refused."""
    out = []
    for i, row in enumerate(rows):
        templates = row.get(STRATEGIES_KEY) or {}
        missing = [n for n in names if n not in templates]
        if missing:
            raise ValueError(
                f"Row {i + 1} has no template for the strategy {', '.join(missing)}: the rows "
                f"must carry {STRATEGIES_KEY!r} with every strategy the config names."
            )
        base = {k: v for k, v in row.items() if k != STRATEGIES_KEY}
        for name in names:
            out.append(
                {
                    **base,
                    "prompt": render_prompt(row["prompt"], templates[name]),
                    "query": row["prompt"],
                    "strategy": name,
                }
            )
    return out
