"""`airlock show` and `airlock run` answer plainly: a run no worker polls, a run that failed, a
misspelled agent — the installed console script against a real Temporal server and worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.catalog import Catalog
from console.inbox.app import templates
from mcp_servers.tickets import store
from mcp_servers.tickets.store import count_writes, db_path_from_env
from mcp_servers.tomlfiles import ConfigError
from runtime.settings import PROJECT_ROOT
from tests.support.airlock_cli import AIRLOCK, address_of, airlock
from tests.support.browser import CHROMIUM_ARGS
from tests.support.conditions import wait_for
from tests.support.metrics import metrics_worker, scrape
from tests.support.project import airlock_worker, make_project
from tests.support.runs import decision, wait_pending, workflow_id
from workflows.payloads import AgentRequest, AgentResult

pytestmark = pytest.mark.integration  # runs the CLI, MCP servers and a browser

SCRIPT = {"support": [{"message": "Done."}]}


async def test_show_on_a_queue_no_worker_polls_says_so_at_once_every_time(
    tmp_path: Path, client: Client, temporal_env: WorkflowEnvironment
) -> None:
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="hello", requester="carol"),
        id=workflow_id("unpolled"),
        task_queue=queue,
    )
    answers = set()
    for _ in range(3):
        began = time.monotonic()
        ran = await airlock("--address", address_of(temporal_env), "show", handle.id, home=tmp_path)
        took = time.monotonic() - began
        assert ran.code == 1, ran.describe()
        assert ran.out == "", ran.describe()
        assert f"no worker polls task queue '{queue}'" in ran.err, ran.describe()
        for noise in ("h2 protocol", "Timeout expired", "did not answer", "Traceback"):
            assert noise not in ran.err, ran.describe()
        # Well under the 10 s query timeout each answer used to take.
        assert took < 8, f"show took {took:.1f}s"
        answers.add(ran.err)
    assert len(answers) == 1, answers
    await handle.terminate("test over")


async def test_show_on_a_failed_run_says_why_and_a_misspelled_agent_is_one_line(
    tmp_path: Path, client: Client, temporal_env: WorkflowEnvironment
) -> None:
    project = make_project(tmp_path, script=SCRIPT)
    env = {"AIRLOCK_TEMPORAL_ADDRESS": address_of(temporal_env), "AIRLOCK_TASK_QUEUE": project.settings.task_queue}
    async with airlock_worker(client, project):
        run_id = workflow_id("nosuch")
        ran = await airlock("run", "nosuch", "close T-1", "--id", run_id, "--follow", home=tmp_path, env=env)
        assert ran.code == 1, ran.describe()
        assert "Traceback" not in ran.out + ran.err, ran.describe()
        failed = [line for line in ran.out.splitlines() if line.startswith("✘")]
        assert len(failed) == 1 and "UnknownAgentError: unknown agent 'nosuch'" in failed[0], ran.describe()

        shown = await airlock("show", run_id, home=tmp_path, env=env)
        assert shown.code == 0, shown.describe()
        assert "Traceback" not in shown.out + shown.err, shown.describe()
        lines = {line.split()[0]: line for line in shown.out.splitlines() if line.strip()}
        assert "failed" in lines, shown.describe()
        assert "UnknownAgentError: unknown agent 'nosuch'" in lines["failed"], shown.describe()

        as_json = await airlock("show", run_id, "-o", "json", home=tmp_path, env=env)
        assert as_json.json()["failure"].startswith("UnknownAgentError: unknown agent 'nosuch'")


async def test_show_on_a_terminated_run_with_no_worker_still_says_why(
    tmp_path: Path, client: Client, temporal_env: WorkflowEnvironment
) -> None:
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "AgentWorkflow",
        AgentRequest(agent="support", input="hello", requester="carol"),
        id=workflow_id("ended"),
        task_queue=queue,
    )
    await handle.terminate(reason="stuck since Monday")

    async def ended() -> bool:
        return (await handle.describe()).status is not None and (await handle.describe()).close_time is not None

    await wait_for(ended, what="the run to end")
    ran = await airlock("--address", address_of(temporal_env), "show", handle.id, home=tmp_path)
    assert ran.code == 0, ran.describe()
    assert "terminated: stuck since Monday" in ran.out, ran.describe()
    assert f"no worker polls task queue '{queue}'" in ran.out, ran.describe()


async def test_mcp_tools_keeps_the_tickets_servers_log_and_database_out_of_where_it_runs(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "TICKETS_"))}
    proc = await asyncio.create_subprocess_exec(
        str(AIRLOCK),
        "mcp",
        "tools",
        "tickets",
        cwd=elsewhere,
        env={**environ, "HOME": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "close_ticket" in out.decode()
    assert err.decode() == "", "no JSON log lines from the tickets server"
    assert list(elsewhere.iterdir()) == [], "nothing left where the command ran"


def test_the_tickets_database_defaults_to_the_checkouts_airlock_directory() -> None:
    assert db_path_from_env({}) == Path(store.__file__).resolve().parents[2] / ".airlock" / "tickets.db"


def test_a_bad_duration_is_named_once(tmp_path: Path) -> None:
    (tmp_path / "support.toml").write_text(
        'name = "support"\ninstructions = "x"\n[approval]\napprovers = ["alice"]\ntimeout = "2 days"\n'
    )
    with pytest.raises(ConfigError) as raised:
        Catalog.load(tmp_path, set())
    message = str(raised.value)
    assert message.endswith("key 'approval.timeout': not a duration: '2 days' (use e.g. 30s, 5m, 2h, 1d)"), message
    assert "Value error" not in message and message.count("2 days") == 1, message


async def test_scripted_support_agent_closes_the_ticket_it_is_asked_about(client: Client, tmp_path: Path) -> None:
    script = json.loads((PROJECT_ROOT / "agents" / "scripted.json").read_text())
    project = make_project(
        tmp_path,
        agents={"support": (PROJECT_ROOT / "agents" / "support.toml").read_text()},
        script={"support": script["support"]},
    )
    async with airlock_worker(client, project):
        for asked, ticket in (("Ticket T-2 is fixed; please close it.", "T-2"), ("Please close my ticket.", "T-1")):
            handle = await client.start_workflow(
                "AgentWorkflow",
                AgentRequest(agent="support", input=asked, requester="carol"),
                id=workflow_id("scripted-ticket"),
                task_queue=project.settings.task_queue,
                result_type=AgentResult,
            )
            [pending] = await wait_pending(handle)
            assert pending["tool"] == "close_ticket" and pending["arguments"]["ticket_id"] == ticket
            await handle.signal("approve", decision(pending, "alice"))
            result = await handle.result()
            assert result.output == f"Closed {ticket} as fixed after checking it.", result.output
    assert count_writes(project.tickets_db, "close_ticket") == 2
    with sqlite3.connect(project.tickets_db) as db:
        status = dict(db.execute("SELECT id, status FROM tickets WHERE id IN ('T-1', 'T-2')").fetchall())
    assert status == {"T-1": "closed", "T-2": "closed"}, status


BREAKS_JS = """
(code) => {
  const breaks = [];
  let previous = null;
  const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      if (previous && rect.top > previous.top + 1) breaks.push([previous.ch, node.data[i]]);
      previous = {top: rect.top, ch: node.data[i]};
    }
  }
  return breaks;
}
"""
LONG_ID = "support-incident-review-2026-12-07-3f2a9c1b2d4e5f60a7b8c9d0e1f2a3b4"


async def test_the_inbox_wraps_a_long_workflow_id_only_between_its_parts() -> None:
    chromium = Path("/usr/bin/chromium")
    call = {
        "agent": "support",
        "link": "/call?wf=x&call=y",
        "tool_name": "tickets.close_ticket",
        "args_text": '{"ticket_id": "T-1", "resolution": "fixed"}',
        "requester": "carol",
        "requester_proof": "claimed",
        "waited": "3m5s",
        "deadline_text": "in 23h",
        "needs_text": "1",
        "workflow_id": LONG_ID,
        "call_id": "call-support-1",
        "decidable": True,
    }
    table = templates.get_template("calls.html").render(calls=[call])
    css = (PROJECT_ROOT / "console" / "inbox" / "static" / "inbox.css").read_text()
    page_html = f"<!doctype html><html><head><style>{css}</style></head><body><main>{table}</main></body></html>"
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 520, "height": 800})
            await page.set_content(page_html)
            code = page.locator("td.wf code")
            assert (await code.inner_text()) == LONG_ID
            breaks = await code.evaluate(BREAKS_JS)
        finally:
            await browser.close()
    assert breaks, "a narrow page wraps the id"
    inside = [pair for pair in breaks if pair[0] not in "/-_.:"]
    assert inside == [], f"the id broke mid-word after {inside}"


async def test_metrics_label_the_scripted_models_tokens_scripted(
    client: Client, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The agent file names gpt-4.1-mini (the default); the worker runs the scripted model.
    project = make_project(tmp_path, script=SCRIPT)
    async with metrics_worker(project, temporal_env) as url:
        handle = await client.start_workflow(
            "AgentWorkflow",
            AgentRequest(agent="support", input="hello", requester="carol"),
            id=workflow_id("metered-scripted"),
            task_queue=project.settings.task_queue,
            result_type=AgentResult,
        )
        assert (await asyncio.wait_for(handle.result(), 60)).output == "Done."

        async def counted() -> list[dict[str, str]] | None:
            families = await scrape(url)
            labels = [dict(s.labels) for s in families.get("airlock_model_tokens", [])]
            return labels or None

        labels = await wait_for(counted, what="the model token series")
    assert {series["model"] for series in labels} == {"scripted"}, labels
