"""Encryption at rest for what residents and caseworkers write: message bodies, notes, phone numbers.

With DATA_KEY set (one or more Fernet keys, comma-separated: the first encrypts, all decrypt),
a `SecretText` column stores "enc1:" + a Fernet token. Fernet authenticates (HMAC-SHA256), so a
tampered value fails to read instead of reading wrong. A value without the prefix was written
before the key was set and reads as it is; `peaceline rotate-key` encrypts those too.

The cipher is module state, set once per process by `configure` (from Runtime.build): SQLAlchemy
calls a column type's hooks with no handle on the app or its settings, and a process has exactly
one DATA_KEY. Every Runtime.build sets it again, so apps built one after another (tests) each get
their own key.

Phone numbers are found through `residents.phone_lookup`, an HMAC-SHA256 of the E.164 number keyed
by a key derived from the first DATA_KEY (the bare number without a key): the table can be searched
by number without holding the number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text, TypeDecorator
from sqlalchemy.sql import operators

from bot.config import ConfigError

ENCRYPTED = "enc1:"
# A plain value that itself begins with a marker (a resident may text anything, "enc1:" too)
# is stored behind this one, so it never reads as ciphertext.
ESCAPED = "raw1:"
LOOKUP_INFO = b"peaceline residents.phone_lookup v1"
MAKE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class UnreadableValue(Exception):
    """A stored value that the configured DATA_KEY cannot decrypt."""


class Cipher:
    """The keys of one DATA_KEY: encrypt with the first, decrypt with any."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._lookup_keys = [_lookup_key(k) for k in keys]

    def encrypt(self, plain: str) -> str:
        return ENCRYPTED + self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, stored: str) -> str:
        try:
            return self._fernet.decrypt(stored[len(ENCRYPTED) :].encode()).decode()
        except InvalidToken:
            raise UnreadableValue(
                "a stored value cannot be decrypted with DATA_KEY (wrong key, or the key "
                "it was written with is no longer in DATA_KEY)"
            ) from None

    def lookups(self, e164: str) -> list[str]:
        return [hmac.new(k, e164.encode(), hashlib.sha256).hexdigest() for k in self._lookup_keys]


def _lookup_key(fernet_key: bytes) -> bytes:
    """A key for phone lookups of its own, so the HMAC never reuses Fernet's signing key."""
    raw = base64.urlsafe_b64decode(fernet_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LOOKUP_INFO).derive(raw)


def parse_data_key(raw: str | None) -> Cipher | None:
    """DATA_KEY as a Cipher (None when unset); a ConfigError of one line when a key is malformed."""
    if not raw or not raw.strip():
        return None
    parts = [p.strip() for p in raw.split(",")]
    keys = []
    for n, part in enumerate(parts, 1):
        try:
            Fernet(part)
        except (ValueError, binascii.Error):
            # Never echo the value: it is (or is close to) a secret.
            raise ConfigError(
                f"DATA_KEY: key {n} of {len(parts)} is not a Fernet key "
                f"(44 url-safe base64 characters; make one with {MAKE_KEY})"
            ) from None
        keys.append(part.encode())
    return Cipher(keys)


_cipher: Cipher | None = None


def configure(raw: str | None) -> None:
    """Set this process's cipher from DATA_KEY (see the module docstring for why it is global)."""
    global _cipher
    _cipher = parse_data_key(raw)


def enabled() -> bool:
    return _cipher is not None


def encode(plain: str) -> str:
    """The stored form of a value: encrypted with a key, else as it is (escaped if it looks encrypted)."""
    if _cipher is not None:
        return _cipher.encrypt(plain)
    return ESCAPED + plain if plain.startswith((ENCRYPTED, ESCAPED)) else plain


def decode(stored: str) -> str:
    if stored.startswith(ESCAPED):
        return stored[len(ESCAPED) :]
    if not stored.startswith(ENCRYPTED):
        return stored
    if _cipher is None:
        raise UnreadableValue("the database holds encrypted values but DATA_KEY is not set")
    return _cipher.decrypt(stored)


def phone_lookup(e164: str) -> str:
    """The value stored in residents.phone_lookup for a number."""
    return phone_lookups(e164)[0]


def phone_lookups(e164: str) -> list[str]:
    """Every form a resident's lookup may have now, the current one first: older keys' and the bare
    number stay findable until `peaceline rotate-key` has rewritten them, so no resident is missed
    (and created twice) between setting a key and rotating."""
    return [*(_cipher.lookups(e164) if _cipher else []), e164]


def opt_out_marker(secret: str, e164: str) -> str:
    """The keyed hash (SECRET_KEY) a number leaves when it erased its data after opting out: with or
    without DATA_KEY, the marker never holds the number."""
    return hmac.new(secret.encode(), f"opted-out\n{e164}".encode(), hashlib.sha256).hexdigest()


class SecretText(TypeDecorator[str]):
    """Text encrypted at rest when DATA_KEY is set."""

    impl = Text
    cache_ok = True

    class comparator_factory(Text.Comparator[str]):
        """Ciphertext differs on every write: comparing it in SQL would silently match nothing."""

        REFUSED = {
            operators.eq,
            operators.ne,
            operators.in_op,
            operators.not_in_op,
            operators.like_op,
            operators.ilike_op,
            operators.contains_op,
            operators.startswith_op,
            operators.endswith_op,
        }

        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in self.REFUSED and not (other and other[0] is None):
                raise TypeError(
                    "an encrypted column cannot be compared in SQL: compare in Python, "
                    "or search residents by phone_lookup"
                )
            return super().operate(op, *other, **kwargs)

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encode(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decode(value)
