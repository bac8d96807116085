"""Turn the published signature vectors in tests/data/webhooks/vectors.json into verifier inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from app.ingest.schemes import Delivery

VECTORS_FILE = Path(__file__).parents[2] / "data" / "webhooks" / "vectors.json"

# Vectors of schemes without a signed timestamp carry no verify_now.
FIXED_NOW = 1614265330

SCHEME_NAMES = {
    "standard-webhooks-v1": "standard-webhooks",
    "standard-webhooks-v1a": "standard-webhooks",
    "github-legacy-sha1": "github",
}


@dataclass(frozen=True)
class VectorCase:
    id: str
    scheme: str
    secrets: list[str]
    options: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    url: str
    now: datetime
    should_verify: bool


def load_vectors() -> list[dict[str, Any]]:
    return json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]


def expected_outcome(value: bool | str) -> bool:
    """Return the expected outcome; implementation-defined vectors recommend accepting."""
    if isinstance(value, bool):
        return value
    assert value.startswith("implementation-defined (recommend True"), value
    return True


def vector_case(vector: dict[str, Any]) -> VectorCase:
    scheme = SCHEME_NAMES.get(vector["scheme"], vector["scheme"])
    secret = vector.get("secret")
    options: dict[str, Any] = {}
    secrets = [secret] if secret else []
    if vector["scheme"] == "standard-webhooks-v1a":
        options["public_keys"] = [vector["public_key"]]
        if not secret or secret.startswith("whsk_"):
            # The private key signs; the verifier holds only the public key, also valid as a secret.
            secrets = [vector["public_key"]]
    if vector["scheme"] == "github-legacy-sha1":
        options["allow_sha1"] = True

    url = vector.get("url", "")
    if scheme == "twilio":
        options["public_url"] = url.split("?")[0]
        payload = vector.get("payload")
        body = payload.encode() if payload is not None else urlencode(vector["params"]).encode()
    else:
        body = vector["payload"].encode()
    return VectorCase(
        id=vector["id"],
        scheme=scheme,
        secrets=secrets,
        options=options,
        headers={name.lower(): value for name, value in vector["headers"].items()},
        body=body,
        url=url,
        now=datetime.fromtimestamp(vector.get("verify_now") or FIXED_NOW, UTC),
        should_verify=expected_outcome(vector["should_verify"]),
    )


def delivery_of(case: VectorCase) -> Delivery:
    return Delivery(headers=case.headers, body=case.body, url=case.url)
