"""How many examples a property test tries: its full count in the whole suite, a few in the quick tier."""

from __future__ import annotations

from hypothesis import settings

# Enough to exercise every strategy once or twice; the whole suite runs the full counts.
QUICK_EXAMPLES = 25
_quick = False


def use_quick_profile() -> None:
    """Run every property test with `QUICK_EXAMPLES` (called before the test modules are imported)."""
    global _quick
    _quick = True
    settings.register_profile("quick", max_examples=QUICK_EXAMPLES)
    settings.load_profile("quick")


def examples(full: int) -> int:
    """`full`, or `QUICK_EXAMPLES` when the quick tier runs."""
    return min(full, QUICK_EXAMPLES) if _quick else full
