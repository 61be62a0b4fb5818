"""What the inbox shows of hidden characters: each marked in HTML as its escape, and named.

The text functions are workflows/visible.py's; here they become markup a browser shows, so a
person reading a call in the inbox sees the right-to-left override or tag characters the
model sees, not a silently reordered or shortened text.
"""

from __future__ import annotations

import unicodedata

from markupsafe import Markup, escape

from workflows.visible import escape_char, hides_text, is_hidden


def _mark(ch: str) -> str:
    name = unicodedata.name(ch, "") or f"U+{ord(ch):04X}"
    return f'<mark class="hidden-char" title="{escape(name)}">{escape(escape_char(ch))}</mark>'


def marked_html(value: object) -> Markup:
    """`value` as HTML: escaped, each hidden character replaced by a marked escape naming it.

    Markup already escaped (a rendered fragment) is marked without being escaped again; hidden
    characters are never part of HTML syntax, so marking them cannot open a tag or an entity.
    Newlines stay as they are (a `<pre>` keeps them).
    """
    html = str(value) if isinstance(value, Markup) else str(escape(value))
    if not hides_text(html):
        return Markup(html)
    return Markup("".join(_mark(ch) if ch != "\n" and is_hidden(ch) else ch for ch in html))
