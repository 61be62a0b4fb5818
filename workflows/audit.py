"""One run's audit log: every request, decision, answer, refusal and outcome, in order.

The approval gate and the input desk write to the same log, which the `audit` query returns and
continue-as-new carries. Refused attempts are bounded here, so a flood of refused signals cannot
grow the log (queries, continue-as-new) without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import overload

from workflows.decoding import cut
from workflows.payloads import ApprovalRecord, AuditEntry

# Refused attempts are listed one by one up to this many per run; later ones are only counted.
MAX_REFUSALS_LISTED = 100


class AuditLog(Sequence[AuditEntry]):
    """The audit entries of one run (a sequence, oldest first)."""

    def __init__(
        self, entries: list[AuditEntry] | None = None, *, on_add: Callable[[AuditEntry], None] | None = None
    ) -> None:
        self.entries: list[AuditEntry] = list(entries or [])
        # Told of each entry added from now on (the run's live events); not of refusals.
        self._on_add = on_add
        self._listed_refusals = sum(entry.event == "refused" for entry in self.entries)
        # The one entry that counts refusals past the listed ones, once there are any.
        self._omitted = next((entry for entry in self.entries if entry.event == "refusals_omitted"), None)

    @overload
    def __getitem__(self, index: int) -> AuditEntry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[AuditEntry]: ...

    def __getitem__(self, index: int | slice) -> AuditEntry | Sequence[AuditEntry]:
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[AuditEntry]:
        return iter(self.entries)

    def add(self, entry: AuditEntry) -> AuditEntry:
        """Append one entry and return it."""
        self.entries.append(entry)
        if self._on_add is not None:
            self._on_add(entry)
        return entry

    def refused(self, call_id: str, record: ApprovalRecord | None, *, actor: str, reason: str, now: datetime) -> None:
        """Note an attempt to decide (or answer) that was refused; `record` is the gated call it named, if any."""
        if self._listed_refusals >= MAX_REFUSALS_LISTED:
            if self._omitted is None:
                self._omitted = AuditEntry(
                    at=now,
                    event="refusals_omitted",
                    call_id="*",
                    count=0,
                    reason=f"refused attempts beyond the first {MAX_REFUSALS_LISTED}, counted, not listed",
                )
                self.entries.append(self._omitted)
            self._omitted.count = (self._omitted.count or 0) + 1
            self._omitted.at = now
            return
        self._listed_refusals += 1
        self.entries.append(
            AuditEntry(
                at=now,
                event="refused",
                call_id=cut(call_id),
                actor=cut(actor),
                reason=cut(reason, 300),
                agent=record.agent if record else None,
                server=record.server if record else None,
                tool=record.tool if record else None,
            )
        )
