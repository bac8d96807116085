"""JWT verification against a JWKS served by httpx.MockTransport: each way a token can fail."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from app.auth.config import JwtConfig
from app.auth.errors import KeySetUnavailableError
from app.auth.jwks import JwksCache
from app.auth.jwt_verifier import JwtVerifier
from app.errors import AuthenticationError
from tests.auth.conftest import AUDIENCE, ISSUER, JWKS_URL, FakeIssuer


def make_verifier(issuer: FakeIssuer, *, audience: str = AUDIENCE, min_refresh: float = 30) -> JwtVerifier:
    config = JwtConfig(
        issuer=ISSUER,
        audience=audience,
        jwks_url=JWKS_URL,
        cache_seconds=600,
        min_refresh_seconds=min_refresh,
        timeout_seconds=5,
        leeway_seconds=60,
    )
    jwks = JwksCache(JWKS_URL, issuer.client(), issuer.clock, cache_seconds=600, min_refresh_seconds=min_refresh)
    return JwtVerifier(config, jwks, issuer.clock)


async def rejected(verifier: JwtVerifier, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    error = caught.value
    assert error.status == 401
    assert error.code == "invalid_token"
    challenge = error.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="hookledger", error="invalid_token", error_description="')
    return error


async def test_valid_token(issuer):
    principal = await make_verifier(issuer).verify(issuer.token(scope="metrics:read metrics:write"))
    assert principal.subject == "client_1@clients"
    assert principal.scopes == frozenset({"metrics:read", "metrics:write"})
    assert principal.method == "jwt"


async def test_permissions_claim_adds_scopes(issuer):
    token = issuer.token(scope=None, permissions=["metrics:write", "reconcile:run"])
    principal = await make_verifier(issuer).verify(token)
    assert principal.scopes == frozenset({"metrics:write", "reconcile:run"})


async def test_audience_list_matches_any(issuer):
    token = issuer.token(aud=["https://other.example/", AUDIENCE])
    principal = await make_verifier(issuer).verify(token)
    assert "metrics:read" in principal.scopes


async def test_expired(issuer):
    token = issuer.token()
    issuer.clock.advance(seconds=3600 + 61)
    error = await rejected(make_verifier(issuer), token)
    assert error.extra["reason"] == "expired"
    assert "expired" in error.detail


async def test_expiry_within_leeway(issuer):
    token = issuer.token()
    issuer.clock.advance(seconds=3600 + 30)
    assert (await make_verifier(issuer).verify(token)).subject == "client_1@clients"


async def test_not_before_in_future(issuer):
    now = int(issuer.clock.now.timestamp())
    error = await rejected(make_verifier(issuer), issuer.token(nbf=now + 120))
    assert error.extra["reason"] == "not_yet_valid"


async def test_wrong_audience(issuer):
    error = await rejected(make_verifier(issuer), issuer.token(aud="https://other.example/api"))
    assert error.extra["reason"] == "bad_audience"
    assert "https://other.example/api" in error.detail


async def test_wrong_issuer(issuer):
    error = await rejected(make_verifier(issuer), issuer.token(iss="https://evil.example.auth0.com/"))
    assert error.extra["reason"] == "bad_issuer"


async def test_issuer_without_trailing_slash_in_token_is_rejected(issuer):
    error = await rejected(make_verifier(issuer), issuer.token(iss=ISSUER.rstrip("/")))
    assert error.extra["reason"] == "bad_issuer"


async def test_missing_exp(issuer):
    error = await rejected(make_verifier(issuer), issuer.token(exp=None))
    assert error.extra["reason"] == "missing_claim"
    assert "exp" in error.detail


async def test_bad_signature(issuer):
    issuer.add_key("impostor", publish=False)
    forged = issuer.token("impostor", header={"kid": "key-1"})
    error = await rejected(make_verifier(issuer), forged)
    assert error.extra["reason"] == "bad_signature"


async def test_hs256_rejected(issuer):
    secret = OctKey.import_key("shared-secret-" + "x" * 32)
    token = jwt.encode({"alg": "HS256", "kid": "key-1"}, issuer.claims(), secret)
    error = await rejected(make_verifier(issuer), token)
    assert error.extra["reason"] == "unsupported_algorithm"
    assert "HS256" in error.detail
    assert issuer.requests == 0


async def test_none_algorithm_rejected(issuer):
    error = await rejected(make_verifier(issuer), issuer.unsigned_token())
    assert error.extra["reason"] == "unsupported_algorithm"
    assert "'none'" in error.detail


async def test_malformed_token(issuer):
    error = await rejected(make_verifier(issuer), "abc.def.ghi")
    assert error.extra["reason"] == "malformed_token"


async def test_unknown_kid_refetches_once_and_finds_rotated_key(issuer):
    verifier = make_verifier(issuer)
    await verifier.verify(issuer.token())
    assert issuer.requests == 1

    issuer.add_key("key-2")
    issuer.clock.advance(seconds=31)
    principal = await verifier.verify(issuer.token("key-2"))

    assert principal.subject == "client_1@clients"
    assert issuer.requests == 2
    await verifier.verify(issuer.token("key-2"))
    assert issuer.requests == 2


async def test_unknown_kid_still_unknown(issuer):
    verifier = make_verifier(issuer)
    issuer.add_key("unpublished", publish=False)
    error = await rejected(verifier, issuer.token("unpublished"))
    assert error.extra["reason"] == "unknown_key"
    assert "unpublished" in error.detail


async def test_unknown_kid_flood_is_rate_limited(issuer):
    verifier = make_verifier(issuer)
    await verifier.verify(issuer.token())
    issuer.add_key("unpublished", publish=False)
    issuer.clock.advance(seconds=31)
    for _ in range(20):
        await rejected(verifier, issuer.token("unpublished"))
        issuer.clock.advance(seconds=1)
    # One refetch for the first unknown kid, one more after the 30-second interval passed.
    assert issuer.requests == 2


async def test_cached_keys_expire(issuer):
    verifier = make_verifier(issuer)
    await verifier.verify(issuer.token())
    issuer.clock.advance(seconds=599)
    await verifier.verify(issuer.token())
    assert issuer.requests == 1
    issuer.clock.advance(seconds=2)
    await verifier.verify(issuer.token())
    assert issuer.requests == 2


async def test_failed_refresh_keeps_cached_keys(issuer):
    verifier = make_verifier(issuer)
    await verifier.verify(issuer.token())
    issuer.status = 500
    issuer.clock.advance(seconds=601)
    principal = await verifier.verify(issuer.token(iat=int(issuer.clock.now.timestamp())))
    assert principal.subject == "client_1@clients"
    assert issuer.requests == 2


async def test_jwks_unavailable_is_503(issuer):
    issuer.status = 503
    verifier = make_verifier(issuer)
    with pytest.raises(KeySetUnavailableError) as caught:
        await verifier.verify(issuer.token())
    assert caught.value.status == 503
    assert JWKS_URL in caught.value.detail
    # A second token within the refresh interval does not reach the issuer again.
    with pytest.raises(KeySetUnavailableError):
        await verifier.verify(issuer.token())
    assert issuer.requests == 1
