"""The fake Vertex AI: Gemini's wire format behind OAuth, plus a fake token endpoint.

``POST /token`` is a service account's ``token_uri``: it takes the JWT-bearer grant, checks the
RS256 signature against the public key registered for the issuing account (the test made the
key pair), the audience (Google's token endpoint), the scope and the expiry, and issues an
opaque token with the configured lifetime. ``generateContent`` accepts only a token it issued
that has not expired. The ``v1`` API has no function-call ids: the fake refuses them, as
the live API does.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from proxy.sim import gemini
from proxy.sim.faults import JSON_TYPE, Reply

NAME = "vertex"
STREAM_ERROR_STATUS = gemini.STREAM_ERROR_STATUS
INVALID_JSON = gemini.INVALID_JSON
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"
"""What google-auth signs as ``aud`` whatever the key file's ``token_uri`` (Google's own
endpoint accepts only this)."""
bad_request = gemini.bad_request
route_args = gemini.route_args


@dataclass
class TokenIssuer:
    """Accounts (client_email -> public key PEM), issued tokens and a count of fetches."""

    accounts: Mapping[str, str] = field(default_factory=dict)
    ttl_s: int = 3600
    error_status: int | None = None
    issued: dict[str, float] = field(default_factory=dict)
    fetches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self.issued.get(token)
        return expiry is not None and expiry > time.time()

    def grant(self, form: bytes) -> Reply:
        """The token endpoint's answer to one form-encoded request."""
        with self._lock:
            self.fetches += 1
        if self.error_status is not None:
            return _oauth_error(self.error_status, "invalid_grant", "Invalid JWT Signature.")
        fields = {k: v[0] for k, v in parse_qs(form.decode(errors="replace")).items()}
        if fields.get("grant_type") != GRANT or "assertion" not in fields:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        problem = self._check(fields["assertion"])
        if problem is not None:
            return _oauth_error(400, "invalid_grant", problem)
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        with self._lock:
            self.issued[token] = time.time() + self.ttl_s
        body = {"access_token": token, "expires_in": self.ttl_s, "token_type": "Bearer"}
        return Reply(200, {"content-type": JSON_TYPE}, orjson.dumps(body))

    def _check(self, assertion: str) -> str | None:
        from google.auth import jwt  # the sim's own verifier, imported only for Vertex

        try:
            unverified = jwt.decode(assertion, verify=False)
            key = self.accounts.get(str(unverified.get("iss")))
            if key is None:
                return "Invalid JWT: unknown service account."
            claims: dict[str, Any] = jwt.decode(assertion, certs=[key], audience=AUDIENCE)
        except ValueError as exc:
            return f"Invalid JWT Signature ({exc})."
        if SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid JWT: the cloud-platform scope is missing."
        return None


def _oauth_error(status: int, error: str, description: str) -> Reply:
    body = {"error": error, "error_description": description}
    return Reply(status, {"content-type": JSON_TYPE}, orjson.dumps(body))


def authorize(headers: Mapping[str, str], issuer: TokenIssuer | None) -> Reply | None:
    if issuer is None:
        return None
    bearer = headers.get("authorization", "")
    if not bearer.startswith("Bearer ") or not issuer.valid(bearer[7:]):
        return gemini.google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
    return None


def answer(body: Mapping[str, Any], **kwargs: Any) -> Reply:
    return gemini.answer(body, **kwargs, with_ids=False)


def models_reply(extra_models: frozenset[str]) -> Reply:
    """GET the location resource (the health check's cheap call)."""
    body = {"name": "projects/sim/locations/sim", "locationId": "sim"}
    return Reply(200, {"content-type": JSON_TYPE}, orjson.dumps(body))
