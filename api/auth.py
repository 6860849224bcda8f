"""Bearer JWT validation, roles and scopes.

Locally a key pair is generated at first use under ``PLACES_KEYS_DIR`` (never committed) and
``places token`` signs with it. In production ``PLACES_JWT_JWKS_URL`` points at the OIDC
issuer's keys and only the public side is ever used here.

Verification reads the settings of the app that serves the request (``AppSettings``), or
those its caller passes (``decode_token``), never the process-wide ones: an app built with
other settings checks tokens by them.

Scopes: a structure's ``finess``, a carer's ``carer_id``, and for the role ``department`` (a
collectivity's placement service) the ``authority`` competent for child protection (``69M``,
``20R``, ``13``…; see ``api.authorities``). A token of the role ``department`` that still
carries only the former ``department`` claim is accepted when that department has exactly one
authority (``13`` → ``13``, ``2A`` → ``20R``, ``67`` → ``6AE``); ``69`` is refused (401) with
the two choices.
"""

import fcntl
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, Request

from api import authorities
from api.deps import AppSettings
from api.errors import Forbidden, Unauthorized
from api.settings import Settings, get_settings

Role = Literal["structure", "carer", "department", "national", "admin"]
ROLES: tuple[str, ...] = ("structure", "carer", "department", "national", "admin")
SCOPE_CLAIM = {"structure": "finess", "carer": "carer_id", "department": "authority"}
LEGACY_DEPARTMENT_CLAIM = "department"
"""The scope claim of the role ``department`` before authorities (accepted when unambiguous)."""


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    role: str
    authority: str | None = None
    """Role ``department``: the competent authority whose placement service the user is."""
    finess: str | None = None
    carer_id: str | None = None
    expires_at: float = float("inf")
    """The token's ``exp`` (epoch seconds): a live feed is closed when it passes."""

    @property
    def key(self) -> str:
        """Stable identity for idempotency keys and audit (role + subject)."""
        return f"{self.role}:{self.sub}"


def _key_paths(keys_dir: Path) -> tuple[Path, Path]:
    return keys_dir / "private.pem", keys_dir / "public.pem"


def ensure_local_keys(settings: Settings) -> None:
    """Generate the dev issuer's EC P-256 key pair once (file mode 0600 for the private key)."""
    _ensure_keys(settings.keys_dir)


def _ensure_keys(keys_dir: Path) -> None:
    """Processes started together (workers, test servers) may all find the keys missing:
    an exclusive lock on ``keys.lock`` makes one generate the pair and the others read it,
    never a private key of one pair beside the public key of another."""
    private_path, public_path = _key_paths(keys_dir)
    if private_path.exists() and public_path.exists():
        return
    keys_dir.mkdir(parents=True, exist_ok=True)
    with open(keys_dir / "keys.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if private_path.exists() and public_path.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = private_path.with_suffix(".tmp")
        tmp.write_bytes(private_pem)
        tmp.chmod(0o600)
        tmp.replace(private_path)
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def issue_token(
    role: str,
    *,
    sub: str | None = None,
    authority: str | None = None,
    department: str | None = None,
    finess: str | None = None,
    carer_id: str | None = None,
    ttl_minutes: int | None = None,
    ttl_seconds: int | None = None,
    settings: Settings | None = None,
) -> str:
    """Sign a token with the local issuer (dev, tests, demos).

    The role ``department`` is scoped by ``authority``; ``department`` is accepted instead
    when it has exactly one authority (mapped to it: the token carries ``authority``).
    Without ``settings``, the environment's: the callers that omit them (tests, load tests)
    run outside any app, as their own entry points. Code behind a route passes its own.

    A lifetime beyond ``token_max_lifetime_minutes`` is refused (``ValueError``), not
    clamped: the caller asked for a token the service would not accept."""
    settings = settings or get_settings()
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role == "department":
        authority = _authority_for_token(authority, department)
    scope = {"authority": authority, "finess": finess, "carer_id": carer_id}
    needed = SCOPE_CLAIM.get(role)
    if needed and not scope[needed]:
        raise ValueError(f"role {role} needs --{needed.replace('_', '-')}")
    ensure_local_keys(settings)
    lifetime = ttl_seconds or 60 * (ttl_minutes or settings.token_ttl_minutes)
    if lifetime > 60 * settings.token_max_lifetime_minutes:
        raise ValueError(
            f"a token may live {settings.token_max_lifetime_minutes} minutes at most"
            " (PLACES_TOKEN_MAX_LIFETIME_MINUTES); it would be refused"
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub or f"{role}-{scope.get(needed or '', None) or 'local'}",
        "role": role,
        "iat": now,
        "exp": now + lifetime,
    }
    if needed:
        claims[needed] = scope[needed]
    private_key = _key_paths(settings.keys_dir)[0].read_bytes()
    return jwt.encode(claims, private_key, algorithm=settings.jwt_algorithm)


def _authority_for_token(authority: str | None, department: str | None) -> str | None:
    """The authority a local token is issued for (``ValueError`` with the choices when
    ``department`` names several, or when a code is unknown)."""
    if authority is not None:
        if not authorities.is_authority(authority):
            raise ValueError(f"unknown authority {authority!r}; see GET /v1/authorities")
        return authority
    if department is None:
        return None
    error = authorities.ambiguity(department)
    if error is not None:
        raise ValueError(f"department {department}: {error['message']}")
    return authorities.of_department(department)


@lru_cache(maxsize=4)
def _local_public_key(path: str) -> bytes:
    return Path(path).read_bytes()


@lru_cache(maxsize=1)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True)


