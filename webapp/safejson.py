"""JSON and text the databases can store, or a clear error naming where it is not.

PostgreSQL cannot store a NUL character in text or in jsonb, nor text with a lone UTF-16
surrogate (which JSON's "\\ud800" escape can produce); the JSON decoder itself fails with a
RecursionError on deep nesting, takes quadratic time on integers of tens of thousands of
digits, and reads NaN and Infinity that jsonb refuses. Everything that accepts user JSON or
text (the API's parser, import, forms) goes through here and answers 400 instead of 500, on
PostgreSQL and SQLite alike. Plain Python: no Django import.
"""

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # arrays and objects inside one another
MAX_NUMBER_CHARS = 40  # digits of one number (a 64-bit integer has 20)
MAX_INT = 2**63 - 1  # what a 64-bit integer column holds


class UnsafeJSON(ValueError):
    """`field` is where the bad value is (`prompt[0].content`, `meta.source`); empty for the
    document as a whole."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


class _Refused:
    """A number the decoder read but that cannot be kept; `check` reports it with its path."""

    def __init__(self, reason: str):
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number of {len(text)} digits; at most {MAX_NUMBER_CHARS}")
    value = int(text)
    if abs(value) > MAX_INT:
        return _Refused(f"the integer {text} is out of range (at most {MAX_INT} in size)")
    return value


def _parse_float(text: str) -> float | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number of {len(text)} characters; at most {MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"the number {text} is out of range")
    return value


def _no_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, refusing what cannot be stored: UnsafeJSON (a ValueError) names the field.
    Syntax errors stay json.JSONDecodeError (also a ValueError)."""
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except RecursionError:
        raise UnsafeJSON(f"nested deeper than {max_depth} levels") from None
    check(value, max_depth=max_depth)
    return value


def check(value: Any, field: str = "", *, max_depth: int = MAX_DEPTH) -> None:
    """Raise UnsafeJSON at the first string (or key) that cannot be stored, or past max_depth.
    Walks without recursion, so any depth is safe to look at."""
    stack = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise UnsafeJSON(f"nested deeper than {max_depth} levels", _outer(path))
            if isinstance(item, dict):
                for key, inner in item.items():
                    inner_path = f"{path}.{key}" if path else str(key)
                    check_text(str(key), inner_path)
                    stack.append((inner, inner_path, depth + 1))
            else:
                stack.extend((inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item))
        elif isinstance(item, _Refused):
            raise UnsafeJSON(item.reason, path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJSON("a number out of range", path)


def _outer(path: str) -> str:
    """Where deep nesting starts, readably: `meta.tree`, not `meta.tree[0][0][0]...`."""
    path = re.sub(r"(\[\d+\])+$", "", path)
    return path if len(path) <= 80 else path[:80] + "..."


def check_text(text: str, field: str = "") -> str:
    """The text, if a database can store it."""
    if "\x00" in text:
        raise UnsafeJSON("contains a NUL character (\\u0000), which cannot be stored", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJSON(
            f"contains an unpaired surrogate ({text[exc.start]!r} at character {exc.start}), "
            "which is not valid Unicode",
            field,
        ) from None
    return text
