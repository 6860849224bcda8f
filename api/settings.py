"""Settings from the environment (prefix ``PLACES_``), documented in the README.

One object, read once, so that every worker of a deployment agrees on its configuration.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLACES_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/places",
        description="PostgreSQL (with PostGIS) DSN, libpq form.",
    )
    redis_url: str | None = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL for the event streams; empty means the in-process bus.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(2, description="uvicorn worker processes (forced to 1 without Redis).")
    db_pool_min: int = 2
    db_pool_max: int = 10

    # Auth: the local issuer signs with a key pair generated at first run (never committed).
    jwt_issuer: str = "places-local"
    jwt_audience: str = "places"
    jwt_algorithm: str = "ES256"
    jwt_jwks_url: str | None = Field(
        None, description="Production: JWKS URL of the OIDC issuer; unset means the local key."
    )
    keys_dir: Path = PROJECT_ROOT / "var" / "keys"
    token_ttl_minutes: int = 12 * 60

    max_body_bytes: int = Field(64 * 1024, description="Requests with a larger body get 413.")
    stale_after_days: int = Field(
        7, description="A declaration older than this counts as stale in statistics."
    )
    unexecuted_after_days: int = Field(
        30,
        ge=1,
        description="A request still not placed this many days after its decision counts as"
        " a measure not executed.",
    )
    optimize_time_limit_seconds: float = Field(
        1.0,
        gt=0,
        description="Budget of the exact assignment solver; past it the best plan found is"
        " returned with optimal=false and the gap the solver could certify.",
    )
    optimize_gap: float = Field(
        0.001,
        ge=0,
        lt=1,
        description="Relative optimality gap at which the assignment solver may stop (0.001:"
        " the plan is proved within 0.1 % of the optimum); 0 asks for the proved optimum.",
    )
    oidc_authorize_url: str | None = Field(
        None,
        description="Production sign-in: the identity provider's authorization URL, linked"
        " from the sign-in page.",
    )
    oidc_token_url: str | None = Field(
        None,
        description="The identity provider's token endpoint: with oidc_client_id, the page"
        " signs in with the authorization code flow and PKCE (S256); without, it accepts a"
        " token returned in the URL fragment.",
    )
    oidc_client_id: str | None = Field(None, description="This service's public OIDC client id.")
    oidc_scope: str = Field("openid", description="Scopes asked at sign-in.")
    dev_signin: bool = Field(
        False,
        description="Local development only: the sign-in page's dev form and POST"
        " /ui/dev-token (tokens of the local issuer, any role but operator and authority_admin,"
        " loopback clients"
        " only). Refused at startup together with any OIDC setting; scripts/run turns it on.",
    )
    local_roles: bool = Field(
        False,
        description="Development, tests and benchmarks only: tokens of the local issuer that"
        " carry a `role` claim (and its scope claim) act by that role, without a habilitation."
        " Off: what a person may do comes only from the habilitation table. Refused at startup"
        " together with any OIDC setting; scripts/run and the tests turn it on.",
    )
    oidc_claims: dict[str, list[str]] = Field(
        {
            "display_name": ["name"],
            "given_name": ["given_name"],
            "family_name": ["usual_name", "family_name"],
            "email": ["email"],
            "siret": ["siret"],
            "rpps": ["SubjectNameID", "preferred_username"],
            "idp": ["idp_id"],
        },
        description="JSON: for each identity field the person gets (display_name, given_name,"
        " family_name, email, siret, rpps, idp), the token claims to read it from, first present"
        " wins. The default reads ProConnect (usual_name, siret, idp_id) and Pro Santé Connect"
        " (family_name, SubjectNameID) tokens.",
    )
    habilitation_recheck_seconds: float = Field(
        5.0,
        gt=0,
        description="An open live feed re-checks its person's habilitation and sign-out this"
        " often (from the per-worker cache) and closes with 4401 once revoked.",
    )
    trusted_proxies: str | None = Field(
        None,
        description="Comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For"
        " names the client (the dev sign-in's loopback check); empty trusts none.",
    )

    # Live feeds (realtime.hub.FeedSettings); tests and benchmarks start servers with small
    # values through PLACES_WS_*.
    ws_ping_seconds: float = Field(
        25.0, gt=0, description="Ping period; the contract promises one at least every 30 s."
    )
    ws_queue_size: int = Field(
        1000, ge=1, description="Events waiting for one client; beyond, it is closed (1013)."
    )
    ws_read_block_ms: int = Field(
        2000, ge=1, description="XREAD BLOCK of a feed reader, below Redis' 5 s socket timeout."
    )
    ws_batch: int = Field(500, ge=1, description="Entries per read, live and catch-up.")
    ws_ready_timeout: float = Field(
        5.0, gt=0, description="How long a new subscriber waits for its feed reader."
    )
    log_json: bool = Field(False, description="JSON log lines (production).")
    seed: int = Field(20261125, description="Seed of the synthetic national dataset.")

    # Safe by default (issue #14).
    hsts_seconds: int = Field(
        31536000,
        ge=0,
        description="Strict-Transport-Security max-age on every response; 0: no such header.",
    )
    token_max_lifetime_minutes: int = Field(
        12 * 60,
        ge=1,
        description="A token living longer (exp - iat, or exp - now without iat) is refused"
        " (401); the local issuer refuses to mint one.",
    )
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        description="`places run`: a request whose header block is larger is refused by the"
        " server (h11) before the app.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
