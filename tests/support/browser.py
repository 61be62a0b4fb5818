"""Debian's chromium for the inbox tests: a browser, a page as a person, rows, screenshots, approvers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright
from temporalio.client import Client

from console import signing
from console.inbox.app import build_app
from console.inbox.auth import Gatekeeper
from console.inbox.runs import Runs
from console.inbox.server import bind, serve
from runtime.settings import PROJECT_ROOT
from tests.support.project import Project, airlock_worker, make_project

CHROMIUM = Path("/usr/bin/chromium")
# The probe's flags: headless, root-safe, and no background traffic the closed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts" / "inbox"
HEADER = "X-Forwarded-User"
SECRET = b"inbox-test-csrf-secret"
# Every expectation in the browser waits on a condition, never a fixed time.
UI_TIMEOUT_MS = 20_000


def write_approvers(tmp_path: Path) -> tuple[Path, Path]:
    """alice, bob and mallory as people, and the inbox service that may assert all three."""
    entries = [signing.toml_entry(name, signing.generate_key()) for name in ("alice", "bob", "mallory")]
    inbox_key = tmp_path / "inbox.key"
    key = signing.generate_key()
    signing.save_private_key(key, inbox_key)
    approvers = tmp_path / "approvers.toml"
    approvers.write_text(
        "\n\n".join(entries)
        + '\n\n[services.inbox]\nkeys = ["'
        + signing.public_key_entry(signing.public_bytes(key))
        + '"]\nmay_assert = ["alice", "bob", "mallory"]\n'
    )
    return approvers, inbox_key


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, driven by playwright (no browser download)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def page_as(browser: Browser, person: str, *, dark: bool = False) -> Page:
    """A browser page whose requests carry the proxy's identity header for `person`."""
    context = await browser.new_context(
        extra_http_headers={HEADER: person},
        viewport={"width": 1280, "height": 900},
        color_scheme="dark" if dark else "light",
    )
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    return page


async def shot(page: Page, name: str) -> None:
    """A full-page screenshot under tests/artifacts/inbox/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def row(page: Page, workflow: str) -> Any:
    """The inbox row of one run's waiting call."""
    return page.locator(f'tr.call[data-workflow="{workflow}"]')


@dataclass
class Stack:
    """A worker, the inbox it is decided from, and the runs waiting in it."""

    project: Project
    url: str
    host: str
    gatekeeper: Gatekeeper


@contextlib.asynccontextmanager
async def inbox_stack(
    client: Client, tmp_path: Path, script: dict[str, Any], *, signed: bool = True, **options: Any
) -> AsyncIterator[Stack]:
    """The real worker running `script`, and the inbox on a free loopback port behind a (trusted) proxy header.

    `signed`: alice, bob and mallory in an approvers file, and the inbox signing for them; else
    decisions are asserted. `options` go to `make_project` (pipelines, ...).
    """
    if signed:
        approvers, inbox_key = write_approvers(tmp_path)
        options |= {"approvers_file": approvers, "inbox_key_file": inbox_key}
    project = make_project(tmp_path, script=script, inbox_port=0, inbox_trusted_proxies=["127.0.0.1"], **options)
    sock = bind(project.settings)
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    gatekeeper = Gatekeeper(identity_header=HEADER, trusted_proxies=["127.0.0.1"], allowed_hosts=[host], secret=SECRET)
    key = signing.load_private_key(options["inbox_key_file"]) if signed else None
    app = build_app(Runs(client, key), gatekeeper)
    stop = asyncio.Event()
    async with airlock_worker(client, project):
        serving = asyncio.create_task(serve(app, project.settings, stop, sock))
        try:
            yield Stack(project, f"http://{host}", host, gatekeeper)
        finally:
            stop.set()
            await serving