@dataclass(frozen=True, slots=True)
class _Verifier:
    """The settings that decide whether a token is valid, hashable: the key of the verdict
    cache, so that a verdict is never reused under another configuration."""

    jwks_url: str | None
    keys_dir: Path
    algorithm: str
    audience: str
    issuer: str

    @classmethod
    def of(cls, settings: Settings) -> "_Verifier":
        return cls(
            settings.jwt_jwks_url,
            settings.keys_dir,
            settings.jwt_algorithm,
            settings.jwt_audience,
            settings.jwt_issuer,
        )

    def key(self, token: str) -> Any:
        if self.jwks_url:
            return _jwks_client(self.jwks_url).get_signing_key_from_jwt(token).key
        _ensure_keys(self.keys_dir)
        return _local_public_key(str(_key_paths(self.keys_dir)[1]))


@lru_cache(maxsize=8192)
def _decode_cached(token: str, verifier: _Verifier) -> tuple[dict[str, Any], float]:
    claims = jwt.decode(
        token,
        verifier.key(token),
        algorithms=[verifier.algorithm],
        audience=verifier.audience,
        issuer=verifier.issuer,
        options={"require": ["exp", "sub", "iss", "aud"]},
    )
    return claims, float(claims["exp"])


def decode_token(token: str, settings: Settings) -> Principal:
    """Validate a token against ``settings`` (the serving app's); signature checks are cached
    per token and configuration; expiry and the lifetime cap are checked every time."""
    try:
        claims, exp = _decode_cached(token, _Verifier.of(settings))
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Jeton expiré.", headers={"WWW-Authenticate": "Bearer"}) from exc
    except (jwt.InvalidTokenError, jwt.PyJWKClientError, ValueError) as exc:
        raise Unauthorized("Jeton invalide.", headers={"WWW-Authenticate": "Bearer"}) from exc
    now = time.time()
    if exp <= now:
        raise Unauthorized("Jeton expiré.", headers={"WWW-Authenticate": "Bearer"})
    if _lifetime(claims, exp, now) > 60 * settings.token_max_lifetime_minutes:
        raise Unauthorized(
            "Jeton de trop longue durée (maximum "
            f"{settings.token_max_lifetime_minutes} minutes entre iat et exp).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("Jeton sans rôle reconnu.", headers={"WWW-Authenticate": "Bearer"})
    authority = _token_authority(claims) if role == "department" else None
    needed = SCOPE_CLAIM.get(role)
    if needed and needed != "authority" and not claims.get(needed):
        raise Unauthorized(f"Jeton du rôle {role} sans claim {needed}.")
    return Principal(
        sub=str(claims["sub"]),
        role=role,
        authority=authority,
        finess=claims.get("finess"),
        carer_id=claims.get("carer_id"),
        expires_at=float(exp),
    )


def _lifetime(claims: dict[str, Any], exp: float, now: float) -> float:
    """The token's lifetime, ``exp - iat``; without ``iat`` (optional in a JWT), what is left
    of it, ``exp - now``. Checked at every use with the serving app's cap, outside the
    verdict cache (whose key holds no cap, and whose verdict does not depend on it)."""
    iat = claims.get("iat")
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        return exp - float(iat)
    return exp - now


def _token_authority(claims: dict[str, Any]) -> str:
    """The authority of a ``department`` token: its ``authority`` claim, or the one authority
    of the former ``department`` claim; 401 otherwise (with the choices for ``69``)."""
    authority = claims.get("authority")
    if authority:
        if not isinstance(authority, str) or not authorities.is_authority(authority):
            raise Unauthorized(f"Jeton du rôle department : autorité {authority!r} inconnue.")
        return authority
    department = claims.get(LEGACY_DEPARTMENT_CLAIM)
    if not department or not isinstance(department, str):
        raise Unauthorized("Jeton du rôle department sans claim authority.")
    error = authorities.ambiguity(department, LEGACY_DEPARTMENT_CLAIM)
    if error is not None:
        raise Unauthorized(
            "Jeton du rôle department sans claim authority ; son ancien claim department ne "
            f"désigne pas une seule autorité : {error['message']}.",
            errors=[error],
        )
    return authorities.of_department(department)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return None


async def current_principal(request: Request, settings: AppSettings) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            "Authentification requise (Authorization: Bearer …).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return decode_token(token, settings)


def require_roles(*roles: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the principal must hold one of ``roles`` (admin always may)."""
    allowed = set(roles) | {"admin"}

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"Le rôle {principal.role} n'a pas accès à cette ressource.")
        return principal

    return dependency


def require_authority_scope(principal: Principal, authority: str) -> None:
    """Placement services act for their own authority only; admin everywhere."""
    if principal.role == "admin":
        return
    if principal.role == "department" and principal.authority == authority:
        return
    raise Forbidden(f"Hors du périmètre du jeton (autorité compétente {authority}).")


def scoped_authority(principal: Principal, authority: str | None) -> str | None:
    """The authority a list is read for: a placement service reads its own (naming another
    is 403); admin one authority, or all (None)."""
    if principal.role != "admin":
        authority = authority or principal.authority
    if authority is not None:
        require_authority_scope(principal, authority)
    return authority


AnyPrincipal = Annotated[Principal, Depends(current_principal)]
