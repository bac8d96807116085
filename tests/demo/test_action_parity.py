"""The Python port in `app.demo.action` matches the Auth0 Action byte for byte.

Each test sends events to `node`, which calls the helpers exported by
`hooks_js/post-login.js` with a fixed send time and fixed random bytes, and
compares body bytes, `webhook-id`, `webhook-timestamp` and signature with
the port's output for the same JSON text.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.demo import action

ROOT = Path(__file__).resolve().parents[2]
ACTION_JS = ROOT / "hooks_js" / "post-login.js"
SAMPLE_EVENT = json.loads((ROOT / "tests" / "data" / "auth0" / "post-login-event.json").read_text())
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW_MS = 1_705_314_607_250  # 2024-01-15T10:30:07.250Z

NODE = shutil.which("node")
pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
]

# Reads [{event, now_ms, secret}] as JSON on stdin and writes one result per case.
NODE_DRIVER = """
const action = require(process.env.HOOKLEDGER_ACTION_JS);
const fixedBytes = (size) => Buffer.from(Array.from({ length: size }, (_, i) => i));
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const results = JSON.parse(input).map((item) => {
    const built = action.buildLoginEvent(item.event, { now: item.now_ms });
    const body = action.serializeLoginEvent(built);
    const webhookId = action.deriveWebhookId(item.event, { randomBytes: fixedBytes });
    const timestamp = action.webhookTimestamp(item.now_ms);
    const signature = action.signDelivery({ secret: item.secret, webhookId, timestamp, body });
    return {
      body_base64: Buffer.from(body, 'utf8').toString('base64'),
      webhook_id: webhookId,
      timestamp,
      signature,
    };
  });
  process.stdout.write(JSON.stringify(results));
});
"""


def fixed_bytes(size: int) -> bytes:
    return bytes(range(size))


def run_node(cases: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Run the Action's helpers on `cases`; return the JSON text sent and node's results."""
    # ensure_ascii keeps lone surrogates as escapes, which both sides decode alike.
    text = json.dumps(cases, ensure_ascii=True)
    completed = subprocess.run(
        [NODE, "-e", NODE_DRIVER],
        input=text.encode("ascii"),
        capture_output=True,
        env={"HOOKLEDGER_ACTION_JS": str(ACTION_JS), "PATH": ""},
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    return text, json.loads(completed.stdout)


def run_python(text: str) -> list[dict[str, Any]]:
    """Run the port on the same JSON text that node read."""
    results = []
    for item in json.loads(text):
        signed = action.sign_login(
            item["event"], secret=item["secret"], now=item["now_ms"], random_bytes=fixed_bytes
        )
        results.append(
            {
                "body_base64": base64.b64encode(signed.body).decode("ascii"),
                "webhook_id": signed.webhook_id,
                "timestamp": signed.webhook_timestamp,
                "signature": signed.webhook_signature,
            }
        )
    return results


def assert_parity(events: dict[str, Any], *, now_ms: int = NOW_MS, secret: str = SECRET) -> None:
    names = list(events)
    cases = [{"event": events[name], "now_ms": now_ms, "secret": secret} for name in names]
    text, node_results = run_node(cases)
    python_results = run_python(text)
    assert len(node_results) == len(names)
    for name, node_result, python_result in zip(names, node_results, python_results, strict=True):
        node_body = base64.b64decode(node_result["body_base64"])
        python_body = base64.b64decode(python_result["body_base64"])
        assert python_body == node_body, name
        assert python_result["webhook_id"] == node_result["webhook_id"], name
        assert python_result["timestamp"] == node_result["timestamp"], name
        assert python_result["signature"] == node_result["signature"], name


def sample_event() -> dict[str, Any]:
    return copy.deepcopy(SAMPLE_EVENT)


def variant_events() -> dict[str, Any]:
    """The sample event and one variant per flow that changes its shape."""
    no_session = sample_event()
    del no_session["session"]

    no_transaction = sample_event()
    del no_transaction["transaction"]

    silent = sample_event()
    silent["transaction"]["prompt"] = ["none"]
    silent["request"]["query"]["prompt"] = "none"

    silent_without_transaction_id = copy.deepcopy(silent)
    del silent_without_transaction_id["transaction"]["id"]

    refresh = sample_event()
    del refresh["session"]
    refresh["transaction"] = {"protocol": "oauth2-refresh-token", "requested_scopes": ["openid"]}
    refresh["request"]["query"] = {}
    refresh["request"]["body"] = {"grant_type": "refresh_token"}
    del refresh["request"]["user_agent"]

    password_grant = sample_event()
    del password_grant["session"]
    password_grant["transaction"] = {"protocol": "oauth2-password"}
    password_grant["request"]["body"] = {"grant_type": "password"}
    password_grant["authentication"] = {
        "methods": [{"name": "pwd", "timestamp": "2024-01-15T11:00:00.000Z"}]
    }

    minimal = sample_event()
    for key in ("session", "transaction", "authentication", "authorization"):
        del minimal[key]
    del minimal["request"]["user_agent"]

    return {
        "sample": sample_event(),
        "no_session": no_session,
        "no_transaction": no_transaction,
        "silent": silent,
        "silent_without_transaction_id": silent_without_transaction_id,
        "refresh": refresh,
        "password_grant": password_grant,
        "minimal": minimal,
    }


def test_sample_and_variants_match() -> None:
    assert_parity(variant_events())


def test_sample_output_is_expected() -> None:
    """The port's sample output has the expected shape, so parity is not between empty outputs."""
    signed = action.sign_login(sample_event(), secret=SECRET, now=NOW_MS)
    body = json.loads(signed.body)

    assert body["type"] == "login"
    assert body["timestamp"] == "2024-01-15T10:30:07.250Z"
    assert body["data"]["transaction_id"] == "FAKEtxn_00000000000000000000001"
    assert body["data"]["authenticated_at"] == "2024-01-15T10:30:05.000Z"
    assert signed.webhook_id.startswith("login_")
    assert len(signed.webhook_id) == 62
    assert signed.webhook_timestamp == 1_705_314_607
    assert signed.webhook_signature.startswith("v1,")


def test_variant_kinds() -> None:
    kinds = {
        name: json.loads(action.serialize_login_event(action.build_login_event(event, now=NOW_MS)))[
            "type"
        ]
        for name, event in variant_events().items()
    }

    assert kinds == {
        "sample": "login",
        "no_session": "login",
        "no_transaction": "login",
        "silent": "silent_login",
        "silent_without_transaction_id": "silent_login",
        "refresh": "refresh",
        "password_grant": "password_grant",
        "minimal": "login",
    }


def test_timestamp_edge_cases_match() -> None:
    timestamps = [
        "2024-01-15T10:30:00Z",
        "2024-01-15T10:30Z",
        "2024-01-15T10:30:00.1Z",
        "2024-01-15T10:30:00.123456789Z",
        "2024-01-15T10:30:00+05:30",
        "2024-01-15T10:30:00-00:45",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-01-15T24:00:00Z",
        "2024-01-15T10:30:60Z",
        "2024-01-15T10:30:00",
        "2024-01-15t10:30:00z",
        "2024-01-15T10:30:00,5Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59.999-00:01",
        "0099-01-01T00:00:00Z",
        "2024-01-15T10:30:00+24:00",
        "Mon, 15 Jan 2024 10:30:00 GMT",
        "",
        1_705_314_600_000,
        1_705_314_600_000.9,
        -1,
        253_402_300_800_000,
        None,
        True,
    ]
    events = {}
    for index, value in enumerate(timestamps):
        event = sample_event()
        event["authentication"]["methods"] = [{"name": "pwd", "timestamp": value}]
        events[f"timestamp {index} {value!r}"] = event

    assert_parity(events)


def test_awkward_strings_match() -> None:
    strings = [
        'quote " backslash \\ slash /',
        "control \x00 \x01 \x08 \x09 \x0a \x0c \x0d \x1f \x7f",
        "unicode Zürich ✓ 😀 \u2028 \u2029 \ufeff",
        "lone surrogate \ud800 end",
        "low surrogate first \udc00\ud800",
    ]
    events = {}
    for index, text in enumerate(strings):
        event = sample_event()
        event["request"]["user_agent"] = text
        event["transaction"]["id"] = text
        event["user"]["user_id"] = text
        events[f"string {index}"] = event

    assert_parity(events)


def test_logins_count_edge_cases_match() -> None:
    counts = [0, -0.0, 42.0, 42.5, 2**53 - 1, 2**53, -(2**53 - 1), 10**21, "42", True, None]
    events = {}
    for index, value in enumerate(counts):
        event = sample_event()
        event["stats"]["logins_count"] = value
        events[f"count {index} {value!r}"] = event

    assert_parity(events)


def test_secrets_match() -> None:
    secrets = [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
        "whsec_AAEC-_AwQ",
        "  whsec_AAECAwQ==  ",
    ]
    for secret in secrets:
        assert_parity({"sample": sample_event()}, secret=secret)


def test_send_times_match() -> None:
    for now_ms in (0, 999, 1_705_314_607_999, 253_402_300_799_999):
        assert_parity({"sample": sample_event()}, now_ms=now_ms)


optional_text = st.one_of(st.none(), st.text(max_size=20), st.integers(), st.booleans())
timestamp_values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})",
        fullmatch=True,
    ),
    st.integers(min_value=-(10**3), max_value=3 * 10**14),
    st.floats(min_value=-1e3, max_value=3e14, allow_nan=False, allow_infinity=False),
)
methods = st.lists(
    st.fixed_dictionaries({"name": optional_text, "timestamp": timestamp_values}), max_size=4
)
prompt_values = st.one_of(
    st.none(), st.text(max_size=15), st.lists(st.one_of(st.text(max_size=8), st.integers()))
)
protocols = st.one_of(
    st.none(),
    st.sampled_from(["oauth2-refresh-token", "oauth2-password", "oidc-basic-profile", "samlp"]),
)
grant_types = st.one_of(
    st.none(),
    st.sampled_from(
        ["refresh_token", "password", "http://auth0.com/oauth/grant-type/password-realm", "code"]
    ),
)
logins_counts = st.one_of(
    st.none(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def random_events(draw: st.DrawFn) -> dict[str, Any]:
    event = sample_event()
    event["user"]["user_id"] = draw(optional_text)
    event["client"]["client_id"] = draw(optional_text)
    event["tenant"]["id"] = draw(optional_text)
    event["request"]["user_agent"] = draw(optional_text)
    event["request"]["body"] = {"grant_type": draw(grant_types)}
    event["stats"]["logins_count"] = draw(logins_counts)
    event["authentication"]["methods"] = draw(methods)
    event["transaction"]["id"] = draw(optional_text)
    event["transaction"]["protocol"] = draw(protocols)
    event["transaction"]["prompt"] = draw(prompt_values)
    event["session"]["id"] = draw(optional_text)
    for key in ("session", "transaction", "authentication"):
        if draw(st.booleans()):
            del event[key]
    return event


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(random_events(), min_size=1, max_size=8))
def test_random_events_match(events: list[dict[str, Any]]) -> None:
    assert_parity({f"random {index}": event for index, event in enumerate(events)})
