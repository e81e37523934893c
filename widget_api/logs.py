"""Log lines as JSON objects (MAILWIDGET_LOG_FORMAT=json), each with the id of the request
it was written for, so a user's X-Request-ID finds every line of their request.

The id travels in a context variable set by widget_api.request_ids: it follows the request
into the threadpool that runs sync endpoints, and is None outside any request."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
FORMATS = ("text", "json")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            out["request_id"] = record.request_id
        if record.exc_info and record.exc_info[0]:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(fmt: str, stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """One handler on the root logger; uvicorn's loggers propagate to it when uvicorn is run
    with log_config=None. Returns the handler (tests remove it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def say(line: str, logger: str = "mailwidget") -> None:
    """A line for whoever runs the process, on stderr: a JSON log line once `configure("json")`
    ran (a log pipeline reads every line), else the line as it is."""
    if any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers):
        logging.getLogger(logger).info(line)
    else:
        print(line, file=sys.stderr, flush=True)
