"""Log configuration: one JSON object per line, for our events and for other libraries alike."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from app.logs import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_for_structlog_and_stdlib(capsys, restore_logging):
    configure_logging("info", "json")
    structlog.get_logger().info("ingest.event_stored", source="acme")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event"] for line in lines] == [
        "ingest.event_stored",
        "Started server process [7]",
        "Exception in ASGI application",
    ]
    assert lines[0]["source"] == "acme"
    assert lines[1]["logger"] == "uvicorn.error"
    assert "ValueError: bad" in lines[2]["exception"]


def test_level_filters_debug(capsys, restore_logging):
    configure_logging("warning", "json")
    structlog.get_logger().info("quiet.event")
    logging.getLogger("alembic").info("quiet too")
    structlog.get_logger().warning("loud.event")
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events == ["loud.event"]


def test_access_log_stays_off(restore_logging):
    access = logging.getLogger("uvicorn.access")
    saved = access.propagate, access.handlers[:]
    try:
        # What uvicorn does before loading the app when access_log is False.
        access.handlers[:] = []
        access.propagate = False
        configure_logging("info", "json")
        assert not access.hasHandlers()
    finally:
        access.propagate, access.handlers[:] = saved
