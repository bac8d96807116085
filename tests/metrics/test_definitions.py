"""Parsing `[metrics.NAME]` and `[metrics_api]`: valid tables and each kind of invalid one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from app.config import AppConfig, ConfigError, load_config
from app.metrics.definitions import parse_metrics_config

SOURCES = {"acme": object()}


def parse(raw: dict[str, Any]):
    return parse_metrics_config(AppConfig(sources=SOURCES, raw=raw))  # type: ignore[arg-type]


VALID: dict[str, Any] = {
    "metrics_api": {"sources": ["billing"]},
    "metrics": {
        "logins": {"description": "Logins", "source": "acme", "event_types": ["login.success"], "by_subject": True},
        "paid": {
            "source": "acme",
            "event_types": ["invoice.paid", "invoice.paid"],
            "filters": [
                {"pointer": "/data/status", "equals": "paid"},
                {"pointer": "/data/plan", "in": ["pro", "team"]},
                {"pointer": "/data/a~1b", "equals": 3},
            ],
        },
        "usage": {"source": "billing", "event_types": ["usage"]},
    },
}


def test_valid_definitions():
    config = parse(VALID)

    assert set(config.definitions) == {"logins", "paid", "usage"}
    assert config.api_sources == frozenset({"billing"})
    logins = config.definitions["logins"]
    assert logins.description == "Logins"
    assert logins.by_subject is True
    assert logins.filters == ()
    paid = config.definitions["paid"]
    assert paid.event_types == ("invoice.paid",)
    assert paid.by_subject is False
    assert [f.tokens for f in paid.filters] == [("data", "status"), ("data", "plan"), ("data", "a/b")]
    assert [f.values for f in paid.filters] == [("paid",), ("pro", "team"), (3,)]


def test_no_metrics_section():
    config = parse({})
    assert dict(config.definitions) == {}
    assert config.api_sources == frozenset()


def with_metric(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    metric = raw["metrics"]["logins"]
    for key, value in changes.items():
        if value is None:
            metric.pop(key, None)
        else:
            metric[key] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (with_metric(source="nobody"), ["[metrics.logins]", "source", "'nobody'", "[metrics_api]"]),
        (with_metric(source=None), ["[metrics.logins]", "source", "Field required"]),
        (with_metric(event_types=[]), ["[metrics.logins]", "event_types"]),
        (with_metric(event_types=None), ["[metrics.logins]", "event_types"]),
        (with_metric(event_types=[""]), ["[metrics.logins]", "event_types.0"]),
        (with_metric(event_types="login.success"), ["[metrics.logins]", "event_types"]),
        (with_metric(colour="blue"), ["[metrics.logins]", "colour", "unknown key"]),
        (with_metric(by_subject="maybe"), ["[metrics.logins]", "by_subject"]),
        (with_metric(filters=[{"pointer": "data/status", "equals": "x"}]), ["filters.0 pointer", "must be empty or start with '/'"]),
        (with_metric(filters=[{"pointer": "/a~2", "equals": "x"}]), ["filters.0 pointer", "'~' must be followed by 0 or 1"]),
        (with_metric(filters=[{"pointer": "", "equals": "x"}]), ["filters.0 pointer", "whole payload"]),
        (with_metric(filters=[{"pointer": "/a"}]), ["filters.0", "exactly one of 'equals' or 'in'"]),
        (with_metric(filters=[{"pointer": "/a", "equals": "x", "in": ["y"]}]), ["filters.0", "exactly one"]),
        (with_metric(filters=[{"pointer": "/a", "in": []}]), ["filters.0.in"]),
        (with_metric(filters=[{"pointer": "/a", "equals": 1.5}]), ["filters.0.equals"]),
        (with_metric(filters=[{"pointer": "/a", "equals": "x", "regex": "y"}]), ["filters.0.regex", "unknown key"]),
    ],
)
def test_invalid_metric_names_metric_and_field(raw, fragments):
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["Logins", "logins/day", "-logins", "a" * 65, "logins day"])
def test_invalid_metric_name(name):
    raw = {"metrics": {name: {"source": "acme", "event_types": ["x"]}}}
    with pytest.raises(ConfigError, match="Metric name .* is invalid"):
        parse(raw)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"metrics": ["logins"]}, "[metrics] must be a table"),
        ({"metrics": {"logins": "acme"}}, "[metrics.logins] must be a table"),
        ({"metrics_api": {"sources": ["Bad Name"]}}, "[metrics_api] sources"),
        ({"metrics_api": {"sources": "billing"}}, "[metrics_api] sources"),
        ({"metrics_api": {"source": ["billing"]}}, "unknown key"),
    ],
)
def test_invalid_sections(raw, fragment):
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert fragment in str(caught.value)


def test_duplicate_metric_name_in_file(tmp_path: Path):
    path = tmp_path / "hookledger.toml"
    path.write_text(
        '[metrics.logins]\nsource = "acme"\nevent_types = ["a"]\n\n'
        '[metrics.logins]\nsource = "acme"\nevent_types = ["b"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert "is not valid TOML" in message
    assert "logins" in message
    assert str(path) in message


def test_definitions_from_file(tmp_path: Path):
    path = tmp_path / "hookledger.toml"
    path.write_text(
        '[metrics_api]\nsources = ["billing"]\n\n'
        '[metrics.usage]\nsource = "billing"\nevent_types = ["usage"]\n'
        'filters = [{pointer = "/kind", in = ["a", "b"]}]\n',
        encoding="utf-8",
    )
    config = parse_metrics_config(load_config(path, environ={}))
    assert config.definitions["usage"].filters[0].values == ("a", "b")
