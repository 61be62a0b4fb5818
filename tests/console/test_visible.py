"""workflows/visible.py: every control, C1, bidi and invisible character is shown escaped, nothing else changes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.visible import visible, visible_json, visible_lines

HIDDEN = [
    *(chr(c) for c in range(0x00, 0x20)),  # C0, newline and tab included
    "\x7f",  # DEL
    *(chr(c) for c in range(0x80, 0xA0)),  # C1
    *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c",  # bidi
    *"\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad",  # zero-width, invisible operators
    "\U000e0001",
    "\U000e0041",
    "\U000e007f",  # tag characters
    "\ufe0f",
    "\U000e0100",  # variation selectors
    "\u2028",
    "\u2029",  # line and paragraph separators
    "\u115f",
    "\u3164",  # Hangul fillers
]
SHOWN = ["plain text", "café ünïcode 東京", "✔ ▶ ■ ⏸ …", "quotes \"' and \\ backslash", "emoji 🙂"]


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_each_hidden_character_is_escaped_visibly(char: str) -> None:
    shown = visible(f"a{char}b")
    assert char not in shown
    assert shown.startswith("a\\") and shown.endswith("b")
    assert shown.isascii() and shown.isprintable()


def test_the_escapes_say_which_character_it_was() -> None:
    assert visible("\x1b[2K") == "\\x1b[2K"
    assert visible("\u009b2J") == "\\x9b2J"
    assert visible("abc\u202edef") == "abc\\u202edef"
    assert visible("tag\U000e0041") == "tag\\U000e0041"
    assert visible("one\ntwo\tthree\r") == "one\\ntwo\\tthree\\r"


@pytest.mark.parametrize("text", SHOWN)
def test_printable_text_is_unchanged(text: str) -> None:
    assert visible(text) == text
    assert visible_lines(text) == text


def test_visible_lines_keeps_line_breaks_only() -> None:
    assert visible_lines("a\x1b[2K\nb\u202e\tc") == "a\\x1b[2K\nb\\u202e\\tc"


@given(st.text())
def test_nothing_hidden_survives_and_escaping_twice_changes_nothing(text: str) -> None:
    shown = visible(text)
    assert shown.isprintable()
    assert not any(char in shown for char in HIDDEN)
    assert visible(shown) == shown
    assert visible_lines(text).replace("\n", "").isprintable()


@given(
    st.recursive(
        st.text() | st.integers() | st.none(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)
    )
)
def test_json_stays_the_same_json_value(value: object) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    shown = visible_json(text)
    assert json.loads(shown) == value
    assert shown.replace("\n", "").isprintable()
    assert not any(char in shown.replace("\n", "") for char in HIDDEN)
