"""What PostgreSQL and JSON can store and serve back: refused at the edge, checked again when old rows are read.

PostgreSQL refuses a NUL character in text and in ``jsonb`` (``\\u0000``), a lone UTF-16 surrogate (``\\ud800``) does
not encode as UTF-8, and ``jsonb`` has no NaN or Infinity; each made a write fail with 500. A free-form JSON value
(a flow's ``definition``) nested a few hundred levels deep was stored but could not be serialised back (pydantic's
limit is 255 levels), so every read of it failed. The walk below is iterative: any depth is safe to check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
"""Levels of objects and arrays inside each other a free-form JSON value may have (the value itself is level 1)."""
MAX_JSON_VALUES = 10_000
"""Values (objects, arrays, strings, numbers, booleans, nulls; keys not counted) a free-form JSON value may hold."""

FREE_JSON_RULES = (
    f"at most {MAX_JSON_DEPTH} levels deep and {MAX_JSON_VALUES:,} values; no NUL character (\\u0000) or unpaired "
    "surrogate (\\ud800-\\udfff) in any key or string; finite numbers only"
)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
STORABLE_PATTERN = r"^[^\x00]*$"
"""The NUL rule as a JSON Schema pattern, for the OpenAPI document (a pattern cannot name lone surrogates portably:
they are in the descriptions)."""


class UnstorableError(ValueError):
    """A value the database could not store (or the API could not serve back); the message says where and why."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"contains a NUL character (\\u0000) at position {found.start()}, which cannot be stored; remove it"
    return (
        f"contains an unpaired surrogate (\\u{ord(found.group()):04x}) at position {found.start()}, which is not "
        "valid Unicode; send the character itself or a complete surrogate pair"
    )


def check_text(text: str) -> str:
    """Return ``text`` if it can be stored, else raise :class:`UnstorableError` saying why."""
    problem = text_problem(text)
    if problem is not None:
        raise UnstorableError(problem)
    return text


def free_json_problem(value: object, where: str = "") -> str | None:
    """Why the free-form JSON ``value`` cannot be stored or served back, naming the place inside it; None if it can."""
    stack: list[tuple[object, str, int]] = [(value, where, 1)]
    count = 0
    while stack:
        item, path, depth = stack.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            return f"holds more than {MAX_JSON_VALUES:,} values"
        if depth > MAX_JSON_DEPTH and isinstance(item, dict | list):
            return f"is nested more than {MAX_JSON_DEPTH} levels deep (at {path or 'the top'})"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"at {path or 'the top'}: the string {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"at {path or 'the top'}: {item} is not a finite number, which JSON requires"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                key_problem = text_problem(str(key))
                if key_problem is not None:
                    return f"at {path or 'the top'}: the key {str(key)!r} {key_problem}"
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))
        elif not (item is None or isinstance(item, bool | int | float)):
            return f"at {path or 'the top'}: a {type(item).__name__} is not JSON"
    return None


def check_free_json(value: dict[str, Any]) -> dict[str, Any]:
    """Return ``value`` if it is within :data:`FREE_JSON_RULES`, else raise :class:`UnstorableError` saying where."""
    problem = free_json_problem(value)
    if problem is not None:
        raise UnstorableError(problem)
    return value


def read_stored_json(text: str) -> tuple[dict[str, Any], str | None]:
    """A stored JSON object (``jsonb`` as text), or ``{}`` and why it cannot be served (a row from before the limits).

    A bounded read: nesting past what the JSON decoder can take comes back as a problem, never an exception.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        return {}, f"is nested too deeply to read (limit: {MAX_JSON_DEPTH} levels)"
    if not isinstance(value, dict):
        return {}, f"is a JSON {type(value).__name__}, not an object"
    problem = free_json_problem(value)
    return (value, None) if problem is None else ({}, problem)
