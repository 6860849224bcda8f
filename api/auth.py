"""Bearer JWT validation, persons, habilitations and scopes.

A token names a person: ``iss`` + ``sub`` of the identity provider (ProConnect, Pro Santé
Connect; claims read by ``PLACES_OIDC_CLAIMS``). What the person may do comes only from their
live habilitations (``api.persons``), looked up on every request through the per-worker cache
of ``api.persons.directory`` — a revocation or a sign-out everywhere applies at once. A person
with several habilitations names the one a request acts under (``X-Places-Habilitation``).
With ``PLACES_LOCAL_ROLES=true`` (development, tests, benchmarks; refused in production), a
local token carrying a ``role`` claim acts by that role instead, its permissions being the
union of the role's functions' (``api.permissions``).

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
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, Request

from api import authorities
from api.deps import AppSettings
from api.errors import Forbidden, Unauthorized
from api.permissions import AUTHORITY_ROLES, FUNCTIONS, ROLES, SCOPE_CLAIM
from api.permissions import permissions as permissions_of
from api.persons.directory import Directory, Entry
from api.settings import Settings, get_settings

LEGACY_DEPARTMENT_CLAIM = "department"
"""The scope claim of the role ``department`` before authorities (accepted when unambiguous)."""
HABILITATION_HEADER = "X-Places-Habilitation"
"""Names the habilitation a request acts under, for a person who holds several."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a person under one of their habilitations (``function``), or a local role
    token (``function`` None, only with ``PLACES_LOCAL_ROLES``). ``role`` is empty when a
    person acts under no habilitation (none granted, or several and none chosen): such a
    principal may read ``/v1/me`` and sign out, nothing else."""

    sub: str
    role: str
    authority: str | None = None
    """Authority roles (``department``, ``authority_admin``): the competent authority."""
    finess: str | None = None
    carer_id: str | None = None
    expires_at: float = float("inf")
    """The token's ``exp`` (epoch seconds): a live feed is closed when it passes."""
    issuer: str = ""
    issued_at: float | None = None
    person_id: int | None = None
    function: str | None = None
    habilitation_id: int | None = None
    habilitations: int = 0
    """How many live habilitations the person holds (the message when none is chosen)."""

    @property
    def key(self) -> str:
        """Stable identity for idempotency keys (role + subject)."""
        return f"{self.role}:{self.sub}"

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_of(self.role, self.function)

    def may(self, permission: str) -> bool:
        return permission in permissions_of(self.role, self.function)

    @property
    def for_authority(self) -> bool:
        """Acts for one competent authority (placement service or its administrator)."""
        return self.role in AUTHORITY_ROLES


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
    role: str | None,
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
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role is None and sub is None:
        raise ValueError("a person's token (no role) needs --sub")
    if role in AUTHORITY_ROLES:
        authority = _authority_for_token(authority, department)
    scope = {"authority": authority, "finess": finess, "carer_id": carer_id}
    needed = SCOPE_CLAIM.get(role or "")
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
        "iat": now,
        "exp": now + lifetime,
    }
    if role is not None:
        claims["role"] = role
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


def verify_token(token: str, settings: Settings) -> dict[str, Any]:
    """The token's claims once its signature, issuer, audience, expiry and lifetime hold
    (``settings``: the serving app's); signature checks are cached per token and
    configuration, expiry and the lifetime cap are checked every time."""
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
    return claims


def acts_by_role(claims: dict[str, Any], settings: Settings) -> bool:
    """A local role token: its ``role`` claim decides (``PLACES_LOCAL_ROLES``, never with a
    JWKS); any other token names a person whose habilitations decide."""
    return settings.local_roles and not settings.jwt_jwks_url and "role" in claims


