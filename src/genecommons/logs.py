"""How the server's log lines are written: text, or one JSON object a line
(`GENECOMMONS_LOG_FORMAT=json`), each carrying the id of the request it was written for."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from genecommons import request_ids

# what a LogRecord has of its own: anything else on a record was passed in `extra=` and is kept
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "color_message"}
)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's, or None) to every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_ids.current()
        return True


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC, ISO 8601), level, logger, message, request_id,
    the fields passed in `extra=`, and the exception's traceback if any. uvicorn's access lines
    also get their parts as fields (client, method, path, status)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_ids.current(),
        }
        access = record.name == "uvicorn.access" and isinstance(record.args, tuple)
        if access and len(record.args) == 5:  # type: ignore[arg-type]
            client, method, path, version, status = record.args  # type: ignore[misc]
            document.update(
                client=client, method=method, path=path, http_version=version, status=status
            )
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in document:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def logging_config(log_format: str, *, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` document for the server (uvicorn's loggers and the
    node's): every line to stderr, as text or JSON, with its request id."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False},
            "genecommons": {"handlers": ["default"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
