"""Property tests: no input to the hook route gives a 500."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.signing import SECRET, standard_webhooks_headers

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": json_values | st.text(max_size=300),
        "timestamp": json_values | st.sampled_from(["2026-12-01T00:00:00Z", "2026-12-01", "1733000000", "9" * 30]),
        "data": st.fixed_dictionaries({}, optional={"user_id": json_values}) | json_values,
    },
)
content_types = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/json; charset=utf-8"]
)


def assert_no_server_error(response) -> None:
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"]


@FUZZ_SETTINGS
@given(
    body=st.binary(max_size=300),
    webhook_id=header_text,
    timestamp=header_text,
    signature=header_text,
    content_type=content_types,
    encoding=st.sampled_from([None, "gzip", "br", "identity"]),
)
async def test_unsigned_garbage_never_500(client, body, webhook_id, timestamp, signature, content_type, encoding):
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature,
        "content-type": content_type,
    }
    if encoding:
        headers["content-encoding"] = encoding
    response = await client.post("/v1/hooks/acme", content=body, headers=headers)
    assert_no_server_error(response)
    assert response.status_code != 200


@FUZZ_SETTINGS
@given(
    document=event_like | json_values,
    msg_id=st.text(min_size=1, max_size=300),
    content_type=content_types,
)
async def test_signed_arbitrary_json_never_500(client, clock, document, msg_id, content_type):
    body = json.dumps(document).encode()
    try:
        msg_id.encode("latin-1")
    except UnicodeEncodeError:
        return
    headers = standard_webhooks_headers(SECRET, msg_id, int(clock.now.timestamp()), body)
    headers["content-type"] = content_type
    raw_headers = {name: value.encode("latin-1") for name, value in headers.items()}
    response = await client.post("/v1/hooks/acme", content=body, headers=raw_headers)
    assert_no_server_error(response)


@FUZZ_SETTINGS
@given(source=st.text(min_size=1, max_size=80))
async def test_any_source_name_never_500(client, source):
    response = await client.post(f"/v1/hooks/{quote(source, safe='')}", content=b"{}")
    assert_no_server_error(response)
