"""What a person sees of run data: control, C1, bidi and invisible characters shown, visibly.

Tool arguments, a server's messages, call ids and refusal reasons are chosen by models and
servers. Written raw, `ESC[2K` erases a line, U+009B starts a C1 control sequence, U+202E
reverses what follows, and zero-width or tag characters hide text: a person would read one
call and approve another. Every path that prints run data passes it through `visible` (one
line, a table cell) or `visible_lines` (a block whose own newlines are kept); `-o json` output
goes through `visible_json`, which uses JSON's own escapes so the output stays exact JSON.

Backslashes are not escaped, so each function is idempotent: a sink may apply it again.
`hides_text` says whether a call's arguments, a tool's description or a question hold any, so
what shows them can say so. Pure: the workflow side, the activities and the console all use it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Characters Python calls printable that draw nothing or change the character before them:
# combining grapheme joiner, Hangul and Khmer fillers, Mongolian free variation selectors,
# braille blank, and the variation selectors (which can carry hidden text, one byte each).
_INVISIBLE_PRINTABLE = "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef"
# Everything `str.isprintable` refuses (Cc, Cf, Zl, Zp, Cs, Co, Cn and the non-ASCII spaces),
# found per character below; this pattern is the fast path's check for the rest.
_EXTRA = re.compile(f"[{_INVISIBLE_PRINTABLE}]")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def is_hidden(ch: str) -> bool:
    """Whether a reader would not see `ch` as itself (control, bidi, invisible, or a non-ASCII space)."""
    return not ch.isprintable() or _EXTRA.match(ch) is not None


def escape_char(ch: str) -> str:
    """`ch` as the escape that shows it (`\\x1b`, `\\u202e`, `\\U000e0041`)."""
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _clean(text: str) -> bool:
    return text.isprintable() and _EXTRA.search(text) is None


def visible(text: str) -> str:
    """`text` on one line: every control, C1, bidi, invisible character and newline escaped (`\\x1b`, `\\u202e`)."""
    if _clean(text):
        return text
    return "".join(escape_char(ch) if is_hidden(ch) else ch for ch in text)


def visible_lines(text: str) -> str:
    """`text` as lines: like `visible`, but its newlines stay line breaks."""
    return "\n".join(visible(line) for line in text.split("\n"))


def visible_json(text: str) -> str:
    """JSON text with the characters `visible` escapes written as JSON `\\u` escapes: the same JSON value."""
    if _clean(text.replace("\n", "")):
        return text
    out = []
    for ch in text:
        if ch != "\n" and is_hidden(ch):
            code = ord(ch)
            if code > 0xFFFF:  # outside the BMP: JSON spells it as a surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def hides_text(value: Any) -> bool:
    """Whether `value` (text, or JSON data such as a call's arguments) holds a character a reader would not see."""
    if isinstance(value, str):
        text = value.replace("\n", "")
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return not _clean(text)
