"""The names tools go by at the MCP endpoint: a service's own name, `team_name` when two teams
use one name; and a called name back to its server and that server's own tool name, dots in
the tool's name included."""

from __future__ import annotations

from tollway.config.mcp_upstream import McpUpstream
from tollway.config.snapshot import ServiceRuntime
from tollway.proxy.handlers.mcp_calls import server_tool, tool_names


def service(service_id: int, name: str) -> ServiceRuntime:
    server = McpUpstream("http", f"http://127.0.0.1:9/{service_id}", (), None, (), 30.0)
    return ServiceRuntime(service_id, name, 1, "mcp", f"/s{service_id}", mcp=server)


def test_names_are_the_services_own_unless_two_teams_share_one() -> None:
    docs, other_docs, search = service(1, "a/docs"), service(2, "b/docs"), service(3, "a/search")
    named = tool_names([docs, other_docs, search])
    assert named == {"a_docs": docs, "b_docs": other_docs, "search": search}


def test_a_called_name_goes_back_to_its_server_and_tool() -> None:
    docs, nested = service(1, "t/docs"), service(2, "t/docs.v2")
    offered = {"docs": docs, "docs.v2": nested}
    assert server_tool(offered, "docs.search") == (docs, "search")
    assert server_tool(offered, "docs.v2.search") == (nested, "search")
    assert server_tool(offered, "docs.files.read") == (docs, "files.read")
    assert server_tool(offered, "nothing.here") == (None, "")
    assert server_tool(offered, "docs") == (None, "")
