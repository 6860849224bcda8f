"""A local identity provider on loopback, shared by the tests of production sign-in (the API's,
``tests/test_identity_provider.py``, and the pages', ``tests/test_ui_oidc.py``).

Just enough of ProConnect (agents of the collectivities: ``sub``, ``given_name``,
``usual_name``, ``email``, ``siret``, ``idp_id``) and Pro Santé Connect (``sub``,
``given_name``, ``family_name``, ``SubjectNameID``): a JWKS, tokens signed by its key, and the
authorization code flow with PKCE a browser goes through (``/authorize``, ``/token``), which
signs in whoever ``signs_in`` names. Real sockets, a real uvicorn in a thread: the service
under test fetches the JWKS as it would in production.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from loadtests.harness import free_port

CLIENT_ID = "places-ui"
"""The pages' client id at the provider (``PLACES_OIDC_CLIENT_ID``)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class IdentityProvider:
    """Signs tokens for ``audience``; ``signs_in`` is the sub and claims the next code flow
    issues a token for (the person at the keyboard of the provider's login page)."""

    audience: str = "places"
    port: int = field(default_factory=free_port)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    signs_in: tuple[str, dict[str, Any]] = ("agent", {})
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mint(self, sub: str, **claims: Any) -> str:
        now = int(time.time())
        base = {"iss": self.url, "aud": self.audience, "sub": sub, "iat": now, "exp": now + 600}
        return jwt.encode({**base, **claims}, self.key, algorithm="ES256", headers={"kid": "k1"})

    @staticmethod
    def proconnect_claims(
        sub: str, given: str = "Camille", usual: str = "Martin"
    ) -> dict[str, Any]:
        return {
            "given_name": given,
            "usual_name": usual,
            "email": f"{given.lower()}.{usual.lower()}@grandlyon.example",
            "siret": "20004697700019",
            "idp_id": "fia1v2",
            "uid": sub,
            "acr": "eidas1",
        }

    def proconnect(self, sub: str, given: str = "Camille", usual: str = "Martin") -> str:
        return self.mint(sub, **self.proconnect_claims(sub, given, usual))

    def psc(self, sub: str) -> str:
        return self.mint(
            sub,
            given_name="Jean",
            family_name="Dupont",
            SubjectNameID="899700218896",
            preferred_username="899700218896",
            SubjectRefPro={"codeCivilite": "M"},
        )

    async def jwks(self, request: Request) -> Response:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return JSONResponse({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES256"}]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        back = urllib.parse.urlencode({"code": code, "state": q["state"]})
        return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        self.exchanges.append(form)
        issued = self.codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        ok = (
            issued is not None
            and form.get("grant_type") == "authorization_code"
            and form.get("client_id") == CLIENT_ID
            and form.get("redirect_uri") == issued["redirect_uri"]
            and b64url(hashlib.sha256(verifier.encode()).digest()) == issued["challenge"]
        )
        headers = {"Access-Control-Allow-Origin": "*"}
        if not ok:
            return JSONResponse({"error": "invalid_grant"}, status_code=400, headers=headers)
        sub, claims = self.signs_in
        body = {"access_token": self.mint(sub, **claims), "token_type": "Bearer", "expires_in": 600}
        return JSONResponse(body, headers=headers)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )


@contextmanager
def running(idp: IdentityProvider) -> Iterator[IdentityProvider]:
    """Serve ``idp`` on its loopback port (a thread) for the duration of the block."""
    server = uvicorn.Server(
        uvicorn.Config(idp.app(), host="127.0.0.1", port=idp.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "identity provider did not start"
    try:
        yield idp
    finally:
        server.should_exit = True
        thread.join(10)
