"""The error answers of every operation, stated in the OpenAPI document: each family of routes
answers errors in its own shape (problem+json under /api, the DRS Error, the htsget error
object, the Beacon error response) with the statuses the one error mapping in `app.py` gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorFamily:
    """How the routes under `prefix` answer errors: in which shape, with which statuses."""

    prefix: str
    schema: str  # the name of its component schema
    media_type: str
    statuses: tuple[int, ...]


_ERROR_TEXT = {"type": "string", "description": "What was wrong and how to fix it (English)"}
_ERROR_TEXT_ZH = {"type": "string", "description": "The same, in Chinese"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem: the status, a code, and what to change.",
        "required": ["status", "code", "message", "message_zh"],
        "properties": {
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "message": _ERROR_TEXT,
            "message_zh": _ERROR_TEXT_ZH,
            "details": {"description": "Where the problem lies (fields, rows, rules)"},
        },
    },
    "DrsError": {
        "type": "object",
        "description": "GA4GH DRS Error (msg, status_code), with the problem's fields.",
        "required": ["msg", "status_code"],
        "properties": {
            "msg": {"type": "string"},
            "status_code": {"type": "integer"},
            "code": {"type": "string"},
            "message": _ERROR_TEXT,
            "message_zh": _ERROR_TEXT_ZH,
            "details": {},
        },
    },
    "HtsgetError": {
        "type": "object",
        "description": "An htsget 1.3 error object.",
        "required": ["htsget"],
        "properties": {
            "htsget": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {
                        "type": "string",
                        "enum": [
                            "InvalidAuthentication",
                            "PermissionDenied",
                            "NotFound",
                            "PayloadTooLarge",
                            "UnsupportedFormat",
                            "InvalidInput",
                            "InvalidRange",
                            "InternalError",
                        ],
                    },
                    "message": _ERROR_TEXT,
                    "message_zh": _ERROR_TEXT_ZH,
                    "details": {},
                },
            }
        },
    },
    "BeaconError": {
        "type": "object",
        "description": "A Beacon v2 beaconErrorResponse.",
        "required": ["meta", "error"],
        "properties": {
            "meta": {"type": "object"},
            "error": {
                "type": "object",
                "required": ["errorCode"],
                "properties": {
                    "errorCode": {"type": "integer"},
                    "errorMessage": {"type": "string"},
                    "details": {},
                },
            },
        },
    },
}

# the statuses `app.py` answers errors with, by family (GA4GH families answer input errors with
# 400, the rest of the API with 422; 401 is an unreadable or expired token, 409 a conflict with
# the state of the record, 413 a request too large, 429 too many attempts or a spent budget)
FAMILIES = (
    ErrorFamily("/beacon", "BeaconError", "application/json", (400, 401, 403, 404, 409, 429)),
    ErrorFamily("/ga4gh/drs/", "DrsError", "application/json", (400, 401, 403, 404, 409, 413)),
    ErrorFamily("/htsget/", "HtsgetError", "application/json", (400, 401, 403, 404, 409, 413)),
    ErrorFamily(
        "/", "Problem", "application/problem+json", (401, 403, 404, 409, 413, 422, 429, 503)
    ),
)

_DESCRIPTIONS = {
    400: "The request is malformed or breaks a rule",
    401: "No valid credentials: send a valid bearer token",
    403: "The caller may not do this",
    404: "No such record (or not visible to the caller)",
    409: "The request conflicts with the state of the record",
    413: "The request is too large",
    422: "The request is malformed or breaks a rule",
    429: "Too many attempts, or the caller's query budget is spent",
    503: "Storage is unavailable or full; retry later",
}


def family(path: str) -> ErrorFamily:
    """The error family of the routes at `path`."""
    return next(f for f in FAMILIES if path.startswith(f.prefix))


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (an OpenAPI document FastAPI made) with every operation's error responses
    stated in its family's shape and media type, replacing FastAPI's own 422 (which describes
    an answer this application never gives)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(SCHEMAS)
    for path, item in document.get("paths", {}).items():
        errors = family(path)
        reference = {"$ref": f"#/components/schemas/{errors.schema}"}
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            for status in errors.statuses:
                responses.setdefault(
                    str(status),
                    {
                        "description": _DESCRIPTIONS[status],
                        "content": {errors.media_type: {"schema": reference}},
                    },
                )
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document
