"""Secrets at rest (mailbox passwords, OAuth tokens): Fernet (AES-128-CBC + HMAC-SHA256)
with the admin's key. Several keys may be configured, newest first, so a key can be rotated
without losing access to what the old one encrypted (MultiFernet)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from crm.domain.errors import InvalidInput


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise InvalidInput("no encryption key configured (MAILWIDGET_SECRET_KEY)")
        try:
            self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
        except (ValueError, TypeError):
            raise InvalidInput("MAILWIDGET_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from None

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(***)"

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise InvalidInput("the stored secret cannot be decrypted with the configured key", code="secret_key_mismatch") from None
