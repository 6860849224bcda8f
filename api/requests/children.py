"""The child's pseudonymous key within its authority (issue #18: count children, not requests).

``child_key = HMAC-SHA256(secret, authority ␟ normalised reference)``, the first 16 bytes in
hex. The authority's file reference identifies the child (or the sibling group filed under
one reference) in the authority's own software; the key lets Places count one child across
its requests — cancelled and asked again, reoriented — without the reference ever leaving
the authority: statistics and national views group by the key and publish counts only.

Why a keyed hash and not the reference itself: a reference is meaningful to whoever holds the
authority's file (and often carries a year and a sequence); a plain hash of it could be
recomputed by anyone who guesses the format. With a secret key, nobody without the service's
secret can link a key back to a reference. Rotating the secret changes every key: continuity
of a child across the rotation is lost unless the keys are recomputed from the stored
references (``places`` keeps the reference on the request, in the authority's scope), which
is what migration 0019 does for the rows it finds.
"""

import fcntl
import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path

from api.settings import Settings, get_settings

KEY_BYTES = 16
"""128 bits: no collision in practice among a few million children, half the digest's size."""
SECRET_FILE = "child_key.secret"  # noqa: S105 (a file name, not a secret)


def normalise(reference: str) -> str:
    """The same file written ``ase69-2026-00123`` or ``ASE69-2026-00123 `` is one child:
    surrounding spaces dropped, case folded (references are ASCII, ``REFERENCE_PATTERN``)."""
    return reference.strip().upper()


def child_key(secret: bytes, authority: str, reference: str) -> str:
    """The child's key: the same (authority, reference) always gives the same key; another
    authority's same reference is another child (each authority numbers its own files)."""
    message = f"{authority}\x1f{normalise(reference)}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:KEY_BYTES].hex()


def _generated_secret(keys_dir: Path) -> bytes:
    """Development: a random secret made once beside the local issuer's keys (never
    committed); processes started together take a lock so that all read the same one."""
    path = keys_dir / SECRET_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        with open(keys_dir / "keys.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_text(secrets.token_hex(32))
                tmp.chmod(0o600)
                tmp.replace(path)
    return path.read_text().strip().encode()


def secret_of(settings: Settings) -> bytes:
    """``PLACES_CHILD_KEY_SECRET``, else the generated development secret."""
    if settings.child_key_secret is not None:
        return settings.child_key_secret.get_secret_value().encode()
    return _generated_secret(settings.keys_dir)


@lru_cache(maxsize=1)
def service_secret() -> bytes:
    """The running service's secret (read once: every worker of a deployment agrees)."""
    return secret_of(get_settings())


def key_for(authority: str, reference: str) -> str:
    """The key of a request of ``authority`` with ``reference``, under the service's secret."""
    return child_key(service_secret(), authority, reference)
