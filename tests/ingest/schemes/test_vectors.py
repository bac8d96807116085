"""Every published signature vector, through the verifier that the ingest route uses."""

from __future__ import annotations

import pytest

from app.ingest.schemes import VerificationError, build_scheme
from tests.ingest.schemes.vectors import delivery_of, load_vectors, vector_case

CASES = [vector_case(vector) for vector in load_vectors()]

# The code each rejected vector must end with.
REJECTION_CODES = {
    "sw-official-invalid-last-char": "invalid_signature",
    "sw-official-invalid-garbage": "invalid_signature",
    "sw-official-empty-signature": "invalid_signature",
    "sw-official-wrong-sig-only": "invalid_signature",
    "sw-missing-id": "missing_header",
    "sw-missing-timestamp": "missing_header",
    "sw-missing-signature": "missing_header",
    "sw-invalid-timestamp-text": "malformed_header",
    "sw-timestamp-too-old": "timestamp_out_of_tolerance",
    "sw-timestamp-too-new": "timestamp_out_of_tolerance",
    "sw-id-binding": "invalid_signature",
    "sw-v1a-tampered": "invalid_signature",
    "sw-v1a-under-v1-label": "invalid_signature",
    "stripe-v0-only": "invalid_signature",
    "stripe-bad-header": "malformed_header",
    "stripe-too-old": "timestamp_out_of_tolerance",
    "github-tampered": "invalid_signature",
    "github-wrong-secret": "invalid_signature",
    "slack-tampered-body": "invalid_signature",
}


def test_vectors_file_is_complete() -> None:
    assert len(CASES) == 38
    assert set(REJECTION_CODES) == {case.id for case in CASES if not case.should_verify}
    assert {case.scheme for case in CASES} == {
        "standard-webhooks", "svix", "stripe", "github", "slack", "twilio", "shopify"
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_vector(case) -> None:
    scheme = build_scheme(case.scheme, case.secrets, case.options)
    try:
        scheme.verify(delivery_of(case), case.now)
    except VerificationError as exc:
        assert not case.should_verify, f"rejected with {exc.code}: {exc.detail}"
        assert exc.code == REJECTION_CODES[case.id]
        assert exc.status == (400 if exc.code in ("missing_header", "malformed_header") else 401)
    else:
        assert case.should_verify, "accepted a delivery that must be rejected"
