"""Redaction: the worker's known secret values, replaced in any text before it leaves the worker."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

# A value this short is not scrubbed: it would also match ordinary words and numbers ("admin",
# a port), mangling every log line and tool result while protecting nothing worth protecting.
# Real API keys and bearer tokens are far longer.
MIN_SECRET_LENGTH = 8
# A value the worker obtained from a remote party (an OAuth token, a dynamically registered
# client secret) was chosen by that party: it is scrubbed only when it looks random, so an
# authorization server cannot issue "MALWARE_DETECTED" and censor that text everywhere.
MIN_OBTAINED_LENGTH = 16
MIN_OBTAINED_DISTINCT = 8
# Letter runs this long read as words; a value mostly made of them is text, not a random token.
_WORD = re.compile(r"[A-Z]?[a-z]{4,}|[A-Z]{4,}")
MAX_WORDLIKE_SHARE = 0.5
# A value's pieces: capital runs, (capitalised) lower-case runs, digit runs, anything else. Text
# (`MALWARE_DETECTED`, `ThisIsMalwareDetected`) splits into words: two letters or more, a vowel,
# no four consonants in a row; a random token nearly always leaves a lone letter (`x6xUWKN5…`), a
# piece without a vowel (`Gn`) or a run like `JWBR`, however many word-like runs it has.
_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^A-Za-z0-9]+")
_CONSONANTS = re.compile(r"[b-df-hj-np-tv-xz]{4}", re.IGNORECASE)
_VOWEL = re.compile(r"[aeiouy]", re.IGNORECASE)
# Obtained values are remembered up to this many (oldest forgotten first): a server minting a
# token per request must not grow the scrubber without bound.
MAX_OBTAINED = 512
# How deep `scrub_json` walks; anything deeper is replaced whole (it was bounded before, but the
# walk must not be what fails on a value nobody bounded).
MAX_JSON_DEPTH = 64


def plausible_secret(value: str) -> bool:
    """Whether an obtained value looks like a random secret, not a word, phrase or number a result may contain."""
    if len(value) < MIN_OBTAINED_LENGTH or len(set(value)) < MIN_OBTAINED_DISTINCT or value.isdigit():
        return False
    wordlike = sum(len(word) for word in _WORD.findall(value))
    return wordlike <= MAX_WORDLIKE_SHARE * len(value) or not _reads_as_text(value)


def _reads_as_text(value: str) -> bool:
    """Whether `value` splits into pronounceable words (of two letters or more), numbers and separators only."""
    words = [piece for piece in _PIECE.findall(value) if piece[0].isascii() and piece[0].isalpha()]
    return all(len(word) >= 2 and _VOWEL.search(word) and not _CONSONANTS.search(word) for word in words)


class Redactor:
    """Replaces every occurrence of the worker's secrets in a text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        """Scrub `secrets`, the worker's configured ones (unset and short values are ignored: `MIN_SECRET_LENGTH`)."""
        self._configured = {secret for secret in secrets if secret is not None and len(secret) >= MIN_SECRET_LENGTH}
        # Insertion-ordered: the oldest obtained value is the first forgotten.
        self._obtained: dict[str, None] = {}
        self._pattern: re.Pattern[str] | None = None
        self._compile()

    def _compile(self) -> None:
        # Longest first: a regex alternation takes the first branch that matches, so a secret that
        # contains another one is replaced whole instead of leaving its remainder readable.
        ordered = sorted(self._configured | set(self._obtained), key=lambda secret: (-len(secret), secret))
        self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered)) if ordered else None

    def learn(self, secret: str | None) -> None:
        """Scrub `secret` from now on too, if it looks like one (a token the worker obtained at run time)."""
        if secret is None or secret in self._configured or secret in self._obtained or not plausible_secret(secret):
            return
        self._obtained[secret] = None
        while len(self._obtained) > MAX_OBTAINED:
            del self._obtained[next(iter(self._obtained))]
        self._compile()

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced by `[redacted]`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def scrub_json(self, value: Any) -> Any:
        """A copy of JSON `value` with every string in it scrubbed, object keys included."""
        if self._pattern is None:
            return value
        return self._walk(value, 0)

    def _walk(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if depth >= MAX_JSON_DEPTH and isinstance(value, dict | list):
            return REDACTED
        if isinstance(value, dict):
            return {self.scrub(str(key)): self._walk(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item, depth + 1) for item in value]
        return value
