"""The conversation view: the last items of a run's conversation as text an approver can read.

`call_details` shows it beside a pending call. It is kept only in the workflow's memory, never
in history: a replay rebuilds it from the same results.
"""

from __future__ import annotations

from typing import Any

from workflows.decoding import cut
from workflows.payloads import ConversationItem

# Enough to judge a call, bounded for a query.
CONVERSATION_ITEMS = 20
CONVERSATION_ITEM_CHARS = 2_000


class Conversation:
    """The recent items of one run's conversation, rendered; older ones are only counted."""

    def __init__(self) -> None:
        self.items: list[ConversationItem] = []
        self.omitted = 0

    def remember(self, items: list[Any]) -> None:
        """Keep the last `CONVERSATION_ITEMS` of the conversation so far (the runner's input list)."""
        recent = items[-CONVERSATION_ITEMS:]
        self.items = [conversation_item(item) for item in recent]
        self.omitted = len(items) - len(recent)


def conversation_item(item: Any) -> ConversationItem:
    """A conversation item as text an approver can read, cut to `CONVERSATION_ITEM_CHARS`."""
    if not isinstance(item, dict):
        return ConversationItem(kind="item", text=cut(item, CONVERSATION_ITEM_CHARS))
    kind = str(item.get("type") or "message")
    role = item.get("role")
    if kind == "function_call":
        text = f"{item.get('name')}({item.get('arguments') or ''})"
    elif kind == "function_call_output":
        text = str(item.get("output"))
    else:
        content = item.get("content")
        if isinstance(content, list):
            text = "\n".join(
                str(part.get("text") or part.get("refusal") or "") for part in content if isinstance(part, dict)
            )
        else:
            text = str(content if content is not None else item)
    return ConversationItem(
        kind=kind, role=str(role) if role is not None else None, text=cut(text, CONVERSATION_ITEM_CHARS)
    )
