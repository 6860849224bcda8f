"""Settings from the environment (prefix ``PLACES_``), documented in the README.

One object, read once, so that every worker of a deployment agrees on its configuration.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLACES_", extra="ignore")

    database_url: str = Field(
        "postgresql://places_app@127.0.0.1:5432/places",
        description="PostgreSQL (with PostGIS) DSN, libpq form, of the service's own role"
        " (places_app: INSERT and SELECT only on the audit, migration 0009).",
    )
    owner_database_url: str | None = Field(
        None,
        description="DSN of the schema's owner, for migrate, seed and purge; unset: the"
        " service's DSN with the user postgres (and no password).",
    )
    redis_url: str | None = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL for the event streams; empty means the in-process bus.",
    )
    # Cluster (issue #19, docs/architecture.md "Cluster"): a hot standby for lag-tolerant
    # reads, Redis through Sentinel, the relay's re-check after a Redis failover.
    database_read_url: str | None = Field(
        None,
        description="DSN of a hot standby (as places_app) for lag-tolerant reads: search,"
        " statistics, FHIR, open data. Unset: every read on the primary.",
    )
    read_max_lag_seconds: float = Field(
        5.0,
        gt=0,
        description="The standby serves reads only while it is at most this far behind the"
        " primary (/readyz reports it); a subject's reads stay on the primary this long (plus"
        " one second) after its own last write (read-your-writes).",
    )
    redis_sentinels: str | None = Field(
        None,
        description="Comma-separated host:port of Redis Sentinels: the master is found (and"
        " found again after a failover) through them, and PLACES_REDIS_URL is not used.",
    )
    redis_master_name: str = Field("places", description="The master's name in the Sentinels.")
    redis_grace_seconds: float = Field(
        0.0,
        ge=0,
        description="/readyz stays 200 this long after Redis stops answering (a Sentinel"
        " failover: writes go on through the outbox, feeds resume after); 0: not ready at"
        " once. Beyond, not ready.",
    )
    relay_recheck_seconds: float = Field(
        120.0,
        ge=0,
        description="The outbox relay checks that the events it published this long ago or"
        " less are still in Redis (a failover to a replica that had not received them), and"
        " re-publishes those missing; 0: no check.",
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
    child_key_secret: SecretStr | None = Field(
        None,
        description="HMAC key of the children's pseudonymous keys (issue #18; api.requests."
        "children); unset: a random key generated once in keys_dir (development). Changing it"
        " changes every child's key, so children start anew in the statistics (docs/domain.md).",
    )
    token_ttl_minutes: int = 12 * 60

    max_body_bytes: int = Field(64 * 1024, description="Requests with a larger body get 413.")
    stale_after_days: int = Field(
        7,
        description="A declaration older than this counts as stale in statistics, and in search:"
        " it ranks after the fresh ones of its ladder step and is marked `stale`.",
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
    optimize_waiting_weight: float = Field(
        0.05,
        ge=0,
        description="What the waiting-list optimiser adds to the objective, per child placed and"
        " per 30 days waited since the decision, in score points (a score is in [0, 1]): a"
        " child who waited longer is not left for a slightly better-scored fresher request; 0"
        " ignores the wait.",
    )
    optimize_urgency_weight: float = Field(
        0.1,
        ge=0,
        description="What the waiting-list optimiser adds per child placed and per step of"
        " urgency (planned 0, days 1, immediate 2), in score points; 0 ignores urgency.",
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
    ws_auth_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a feed client whose handshake carries no token has to send it"
        ' as its first message {"type": "auth", "token": …} before 4401.',
    )
    ws_query_token: bool = Field(
        False,
        description="Accept the feed's token as ?access_token= in the URL (old clients only:"
        " proxies log URLs). Off: such a connection is closed with 4401 saying to send it"
        " in the Sec-WebSocket-Protocol (places.bearer.<token>) or a first message.",
    )
    ws_allowed_origins: str | None = Field(
        None,
        description="Comma-separated origins (https://places.example.fr) whose pages may open"
        " a feed; unset: only the request's own host. A handshake with another Origin is"
        " refused (403); clients that send no Origin (not browsers) are not concerned.",
    )
    log_json: bool = Field(False, description="JSON log lines (production).")
    # OpenTelemetry tracing (api.tracing), off by default.
    otel_enabled: bool = Field(
        False, description="Trace requests and their SQL statements (OpenTelemetry)."
    )
    otel_exporter: Literal["otlp", "console"] = Field(
        "otlp", description="Where spans go: OTLP over HTTP, or standard output (debugging)."
    )
    otel_exporter_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL (http://collector:4318/v1/traces); unset: the"
        " standard OTEL_EXPORTER_OTLP_* variables, else localhost:4318.",
    )
    otel_service_name: str = Field("places", description="The spans' service.name.")
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
        description="A request whose line and headers are larger is refused: 431 problem+json"
        " by the app, or 400 text/plain by the server (h11, `places run`) when the head"
        " arrives in more than one read.",
    )

    # The audit's seals (api.audit) and retention (places purge, api.retention).
    audit_seal_interval_seconds: float = Field(
        300.0,
        ge=0,
        description="Seal the audit's new entries every this many seconds (one worker at a"
        " time, advisory lock); 0: no background sealing (places audit seal only).",
    )
    retention_audit_days: int = Field(
        365,
        ge=1,
        description="places purge: audit entries older than this go, by whole sealed"
        " segments (CNIL: access traces kept 6 months to 1 year).",
    )
    retention_requests_days: int = Field(
        365,
        ge=1,
        description="places purge: requests closed (exited, cancelled) this long ago go,"
        " with their history and holds.",
    )
    retention_declarations_days: int = Field(
        730,
        ge=1,
        description="places purge: capacity and carer declarations older than this go,"
        " except each unit's and carer's latest.",
    )
    retention_outbox_days: int = Field(
        30, ge=1, description="places purge: outbox events published this long ago go."
    )
    retention_idempotency_days: int = Field(
        2,
        ge=1,
        description="places purge: Idempotency-Key records (and the answers kept for"
        " replays) older than this go.",
    )

    @property
    def owner_dsn(self) -> str:
        """The DSN that migrates, seeds and purges: ``owner_database_url``, or the service's
        DSN as the user ``postgres`` (the local default: same server and database)."""
        if self.owner_database_url:
            return self.owner_database_url
        parts = urlsplit(self.database_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"postgres@{host}"))

    # Per subject (the token's principal, ``api.auth.Principal.key``): caps and rate limits
    # (issue #14). Benchmarks and load tests set their own (loadtests/harness.BENCH_LIMITS).
    max_requests_per_subject: int = Field(
        16,
        ge=0,
        description="Concurrent /v1 requests of one subject in one worker; beyond, 429 with"
        " Retry-After. 0: no cap.",
    )
    max_feeds_per_subject: int = Field(
        10,
        ge=0,
        description="Live feeds (WebSockets) open at once by one subject in one worker;"
        " beyond, the new one is closed with 4429. 0: no cap.",
    )
    rate_limit_search_per_minute: int = Field(
        60,
        ge=0,
        description="Searches (POST /v1/search) one person may make per minute, in bursts of"
        " as many (token bucket shared through Redis; per worker while Redis is down);"
        " beyond, 429 with Retry-After. 0: no limit.",
    )
    rate_limit_writes_per_minute: int = Field(
        300,
        ge=0,
        description="Writes (POST, PUT, PATCH, DELETE under /v1, searches excepted) one person"
        " may make per minute, likewise. 0: no limit.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
