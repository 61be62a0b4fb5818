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
        kept = {secret for secret in secrets if secret is not None and len(secret) >= MIN_SECRET_LENGTH}
        # Longest first: a regex alternation takes the first branch that matches, so a secret that
        # contains another one is replaced whole instead of leaving its remainder readable.
        ordered = sorted(kept, key=lambda secret: (-len(secret), secret))
        self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered)) if ordered else None

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced by `[redacted]`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)
