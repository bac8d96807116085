"""An Auth0-like issuer for tests: RSA keys, a JWKS served through httpx.MockTransport, and token minting."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.app import FakeClock

ISSUER = "https://tenant.example.auth0.com/"
AUDIENCE = "https://hookledger.example/api"
JWKS_URL = ISSUER + ".well-known/jwks.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class FakeIssuer:
    """Signs tokens and serves its public keys; `published` decides which keys the JWKS lists."""

    clock: FakeClock
    keys: dict[str, RSAKey] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)
    requests: int = 0
    status: int = 200

    def add_key(self, kid: str, *, publish: bool = True) -> RSAKey:
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
        self.keys[kid] = key
        if publish:
            self.published.add(kid)
        return key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now.timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "client_1@clients",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "scope": "metrics:read",
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def token(self, kid: str = "key-1", *, header: dict[str, Any] | None = None, **claims: Any) -> str:
        return jwt.encode({"alg": "RS256", "kid": kid, **(header or {})}, self.claims(**claims), self.keys[kid])

    def unsigned_token(self, **claims: Any) -> str:
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = b64url(json.dumps(self.claims(**claims)).encode())
        return f"{header}.{payload}."

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.requests += 1
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "unavailable"})
        keys = [self.keys[kid].as_dict(private=False) for kid in sorted(self.published)]
        return httpx.Response(200, json={"keys": keys})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer(clock: FakeClock) -> FakeIssuer:
    fake = FakeIssuer(clock)
    fake.add_key("key-1")
    return fake
