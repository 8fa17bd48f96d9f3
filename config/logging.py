"""Log lines in the seed's shape: one JSON object per line, tagged with the request id."""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = request_id_var.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "backend-api") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "service": self.service,
            "trace_id": getattr(record, "trace_id", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "context", None)
        if context:
            line["context"] = context
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _one_line(text: str) -> str:
    """A request's path or header may hold line breaks: escaped, they cannot forge a line of the log."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname:<7} [{getattr(record, 'trace_id', None) or '-'}] "
        text += f"{record.name}: {_one_line(record.getMessage())}"
        context = getattr(record, "context", None)
        if context:
            text += " " + " ".join(f"{key}={_one_line(str(value))}" for key, value in context.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