def decode_token(token: str, settings: Settings) -> Principal:
    """A local role token's principal (tests, the CLI); a person's token needs the
    habilitation table: ``authenticate``."""
    claims = verify_token(token, settings)
    if not acts_by_role(claims, settings):
        raise Unauthorized("Jeton sans rôle reconnu.", headers={"WWW-Authenticate": "Bearer"})
    return _role_principal(claims)


def _role_principal(claims: dict[str, Any]) -> Principal:
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("Jeton sans rôle reconnu.", headers={"WWW-Authenticate": "Bearer"})
    authority = _token_authority(claims, role) if role in AUTHORITY_ROLES else None
    needed = SCOPE_CLAIM.get(role)
    if needed and needed != "authority" and not claims.get(needed):
        raise Unauthorized(f"Jeton du rôle {role} sans claim {needed}.")
    return Principal(
        sub=str(claims["sub"]),
        role=role,
        authority=authority,
        finess=claims.get("finess"),
        carer_id=claims.get("carer_id"),
        expires_at=float(claims["exp"]),
        issuer=str(claims["iss"]),
        issued_at=_issued_at(claims),
    )


def _issued_at(claims: dict[str, Any]) -> float | None:
    iat = claims.get("iat")
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        return float(iat)
    return None


def identity_fields(claims: dict[str, Any], settings: Settings) -> dict[str, str | None]:
    """The person's fields read from the identity provider's claims by ``PLACES_OIDC_CLAIMS``
    (for each field, the first claim present among its names)."""
    fields: dict[str, str | None] = {}
    for field, names in settings.oidc_claims.items():
        value = next((claims[n] for n in names if claims.get(n) not in (None, "")), None)
        fields[field] = None if value is None else str(value)
    if not fields.get("display_name"):
        parts = [fields.get("given_name"), fields.get("family_name")]
        fields["display_name"] = " ".join(p for p in parts if p) or None
    return fields


async def authenticate(
    token: str, settings: Settings, directory: Directory, choice: str | None = None
) -> Principal:
    """The request's principal: a local role token (checked against sign-out everywhere), or
    a person under the habilitation ``choice`` names (or their only one)."""
    claims = verify_token(token, settings)
    issuer, sub, issued_at = str(claims["iss"]), str(claims["sub"]), _issued_at(claims)
    if acts_by_role(claims, settings):
        principal = _role_principal(claims)
        _check_session(await directory.signed_out_at(issuer, sub), issued_at)
        return principal
    fields = identity_fields(claims, settings)
    entry = await directory.entry(issuer, sub, identity=fields)
    _check_session(entry.signed_out_at, issued_at)
    return _person_principal(entry, claims, issued_at, choice)


def _check_session(signed_out_at: float | None, issued_at: float | None) -> None:
    """Refuse a token issued before the person signed out everywhere (or without ``iat``,
    once they have)."""
    if signed_out_at is not None and (issued_at is None or issued_at < signed_out_at):
        raise Unauthorized(
            "Session fermée (déconnexion de partout) : reconnectez-vous.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _person_principal(
    entry: Entry, claims: dict[str, Any], issued_at: float | None, choice: str | None
) -> Principal:
    grant = None
    if choice is not None:
        grant = next((g for g in entry.grants if str(g.id) == choice.strip()), None)
        if grant is None:
            raise Forbidden(
                f"{HABILITATION_HEADER} : {choice!r} n'est pas une habilitation active de"
                " cette personne (voir GET /v1/me)."
            )
    elif len(entry.grants) == 1:
        grant = entry.grants[0]
    base = Principal(
        sub=str(claims["sub"]),
        role="",
        expires_at=float(claims["exp"]),
        issuer=str(claims["iss"]),
        issued_at=issued_at,
        person_id=entry.person_id,
        habilitations=len(entry.grants),
    )
    if grant is None:
        return base
    function = FUNCTIONS[grant.function]
    return replace(
        base,
        role=function.role,
        function=grant.function,
        habilitation_id=grant.id,
        authority=grant.authority,
        finess=grant.finess,
        carer_id=grant.carer_id,
    )


