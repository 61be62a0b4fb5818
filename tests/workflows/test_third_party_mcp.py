"""A third-party MCP server behind the gate: `@modelcontextprotocol/server-filesystem` from npm.

Needs `npm ci --prefix tests/peers` (the version is pinned in tests/peers/package.json).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.support.histories import assert_replays, history_text
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult

PEERS = Path(__file__).resolve().parents[1] / "peers"
FILESYSTEM_SERVER = PEERS / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"

# No [tools] table: every decision below comes from the default policy and the annotations
# of the server (trusted here), nothing from per-tool rules.
FILES_AGENT = """
name = "files"
instructions = "You keep notes in a directory."
mcp_servers = ["files"]
"""

NOTES = "Meeting moved to Thursday 10:00 (marker 4b1d)."
SUMMARY = "Summary: the meeting is on Thursday at 10:00."


@pytest.fixture
def filesystem_server() -> Path:
    """The entry point of the pinned npm package; missing means CI skipped `npm ci`."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: this test runs a real Node.js MCP server")
    if not FILESYSTEM_SERVER.exists():
        pytest.fail(f"{FILESYSTEM_SERVER} is missing: run `npm ci --prefix tests/peers`")
    return FILESYSTEM_SERVER


async def test_reads_run_and_writes_wait_for_approval(client: Client, tmp_path: Path, filesystem_server: Path) -> None:
    root = (tmp_path / "files").resolve()
    root.mkdir()
    (root / "notes.txt").write_text(NOTES)
    summary = root / "summary.txt"
    servers = f"""
    [servers.files]
    transport = "stdio"
    command = "node"
    args = ["{filesystem_server}", "{root}"]
    trust = "trusted"
    timeout = "20s"
    """
    script = {
        "files": [
            {"tool_call": {"name": "read_text_file", "arguments": {"path": str(root / "notes.txt")}}},
            {"tool_call": {"name": "write_file", "arguments": {"path": str(summary), "content": SUMMARY}}},
            {"message": "Wrote summary.txt."},
        ]
    }
    project = make_project(tmp_path, agents={"files": FILES_AGENT}, script=script, servers=servers)
    async with airlock_worker(client, project) as activities:
        # The premise of the default policy: the package annotates its tools itself.
        tools = {t.name: t.annotations for t in await activities.pool.connection("files").list_tools()}
        assert tools["read_text_file"] is not None and tools["read_text_file"].read_only_hint is True
        assert tools["write_file"] is not None and tools["write_file"].read_only_hint is False

        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="files", input="Summarise notes.txt into summary.txt.", requester="carol"),
            id=workflow_id("fs"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        [pending] = await wait_pending(handle)
        assert (pending["server"], pending["tool"]) == ("files", "write_file")
        assert pending["arguments"] == {"path": str(summary), "content": SUMMARY}
        assert not summary.exists(), "nothing is written before approval"
        audit = await handle.query("audit", result_type=list)
        assert {entry["tool"] for entry in audit} == {"write_file"}, "the read asked nobody"

        await handle.signal("approve", decision(pending, "alice"))
        result = await handle.result()

    assert summary.read_text() == SUMMARY
    assert result.output == "Wrote summary.txt."
    assert result.tool_calls == 2
    [record] = result.approvals
    assert (record.tool, record.decision, record.decided_by, record.outcome) == (
        "write_file",
        "approved",
        "alice",
        "ok",
    )
    # The read really went through the server: its result is recorded in the history.
    assert "marker 4b1d" in await history_text(handle)
    await assert_replays(handle)
