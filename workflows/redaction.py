"""Redaction: the worker's known secret values, replaced in any text before it leaves the worker."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# A value this short is not scrubbed: it would also match ordinary words and numbers ("admin",
# a port), mangling every log line and tool result while protecting nothing worth protecting.
# Real API keys and bearer tokens are far longer.
MIN_SECRET_LENGTH = 8


class Redactor:
    """Replaces every occurrence of the worker's secrets in a text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        """Scrub `secrets` (unset and short values are ignored: see `MIN_SECRET_LENGTH`)."""
        self._secrets = {secret for secret in secrets if secret is not None and len(secret) >= MIN_SECRET_LENGTH}
        self._pattern: re.Pattern[str] | None = None
        self._compile()

    def _compile(self) -> None:
        # Longest first: a regex alternation takes the first branch that matches, so a secret that
        # contains another one is replaced whole instead of leaving its remainder readable.
        ordered = sorted(self._secrets, key=lambda secret: (-len(secret), secret))
        self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered)) if ordered else None

    def learn(self, secret: str | None) -> None:
        """Scrub `secret` from now on too (an OAuth token the worker obtained at run time)."""
        if secret is None or len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        self._secrets.add(secret)
        self._compile()

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced by `[redacted]`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)
