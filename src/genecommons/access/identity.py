"""Credentials: password hashes (argon2), API tokens, login throttling. Pure functions."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "gct_"  # noqa: S105 - a marker that makes leaked tokens findable, not a secret
TOKEN_RE = re.compile(r"^gct_[A-Za-z0-9_-]{43}$")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+(\.[A-Za-z]{2,})?$")
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of `password`, safe to store."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether `password` matches `stored_hash` (constant-time inside argon2)."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A random password for a new account (shown once)."""
    return secrets.token_urlsafe(18)


def new_token() -> str:
    """A new API token: 256 random bits, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored of a token: its SHA-256 (a token has 256 bits of entropy, so a fast
    hash cannot be brute-forced the way a password hash could)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_email(email: str) -> bool:
    """Whether `email` looks like an address (local accounts and admin@localhost)."""
    return bool(EMAIL_RE.match(email)) and len(email) <= 200


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failed sign-ins are tolerated in a window, per account and per address."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)

    def blocked(self, failures: list[datetime], *, now: datetime) -> datetime | None:
        """When sign-in may be tried again, or None if it may be tried now."""
        recent = sorted(f for f in failures if now - f < self.window)
        if len(recent) < self.max_failures:
            return None
        return recent[-self.max_failures] + self.window


def new_totp_secret() -> str:
    """A new RFC 6238 shared secret (base32)."""
    return pyotp.random_base32()


def totp_uri(secret: str, *, email: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="GeneCommons")


def verify_totp(secret: str, code: str, *, at: datetime) -> bool:
    """Whether `code` is the one-time code of `secret` at `at` (one step of clock drift)."""
    return bool(code.isdigit()) and pyotp.TOTP(secret).verify(code, for_time=at, valid_window=1)
