"""The test session's environment, fixed on import, before anything reads the settings.

``conftest.py`` imports this first; every module that needs the names below imports them
from here, so the database name is computed once per run. Importing has side effects on
purpose: ``api.settings.get_settings`` is cached, so the environment must be right before
the first call anywhere.
"""

import os
import tempfile

TEST_DB = f"places_test_{os.getpid()}"
"""The run's shared database, created by the ``database`` fixture and dropped after."""
ADMIN_DSN = os.environ.get("PLACES_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
"""The maintenance database of the PostgreSQL server the tests create databases on."""
BASE_DSN = ADMIN_DSN.rsplit("/", 1)[0]
"""``ADMIN_DSN`` without its database: append ``/name`` for a database of one's own."""
TEST_OWNER_DSN = f"{BASE_DSN}/{TEST_DB}"
"""The run's database as its owner: created, migrated and dropped this way."""
TEST_DSN = TEST_OWNER_DSN.replace("://postgres@", "://places_app@", 1)
"""The same database as the service's role (migration 0009): the app, the servers and the
tests' own pool connect this way, so the whole suite runs with the audit append-only."""
assert TEST_DSN != TEST_OWNER_DSN, "PLACES_TEST_ADMIN_DSN must connect as postgres"

# The owner's DSN is derived from it (user postgres), so a subprocess given another
# PLACES_DATABASE_URL gets that database's owner, not this one's.
os.environ["PLACES_DATABASE_URL"] = TEST_DSN
os.environ.pop("PLACES_OWNER_DATABASE_URL", None)
os.environ.setdefault("PLACES_REDIS_URL", "redis://127.0.0.1:6379/15")
# The pages' tests sign in through the local dev sign-in; servers started by the tests (and
# loadtests/harness.py) inherit it. A server configured with OIDC must unset it.
os.environ["PLACES_DEV_SIGNIN"] = "true"
# Per-subject caps and rate limits (api.throttle) high enough never to refuse the suite, whose
# tests share a few tokens and run in parallel; the limiter's tests set their own, low.
os.environ["PLACES_MAX_REQUESTS_PER_SUBJECT"] = "1000"
os.environ["PLACES_MAX_FEEDS_PER_SUBJECT"] = "1000"
os.environ["PLACES_RATE_LIMIT_SEARCH_PER_MINUTE"] = "1000000"
os.environ["PLACES_RATE_LIMIT_WRITES_PER_MINUTE"] = "1000000"
# Tokens of bearer(role, ...) act by their role claim, without habilitation rows; a server
# configured with an identity provider must unset it too (it refuses to start otherwise).
os.environ["PLACES_LOCAL_ROLES"] = "true"
os.environ["PLACES_KEYS_DIR"] = tempfile.mkdtemp(prefix="places-keys-")

from api.auth import ensure_local_keys  # noqa: E402  (after the environment, on purpose)
from api.settings import get_settings  # noqa: E402

# The session's signing keys, made now: servers started together (``places run`` makes them
# when missing) would otherwise race to write them, and tokens issued here must verify there.
ensure_local_keys(get_settings())
