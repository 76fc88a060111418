"""The OpenAPI document: FastAPI's, plus what it cannot derive (the recursive schema of free-form JSON values)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.api.schemas import FREE_JSON_VALUE
from services.api.storable import FREE_JSON_RULES, STORABLE_PATTERN

_VALUE_REF = {"$ref": f"#/components/schemas/{FREE_JSON_VALUE}"}

FREE_JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": f"any JSON value inside a free-form object: {FREE_JSON_RULES}",
    "anyOf": [
        {"type": "string", "pattern": STORABLE_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": _VALUE_REF},
        {"type": "object", "propertyNames": {"pattern": STORABLE_PATTERN}, "additionalProperties": _VALUE_REF},
    ],
}


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's document with the components it cannot derive added (built once, on first request)."""
    derived = app.openapi

    def openapi() -> dict[str, Any]:
        schema = derived()  # cached by FastAPI in app.openapi_schema: this runs its body once
        schema.setdefault("components", {}).setdefault("schemas", {})[FREE_JSON_VALUE] = FREE_JSON_VALUE_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
