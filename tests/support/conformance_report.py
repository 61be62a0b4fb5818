"""Summarise a conformance client-suite run (`-o DIR`): pass count, each scenario, and the verdict.

A scenario passes when none of its checks failed or warned. The run fails when a scenario fails
that is not listed in NOT_APPLICABLE (README, "Connecting MCP servers", says why each is listed).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

STAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
NOT_APPLICABLE = {
    # Enterprise-managed authorization (ID-JAG token exchange, SEP-990): no servers.toml form.
    "auth/cross-app-access-complete-flow",
    # 2025-03-26 metadata whose issuer is not the server's origin: the mcp SDK refuses it
    # (RFC 8414 §3.3 issuer check, SEP-2468), as a current client must.
    "auth/2025-03-26-oauth-metadata-backcompat",
    # Passes its checks; warns when the SDK's reconnect comes later than the server's `retry` hint.
    "sse-retry",
}


def main(results: Path) -> int:
    """Print the summary; exit 1 when an applicable scenario failed."""
    verdicts: dict[str, bool] = {}
    for checks in sorted(results.rglob("checks.json")):
        name = STAMP.sub("", str(checks.parent.relative_to(results)))
        statuses = [check["status"] for check in json.loads(checks.read_text())]
        verdicts[name] = "FAILURE" not in statuses and "WARNING" not in statuses
    passed = sum(verdicts.values())
    sys.stdout.write(f"conformance client scenarios: {passed} of {len(verdicts)} passed\n")
    for name, ok in sorted(verdicts.items()):
        note = "" if ok else (" (not applicable, see README)" if name in NOT_APPLICABLE else " (FAILED)")
        sys.stdout.write(f"  {'pass' if ok else 'fail'}  {name}{note}\n")
    unexpected = [name for name, ok in verdicts.items() if not ok and name not in NOT_APPLICABLE]
    return 1 if unexpected or not verdicts else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
