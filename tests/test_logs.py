"""MAILWIDGET_LOG_FORMAT=json: one JSON object per line, with the request's id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from widget_api import logs
from widget_api.config import Settings
from widget_api.main import create_app


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    level = logging.getLogger().level
    handler = logs.configure("json", stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestJsonLogs:
    def test_a_line_written_inside_a_request_carries_its_id(self, runtime, json_log: io.StringIO) -> None:  # type: ignore[no-untyped-def]
        app = create_app(runtime.settings, runtime)

        @app.get("/test-log")
        def write_a_line() -> dict[str, str]:  # sync: runs in the threadpool, the id must follow
            logging.getLogger("mailwidget.test").warning("from the endpoint")
            return {}

        with TestClient(app) as client:
            assert client.get("/test-log", headers={"X-Request-ID": "req-42"}).status_code == 200
        line = next(entry for entry in lines(json_log) if entry["message"] == "from the endpoint")
        assert line["request_id"] == "req-42" and line["level"] == "warning" and line["logger"] == "mailwidget.test"

    def test_a_line_outside_any_request_has_no_id(self, json_log: io.StringIO) -> None:
        logging.getLogger("mailwidget.test").warning("at start-up")
        (line,) = [e for e in lines(json_log) if e["message"] == "at start-up"]
        assert "request_id" not in line and line["time"]

    def test_the_setting(self) -> None:
        assert Settings.from_env({"MAILWIDGET_LOG_FORMAT": "JSON"}).log_format == "json"
        assert Settings.from_env({}).log_format == "text"
        with pytest.raises(ValueError, match="text or json"):
            Settings.from_env({"MAILWIDGET_LOG_FORMAT": "xml"})
