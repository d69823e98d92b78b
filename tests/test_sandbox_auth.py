"""The sandbox's token endpoint (Auth0-like) and the API's token checks."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from metafold_jupyter.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox

pytestmark = pytest.mark.timeout(60)


def exchange(sb, *, json=None, data=None, **overrides):
    body = {
        "grant_type": "client_credentials",
        "client_id": sb.client_id,
        "client_secret": sb.client_secret,
        "audience": sb.audience,
        **overrides,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if data is not None:
        return requests.post(sb.url + "/oauth/token", data=body, timeout=10)
    return requests.post(sb.url + "/oauth/token", json=body, timeout=10)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_token_success_is_signed_jwt_with_auth0_claims(sandbox):
    before = int(time.time())
    r = exchange(sandbox)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == sandbox.url + "/"
    assert claims["sub"] == f"{SANDBOX_CLIENT_ID}@clients"
    assert claims["aud"] == "https://api.metafold3d.com"
    assert claims["gty"] == "client-credentials"
    assert before <= claims["iat"] <= time.time()
    assert claims["exp"] - claims["iat"] in (86400, 86401)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    second = exchange(sandbox).json()["access_token"]
    assert jwt.decode(second, options={"verify_signature": False})["jti"] != claims["jti"]
    assert sandbox.issued_tokens == [body["access_token"], second]
    assert sandbox.token_exchanges == 2


def test_token_constants_match_instance(sandbox):
    assert (sandbox.client_id, sandbox.client_secret) == (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    assert sandbox.audience == "https://api.metafold3d.com"


def test_token_form_encoded_body_works(sandbox):
    r = exchange(sandbox, data=True)
    assert r.status_code == 200
    assert requests.get(sandbox.url + "/user/quota", headers=bearer(r.json()["access_token"]), timeout=10).ok


def test_token_wrong_secret_is_401_access_denied(sandbox):
    r = exchange(sandbox, client_secret="wrong")
    assert r.status_code == 401
    assert r.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert exchange(sandbox, client_id="someone-else").status_code == 401
    assert sandbox.token_exchanges == 2 and sandbox.issued_tokens == []


def test_token_wrong_audience_is_403_client_grant(sandbox):
    r = exchange(sandbox, audience="https://api.example.com")
    assert r.status_code == 403
    body = r.json()
    assert body["error"] == "access_denied"
    assert body["error_description"].startswith('Client is not authorized to access "https://api.example.com".')
    assert "client-grant" in body["error_description"]


def test_token_unsupported_grant_is_400(sandbox):
    r = exchange(sandbox, grant_type="password")
    assert r.status_code == 400
    assert r.json() == {
        "error": "unsupported_grant_type",
        "error_description": "Grant type 'password' not allowed for the client.",
    }


@pytest.mark.parametrize("missing", ["grant_type", "client_id", "client_secret", "audience"])
def test_token_missing_parameter_is_400_invalid_request(sandbox, missing):
    r = exchange(sandbox, **{missing: None})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert missing in r.json()["error_description"]


def test_api_missing_or_malformed_header_is_401_msg(sandbox):
    r = requests.get(sandbox.url + "/projects", timeout=10)
    assert r.status_code == 401 and r.json() == {"msg": "Missing Authorization Header"}
    r = requests.get(sandbox.url + "/projects", headers={"Authorization": "Basic abc"}, timeout=10)
    assert r.status_code == 401 and "Bearer" in r.json()["msg"]
    r = requests.get(sandbox.url + "/projects", headers=bearer("not-a-jwt"), timeout=10)
    assert r.status_code == 401 and set(r.json()) == {"msg"}


def test_api_token_signed_by_another_key_is_401(sandbox):
    claims = jwt.decode(exchange(sandbox).json()["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "guessed-key-guessed-key-guessed-key!", algorithm="HS256")
    r = requests.get(sandbox.url + "/projects", headers=bearer(forged), timeout=10)
    assert r.status_code == 401 and r.json() == {"msg": "Signature verification failed"}


def test_api_token_expires_after_lifetime():
    with Sandbox(token_lifetime=1) as sb:
        r = exchange(sb)
        assert r.json()["expires_in"] == 1
        token = r.json()["access_token"]
        assert requests.get(sb.url + "/user/usage", headers=bearer(token), timeout=10).status_code == 200
        time.sleep(1.5)
        r = requests.get(sb.url + "/user/usage", headers=bearer(token), timeout=10)
        assert r.status_code == 401 and r.json() == {"msg": "Token has expired"}


def test_api_revoked_tokens_are_401_and_new_ones_work(sandbox):
    old = exchange(sandbox).json()["access_token"]
    sandbox.revoke_tokens()
    r = requests.get(sandbox.url + "/projects", headers=bearer(old), timeout=10)
    assert r.status_code == 401 and r.json() == {"msg": "Token has been revoked"}
    fresh = exchange(sandbox).json()["access_token"]
    assert requests.get(sandbox.url + "/projects", headers=bearer(fresh), timeout=10).status_code == 200
    sandbox.reset()
    assert requests.get(sandbox.url + "/projects", headers=bearer(old), timeout=10).status_code == 200


def test_api_token_from_another_sandbox_is_401(sandbox):
    with Sandbox(seed=False) as other:
        foreign = exchange(other).json()["access_token"]
    r = requests.get(sandbox.url + "/projects", headers=bearer(foreign), timeout=10)
    assert r.status_code == 401


@pytest.mark.parametrize("which", ["canonical", "canonical/", "own url", "own url/"])
def test_token_accepts_its_audience_with_and_without_trailing_slash(sandbox, which):
    """The official SDK's client-credentials mode sends its base URL as the audience:
    ``https://api.metafold3d.com/`` against the real service, the sandbox's URL against the sandbox."""
    audience = {"canonical": "https://api.metafold3d.com", "canonical/": "https://api.metafold3d.com/",
                "own url": sandbox.url, "own url/": sandbox.url + "/"}[which]
    r = exchange(sandbox, audience=audience)
    assert r.status_code == 200
    token = r.json()["access_token"]
    # the token's audience is the API's, however the request spelled it
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://api.metafold3d.com"
    assert requests.get(sandbox.url + "/user/quota", headers=bearer(token), timeout=10).ok


@pytest.mark.parametrize("audience", [
    "https://api.metafold3d.com//", "https://api.metafold3d.com/v1", "http://api.metafold3d.com",
    "https://API.metafold3d.com.evil.example", "api.metafold3d.com", "https://127.0.0.1:1/",
])
def test_token_refuses_other_audiences_with_403(sandbox, audience):
    r = exchange(sandbox, audience=audience)
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert sandbox.issued_tokens == []


def test_login_to_the_tls_sandbox_trusting_its_ca_through_requests_ca_bundle(monkeypatch):
    """metafold-jupyter itself over HTTPS on loopback: the CA comes from REQUESTS_CA_BUNDLE,
    as for any requests-based client; without it the login fails on the certificate, before any secret is sent."""
    import metafold_jupyter as mf
    from metafold_jupyter.errors import MetafoldError

    with Sandbox(tls=True) as sb:
        assert sb.url.startswith("https://127.0.0.1:")
        with pytest.raises(MetafoldError, match="certificate"):
            mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        assert sb.token_exchanges == 0  # refused at the handshake: the secret never left the client
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sb.ca_bundle))
        session = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        status = session.status()
        assert status["sandbox"] is True and status["base_url"].startswith(sb.url)
        assert len(mf.projects()) == 10 and session.token_exchanges == 1
        assert {r.origin for r in sb.requests} == {"api"}
        mf.logout()
