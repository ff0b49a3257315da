"""Job env values encrypted at rest: a submission's env often carries secrets (API keys, tokens),
and the store is shared by every team and backed up whole. Each value is stored as a Fernet token
(AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key that lives in CORTEX_HOME/env.key
(0600, the service's user only), so a copy of the store or of its backups reveals no value; the
loop decrypts them only to launch. No schema change: the tokens live in the existing env JSON.

Every value is encrypted, not only those a user marks: a mark that is forgotten once leaks for
good, and the cost (tens of microseconds per value) is small next to a submission's."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc:v1:"
KEY_FILE = "env.key"


class EnvBoxError(ValueError):
    """A stored value that this service's key cannot open (the key file was replaced)."""


class EnvBox:
    def __init__(self, key: bytes) -> None:
        self._f = Fernet(key)

    @classmethod
    def at(cls, home: Path) -> EnvBox:
        """The box whose key is home/env.key, created (0600) at first start."""
        path = Path(home) / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            os.chmod(path, 0o600)
            return cls(path.read_bytes().strip())
        key = Fernet.generate_key()
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return cls(key)

    def seal(self, env: dict[str, str]) -> dict[str, str]:
        return {k: PREFIX + self._f.encrypt(v.encode()).decode() for k, v in env.items()}

    def open(self, env: dict[str, str] | None) -> dict[str, str]:
        """Decrypted values; a value stored before encryption existed is returned as it is."""
        out = {}
        for k, v in (env or {}).items():
            if isinstance(v, str) and v.startswith(PREFIX):
                try:
                    v = self._f.decrypt(v[len(PREFIX) :].encode()).decode()
                except InvalidToken:
                    raise EnvBoxError(
                        f"env.{k}: cannot be decrypted with {KEY_FILE} (was it replaced?)"
                    ) from None
            out[k] = v
        return out