async def still_valid(principal: Principal, directory: Directory) -> str | None:
    """Why ``principal`` no longer holds (signed out everywhere, habilitation revoked), or
    None: the open live feeds' periodic check, from the per-worker cache."""
    if principal.person_id is None:  # a local role token: its sign-out only
        at = await directory.signed_out_at(principal.issuer, principal.sub)
        grants: tuple[int, ...] = ()
    else:
        entry = await directory.entry(principal.issuer, principal.sub)
        at, grants = entry.signed_out_at, tuple(g.id for g in entry.grants)
    if at is not None and (principal.issued_at is None or principal.issued_at < at):
        return "Session fermée (déconnexion de partout)."
    if principal.habilitation_id is not None and principal.habilitation_id not in grants:
        return "Habilitation révoquée."
    return None


def _lifetime(claims: dict[str, Any], exp: float, now: float) -> float:
    """The token's lifetime, ``exp - iat``; without ``iat`` (optional in a JWT), what is left
    of it, ``exp - now``. Checked at every use with the serving app's cap, outside the
    verdict cache (whose key holds no cap, and whose verdict does not depend on it)."""
    iat = claims.get("iat")
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        return exp - float(iat)
    return exp - now


def _token_authority(claims: dict[str, Any], role: str = "department") -> str:
    """The authority of an authority role's token: its ``authority`` claim, or the one authority
    of the former ``department`` claim; 401 otherwise (with the choices for ``69``)."""
    authority = claims.get("authority")
    if authority:
        if not isinstance(authority, str) or not authorities.is_authority(authority):
            raise Unauthorized(f"Jeton du rôle {role} : autorité {authority!r} inconnue.")
        return authority
    department = claims.get(LEGACY_DEPARTMENT_CLAIM)
    if not department or not isinstance(department, str):
        raise Unauthorized(f"Jeton du rôle {role} sans claim authority.")
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
    """The request's principal, authenticated once per request: the per-subject guard
    (``api.throttle``) and the route's own dependency share it through ``request.state``."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            "Authentification requise (Authorization: Bearer …).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(
        token, settings, request.app.state.directory, request.headers.get(HABILITATION_HEADER)
    )
    request.state.principal = principal
    return principal


def require(*permissions: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the principal must hold one of ``permissions``
    (``api.permissions``: the one table of who may do what)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        held = principal.permissions
        if not any(p in held for p in permissions):
            raise Forbidden(_refusal(principal))
        return principal

    return dependency


def _refusal(principal: Principal) -> str:
    if principal.role:
        who = (
            f"La fonction {principal.function}"
            if principal.function
            else f"Le rôle {principal.role}"
        )
        return f"{who} n'a pas accès à cette ressource."
    if principal.habilitations > 1:
        return (
            f"Plusieurs habilitations : précisez laquelle ({HABILITATION_HEADER}, voir GET /v1/me)."
        )
    return "Aucune habilitation active : demandez-en une à l'administrateur de votre autorité."


def require_authority_scope(principal: Principal, authority: str) -> None:
    """Placement services and authority administrators act for their own authority only."""
    if principal.for_authority and principal.authority == authority:
        return
    raise Forbidden(f"Hors du périmètre du jeton (autorité compétente {authority}).")


def scoped_authority(principal: Principal, authority: str | None) -> str:
    """The authority a list is read for: the principal's own (naming another is 403)."""
    authority = authority or principal.authority
    if authority is None:
        raise Forbidden("Lecture réservée aux services d'une autorité compétente.")
    require_authority_scope(principal, authority)
    return authority


Authenticated = Annotated[Principal, Depends(current_principal)]
"""Any valid token, even a person's without habilitation: ``/v1/me``, sign-out."""
AnyPrincipal = Annotated[Principal, Depends(require("offer.read"))]
"""Every function: the offer (registry, capacity, FHIR, open data)."""
