"""`GET /v1/metrics/{name}` on SQLite and PostgreSQL against hand-computed counts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.db.models import Origin
from tests.metrics.conftest import AUTH, insert_rows, row


async def series(client: httpx.AsyncClient, name: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/metrics/{name}", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def values(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(bucket["start"], bucket["value"]) for bucket in body["buckets"]]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["detail"]
    return problem


async def test_daily_buckets_at_utc_boundaries(client):
    await insert_rows(
        client,
        [
            row("a", "2026-11-30T23:59:59.999999+00:00"),
            row("b", "2026-12-01T00:00:00+00:00"),
            # 23:30 UTC on Nov 30, although the local date is Dec 1.
            row("c", "2026-12-01T01:30:00+02:00"),
            # 01:00 UTC on Dec 3, although the local date is Dec 2.
            row("d", "2026-12-02T23:00:00-02:00"),
            row("silent", "2026-12-03T05:00:00+00:00", event_type="login.silent"),
            row("other-type", "2026-12-01T05:00:00+00:00", event_type="login.failed"),
            row("other-source", "2026-12-01T05:00:00+00:00", source="billing", event_type="login.success"),
            row("at-end", "2026-12-04T00:00:00+00:00"),
            row("before-start", "2026-11-29T23:59:59+00:00"),
        ],
    )
    body = await series(client, "logins", start="2026-11-30T00:00:00Z", end="2026-12-04T00:00:00Z", interval="day")

    assert body["metric"] == "logins"
    assert body["interval"] == "day"
    assert body["start"] == "2026-11-30T00:00:00Z"
    assert body["end"] == "2026-12-04T00:00:00Z"
    assert values(body) == [
        ("2026-11-30T00:00:00Z", 2),
        ("2026-12-01T00:00:00Z", 1),
        ("2026-12-02T00:00:00Z", 0),
        ("2026-12-03T00:00:00Z", 2),
    ]
    assert [bucket["end"] for bucket in body["buckets"]][-1] == "2026-12-04T00:00:00Z"
    assert body["totals"]["value"] == 5


async def test_origin_split_per_bucket(client):
    await insert_rows(
        client,
        [
            row("p1", "2026-12-01T10:00:00+00:00", origin=Origin.PUSH),
            row("p2", "2026-12-01T11:00:00+00:00", origin=Origin.PUSH),
            row("r1", "2026-12-01T12:00:00+00:00", origin=Origin.RECONCILIATION),
            row("a1", "2026-12-02T12:00:00+00:00", origin=Origin.API),
            row("r2", "2026-12-02T13:00:00+00:00", origin=Origin.RECONCILIATION),
        ],
    )
    body = await series(client, "logins", start="2026-12-01T00:00:00Z", end="2026-12-03T00:00:00Z", interval="day")

    first, second = body["buckets"]
    assert first == {
        "start": "2026-12-01T00:00:00Z",
        "end": "2026-12-02T00:00:00Z",
        "value": 3,
        "pushed": 2,
        "reconciled": 1,
        "api": 0,
    }
    assert (second["value"], second["pushed"], second["reconciled"], second["api"]) == (2, 0, 1, 1)
    assert body["totals"] == {"value": 5, "pushed": 2, "reconciled": 2, "api": 1}


async def test_hourly_buckets(client):
    await insert_rows(
        client,
        [
            row("a", "2026-12-01T00:59:59.999999+00:00"),
            row("b", "2026-12-01T01:00:00+00:00"),
            row("c", "2026-12-01T01:59:00+00:00"),
        ],
    )
    body = await series(client, "logins", start="2026-12-01T00:00:00Z", end="2026-12-01T03:00:00Z", interval="hour")
    assert values(body) == [("2026-12-01T00:00:00Z", 1), ("2026-12-01T01:00:00Z", 2), ("2026-12-01T02:00:00Z", 0)]


async def test_week_starts_monday(client):
    # 2026-11-29 is a Sunday and 2026-11-30 a Monday.
    await insert_rows(
        client,
        [
            row("sunday-late", "2026-11-29T23:59:59.999999+00:00"),
            row("monday-midnight", "2026-11-30T00:00:00+00:00"),
            row("sunday-next", "2026-12-06T12:00:00+00:00"),
            row("monday-next", "2026-12-07T00:00:00+00:00"),
        ],
    )
    body = await series(client, "logins", start="2026-11-23T00:00:00Z", end="2026-12-14T00:00:00Z", interval="week")
    assert values(body) == [
        ("2026-11-23T00:00:00Z", 1),
        ("2026-11-30T00:00:00Z", 2),
        ("2026-12-07T00:00:00Z", 1),
    ]
    assert body["buckets"][0]["end"] == "2026-11-30T00:00:00Z"


async def test_month_edges_february_and_new_year(client):
    await insert_rows(
        client,
        [
            row("jan-last", "2026-01-31T23:59:59.999999+00:00"),
            row("feb-first", "2026-02-01T00:00:00+00:00"),
            row("feb-last", "2026-02-28T23:59:59+00:00"),
            row("mar-first", "2026-03-01T00:00:00+00:00"),
            row("dec-last", "2026-12-31T23:59:59.999999+00:00"),
            row("jan-next", "2027-01-01T00:00:00+00:00"),
        ],
    )
    body = await series(client, "logins", start="2026-01-01T00:00:00Z", end="2027-02-01T00:00:00Z", interval="month")

    expected = {"2026-01": 1, "2026-02": 2, "2026-03": 1, "2026-12": 1, "2027-01": 1}
    assert len(body["buckets"]) == 13
    for bucket in body["buckets"]:
        assert bucket["value"] == expected.get(bucket["start"][:7], 0), bucket
    february = body["buckets"][1]
    assert (february["start"], february["end"]) == ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    december = body["buckets"][11]
    assert (december["start"], december["end"]) == ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")


async def test_subject_filter(client):
    await insert_rows(
        client,
        [
            row("a", "2026-12-01T10:00:00+00:00", subject="user_1"),
            row("b", "2026-12-01T11:00:00+00:00", subject="user_2"),
            row("c", "2026-12-02T11:00:00+00:00", subject="user_2"),
            row("d", "2026-12-02T12:00:00+00:00", subject=None),
        ],
    )
    body = await series(
        client, "logins", start="2026-12-01T00:00:00Z", end="2026-12-03T00:00:00Z", interval="day", subject="user_2"
    )
    assert body["subject"] == "user_2"
    assert values(body) == [("2026-12-01T00:00:00Z", 1), ("2026-12-02T00:00:00Z", 1)]


async def test_group_by_subject_top_limit(client):
    rows = []
    for subject, count in (("user_a", 3), ("user_b", 2), ("user_c", 2), ("user_d", 1)):
        rows.extend(row(f"{subject}-{n}", f"2026-12-0{n % 2 + 1}T10:00:00+00:00", subject=subject) for n in range(count))
    rows.append(row("reconciled-a", "2026-12-02T11:00:00+00:00", subject="user_a", origin=Origin.RECONCILIATION))
    rows.append(row("no-subject", "2026-12-01T12:00:00+00:00", subject=None))
    await insert_rows(client, rows)

    body = await series(
        client,
        "logins",
        start="2026-12-01T00:00:00Z",
        end="2026-12-03T00:00:00Z",
        interval="day",
        group_by="subject",
        limit=2,
    )

    assert body["group_by"] == "subject"
    assert [item["subject"] for item in body["series"]] == ["user_a", "user_b"]
    user_a = body["series"][0]
    assert [bucket["value"] for bucket in user_a["buckets"]] == [2, 2]
    assert user_a["totals"] == {"value": 4, "pushed": 3, "reconciled": 1, "api": 0}
    assert body["series"][1]["totals"]["value"] == 2
    # Totals cover every event of the metric, subjects outside the top ones included.
    assert body["totals"]["value"] == 10


async def test_group_by_empty_range_has_no_series(client):
    body = await series(
        client, "logins", start="2026-12-01T00:00:00Z", end="2026-12-02T00:00:00Z", interval="day", group_by="subject"
    )
    assert body["series"] == []
    assert body["totals"]["value"] == 0


async def test_payload_filter_equals(client):
    invoice = {"event_type": "invoice.paid", "subject": None}
    await insert_rows(
        client,
        [
            row("paid", "2026-12-01T10:00:00+00:00", payload={"data": {"status": "paid"}}, **invoice),
            row("void", "2026-12-01T10:00:00+00:00", payload={"data": {"status": "void"}}, **invoice),
            row("missing", "2026-12-01T10:00:00+00:00", payload={"data": {}}, **invoice),
            row("nested", "2026-12-01T10:00:00+00:00", payload={"data": {"status": {"paid": True}}}, **invoice),
            row("paid-2", "2026-12-01T11:00:00+00:00", payload={"data": {"status": "paid", "n": 2}}, **invoice),
        ],
    )
    body = await series(client, "paid-invoices", start="2026-12-01T00:00:00Z", end="2026-12-02T00:00:00Z", interval="day")
    assert values(body) == [("2026-12-01T00:00:00Z", 2)]


async def test_payload_filter_in_and_boolean(client):
    invoice = {"event_type": "invoice.paid", "subject": None}
    cases = {
        "pro-live": ({"plan": "pro", "live": True}, True),
        "team-live": ({"plan": "team", "live": True}, True),
        "pro-test": ({"plan": "pro", "live": False}, False),
        "free-live": ({"plan": "free", "live": True}, False),
        "pro-live-as-text": ({"plan": "pro", "live": "true"}, False),
        "pro-live-as-number": ({"plan": "pro", "live": 1}, False),
    }
    await insert_rows(
        client,
        [row(key, "2026-12-01T10:00:00+00:00", payload={"data": data}, **invoice) for key, (data, _) in cases.items()],
    )
    body = await series(client, "big-plans", start="2026-12-01T00:00:00Z", end="2026-12-02T00:00:00Z", interval="day")
    expected = sum(1 for _, counted in cases.values() if counted)
    assert values(body) == [("2026-12-01T00:00:00Z", expected)]


async def test_list_metrics(client):
    response = await client.get("/v1/metrics", headers=AUTH)
    assert response.status_code == 200
    metrics = {item["name"]: item for item in response.json()["metrics"]}
    assert set(metrics) == {"logins", "paid-invoices", "big-plans", "usage"}
    assert metrics["logins"]["event_types"] == ["login.success", "login.silent"]
    assert metrics["logins"]["by_subject"] is True
    assert metrics["big-plans"]["filters"] == [
        {"pointer": "/data/plan", "in": ["pro", "team"]},
        {"pointer": "/data/live", "equals": True},
    ]


async def test_unknown_metric_is_404(client):
    response = await client.get(
        "/v1/metrics/nope", params={"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}, headers=AUTH
    )
    problem = assert_problem(response, 404, "metric_not_found")
    assert "nope" in problem["detail"]


@pytest.mark.parametrize(
    ("params", "code", "parameter"),
    [
        ({"start": "2026-12-01T00:30:00Z", "end": "2026-12-01T02:00:00Z", "interval": "hour"}, "unaligned_range", "start"),
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-12-01T12:00:00Z", "interval": "day"}, "unaligned_range", "end"),
        # 2026-12-01 is a Tuesday.
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-12-14T00:00:00Z", "interval": "week"}, "unaligned_range", "start"),
        ({"start": "2026-12-02T00:00:00Z", "end": "2027-01-01T00:00:00Z", "interval": "month"}, "unaligned_range", "start"),
        # Midnight in UTC+01:00 is 23:00 UTC, not the start of a UTC day.
        ({"start": "2026-12-01T00:00:00+01:00", "end": "2026-12-03T00:00:00Z", "interval": "day"}, "unaligned_range", "start"),
        ({"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z", "interval": "day"}, "invalid_parameter", "start"),
        ({"start": "2026-12-01T00:00:00Z", "end": "2026-12-01T00:00:00Z", "interval": "day"}, "invalid_parameter", "start"),
        ({"start": "2026-12-01T00:00:00", "end": "2026-12-02T00:00:00Z", "interval": "day"}, "invalid_parameter", "start"),
        ({"start": "yesterday", "end": "2026-12-02T00:00:00Z", "interval": "day"}, "invalid_parameter", "start"),
    ],
)
async def test_invalid_window_is_422(client, params, code, parameter):
    response = await client.get("/v1/metrics/logins", params=params, headers=AUTH)
    problem = assert_problem(response, 422, code)
    assert problem["parameter"] == parameter


async def test_unaligned_detail_names_aligned_values(client):
    params = {"start": "2026-12-01T00:30:00Z", "end": "2026-12-01T02:00:00Z", "interval": "hour"}
    problem = assert_problem(await client.get("/v1/metrics/logins", params=params, headers=AUTH), 422, "unaligned_range")
    assert "2026-12-01T00:00:00Z" in problem["detail"]
    assert "2026-12-01T01:00:00Z" in problem["detail"]


async def test_too_many_buckets_is_422(client):
    # 42 days of hours are 1,008 buckets, over the default maximum of 1,000.
    params = {"start": "2026-11-01T00:00:00Z", "end": "2026-12-13T00:00:00Z", "interval": "hour"}
    problem = assert_problem(await client.get("/v1/metrics/logins", params=params, headers=AUTH), 422, "too_many_buckets")
    assert problem["max_buckets"] == 1000
    assert "1000" in problem["detail"]


async def test_range_at_bucket_limit_is_allowed(client):
    # 1,000 hourly buckets exactly.
    body = await series(client, "logins", start="2026-11-01T00:00:00Z", end="2026-12-12T16:00:00Z", interval="hour")
    assert len(body["buckets"]) == 1000


@pytest.mark.parametrize("params", [{"subject": "user_1"}, {"group_by": "subject"}])
async def test_subject_on_metric_without_by_subject(client, params):
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}
    response = await client.get("/v1/metrics/paid-invoices", params={**window, **params}, headers=AUTH)
    problem = assert_problem(response, 422, "invalid_parameter")
    assert "by_subject" in problem["detail"]


@pytest.mark.parametrize(
    "params",
    [{"interval": "year"}, {"group_by": "source"}, {"group_by": "subject", "limit": 1001}, {"limit": 0}],
)
async def test_invalid_query_parameters(client, params):
    window = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}
    response = await client.get("/v1/metrics/logins", params={**window, **params}, headers=AUTH)
    assert_problem(response, 422, "invalid_request")


async def test_series_requires_token(client):
    params = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}
    response = await client.get("/v1/metrics/logins", params=params)
    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


WINDOW = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "interval": "day"}


async def test_unknown_parameter_names_closest_match(client):
    await insert_rows(client, [row("a", "2026-12-01T10:00:00+00:00", subject="cus_X")])
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "subjet": "cus_Y"}, headers=AUTH)

    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "subjet"
    assert "did you mean 'subject'?" in problem["detail"]
    assert problem["accepted"] == ["end", "group_by", "interval", "limit", "start", "subject"]
    assert "end, group_by, interval, limit, start, subject" in problem["detail"]


async def test_several_unknown_parameters_all_named(client):
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "intervall": "day", "zzz": "1"}, headers=AUTH)

    problem = assert_problem(response, 422, "invalid_parameter")
    assert "'intervall' (did you mean 'interval'?)" in problem["detail"]
    assert "'zzz'" in problem["detail"]


async def test_repeated_parameter_is_422(client):
    query = "start=2026-12-01T00:00:00Z&start=2026-11-01T00:00:00Z&end=2026-12-02T00:00:00Z&interval=day"
    response = await client.get(f"/v1/metrics/logins?{query}", headers=AUTH)

    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "start"
    assert "2 times" in problem["detail"]


async def test_unknown_parameter_beside_missing_required_one(client):
    """A typo of a required parameter is reported by its name, not as a missing parameter."""
    params = {"start": "2026-12-01T00:00:00Z", "edn": "2026-12-02T00:00:00Z", "interval": "day"}
    problem = assert_problem(await client.get("/v1/metrics/logins", params=params, headers=AUTH), 422, "invalid_parameter")
    assert "did you mean 'end'?" in problem["detail"]


async def test_listing_rejects_query_parameters(client):
    problem = assert_problem(await client.get("/v1/metrics?name=logins", headers=AUTH), 422, "invalid_parameter")
    assert "takes no query parameters" in problem["detail"]
    assert problem["accepted"] == []


async def test_unknown_parameter_without_token_is_401(client):
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "subjet": "x"})
    assert_problem(response, 401, "missing_token")


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ({"start": "0001-01-01T00:00:00Z", "end": "0001-01-08T00:00:00Z", "interval": "week"}, "start", "out of range"),
        ({"start": "0001-01-01T00:00:00+23:59", "end": "2026-12-01T00:00:00Z", "interval": "day"}, "start", "out of range"),
        ({"start": "2026-12-01T00:00:00Z", "end": "9999-12-31T23:59:59-23:59", "interval": "day"}, "end", "out of range"),
        ({"start": "9999-12-01T00:00:00Z", "end": "9999-12-31T12:00:00Z", "interval": "day"}, "start", "out of range"),
        ({"start": "9998-12-01T00:00:00Z", "end": "9999-12-01T00:00:00Z", "interval": "month"}, "end", "out of range"),
        ({"start": "1969-12-31T00:00:00Z", "end": "1970-01-02T00:00:00Z", "interval": "day"}, "start", "1970-01-01"),
    ],
    ids=["year-1", "year-1-offset", "year-9999-offset", "year-9999-unaligned", "month-past-9999", "before-1970"],
)
async def test_extreme_dates_are_422(client, params, parameter, fragment):
    problem = assert_problem(await client.get("/v1/metrics/logins", params=params, headers=AUTH), 422, "invalid_parameter")
    assert problem["parameter"] == parameter
    assert fragment in problem["detail"]
    assert "9999-01-01T00:00:00Z" in problem["detail"]


async def test_range_edges_are_allowed(client):
    first = await series(client, "logins", start="1970-01-01T00:00:00Z", end="1970-01-03T00:00:00Z", interval="day")
    last = await series(client, "logins", start="9998-12-01T00:00:00Z", end="9999-01-01T00:00:00Z", interval="month")
    assert values(first) == [("1970-01-01T00:00:00Z", 0), ("1970-01-02T00:00:00Z", 0)]
    assert values(last) == [("9998-12-01T00:00:00Z", 0)]


async def test_subject_with_nul_is_422(client):
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "subject": "user\x00_1"}, headers=AUTH)
    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "subject"
    assert "NUL" in problem["detail"]


async def test_limit_without_group_by_is_422(client):
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "limit": 3}, headers=AUTH)
    problem = assert_problem(response, 422, "invalid_parameter")
    assert problem["parameter"] == "limit"
    assert "group_by=subject" in problem["detail"]


async def test_group_by_default_limit_is_10(client):
    await insert_rows(client, [row(f"k{n}", "2026-12-01T10:00:00+00:00", subject=f"user_{n:02}") for n in range(12)])
    body = await series(client, "logins", **WINDOW, group_by="subject")
    assert body["limit"] == 10
    assert len(body["series"]) == 10


@pytest.mark.parametrize("limit", ["1" + "0" * 40, "-1", "1e3", "ten"])
async def test_extreme_limit_is_422(client, limit):
    response = await client.get("/v1/metrics/logins", params={**WINDOW, "group_by": "subject", "limit": limit}, headers=AUTH)
    problem = assert_problem(response, 422, "invalid_request")
    assert "limit" in problem["detail"]
