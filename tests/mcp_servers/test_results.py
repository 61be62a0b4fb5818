"""Tool results as the spec means them, from server-everything over streamable HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from mcp_types import CallToolResult, TextContent

from mcp_servers.client.registry import Connection, McpPool, load_servers
from mcp_servers.client.results import render
from tests.support.everything import everything_http, everything_servers

pytestmark = pytest.mark.integration  # starts MCP servers


@pytest.fixture(scope="module")
async def everything(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Connection]:
    root = tmp_path_factory.mktemp("results")
    async with everything_http(root / "everything.log") as url:
        path = root / "servers.toml"
        path.write_text(everything_servers(url))
        pool = McpPool(load_servers(path, {}), {})
        try:
            await pool.connection("everything").list_tools()
            yield pool.connection("everything")
        finally:
            await pool.close()


async def test_structured_content_reaches_the_model_beside_its_text(everything: Connection) -> None:
    result = await everything.call_tool("get-structured-content", {"location": "New York"}, None)
    listed = everything.listed("get-structured-content")
    assert listed is not None and listed.output_schema is not None
    assert result.structured_content is not None and "temperature" in result.structured_content
    text = render(result).text
    # Either a text block already carries exactly the structured value, or it is appended as JSON.
    shown = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert result.structured_content in shown or json.dumps(result.structured_content, sort_keys=True) in text


async def test_resource_links_keep_their_uris_and_names(everything: Connection) -> None:
    result = await everything.call_tool("get-resource-links", {"count": 3}, None)
    text = render(result).text
    links = [block for block in result.content if block.type == "resource_link"]
    assert len(links) == 3
    for link in links:
        assert f"uri: {link.uri}" in text and f"name: {link.name}" in text
    assert "omitted" not in text


async def test_embedded_text_resources_keep_uri_and_text(everything: Connection) -> None:
    result = await everything.call_tool("get-resource-reference", {"resourceType": "Text", "resourceId": 2}, None)
    text = render(result).text
    embedded = [block for block in result.content if block.type == "resource"]
    assert embedded, "server-everything embeds the resource"
    resource = embedded[0].resource
    assert f"uri: {resource.uri}" in text
    assert getattr(resource, "text", "") and resource.text in text  # type: ignore[union-attr]


async def test_images_become_a_placeholder_with_type_and_size_and_are_kept_for_image_models(
    everything: Connection,
) -> None:
    result = await everything.call_tool("get-tiny-image", {}, None)
    plain = render(result)
    assert plain.images == [] and plain.attached_bytes == 0
    rendered = render(result, attach=100_000)
    assert len(rendered.images) == 1
    image = rendered.images[0]
    assert image.mime_type == "image/png" and image.size > 0
    assert f"[image: image/png, {image.size} bytes, not shown]" in plain.text
    assert f"[image: image/png, {image.size} bytes, attached]" in rendered.text
    assert rendered.attached_bytes == len(image.data)
    # A budget smaller than the image attaches nothing: the placeholder stays.
    assert render(result, attach=len(image.data) - 1).images == []


async def test_annotations_are_kept(everything: Connection) -> None:
    result = await everything.call_tool("get-annotated-message", {"messageType": "error", "includeImage": False}, None)
    text = render(result).text
    annotations = result.content[0].annotations
    assert annotations is not None and annotations.priority is not None
    assert f"priority: {annotations.priority}" in text
    assert "audience: " + ", ".join(annotations.audience or []) in text


def test_structured_content_is_not_dropped_when_the_text_says_something_else() -> None:
    result = CallToolResult(
        content=[TextContent(type="text", text="It is sunny.")],
        structured_content={"temperature": 22},
    )
    text = render(result).text
    assert "It is sunny." in text
    assert '"temperature": 22' in text
