"""An upstream MCP server for the tests, written with the official `mcp` SDK: Streamable HTTP
on 127.0.0.1, behind a bearer token. Its tools: `search` (a structured result, with an output
schema), `echo` (text), `fail` (a tool error), `admin_reset` (for deny lists). Over stdio and
SSE it also has `whoami` (its pid, directory and environment's names), `crash` (it exits)
and `read_file`.

Run: python tests/mcp_servers.py PORT TOKEN [ECHO_DESCRIPTION]   (Streamable HTTP)
     python tests/mcp_servers.py stdio                            (on its stdin and stdout)
     python tests/mcp_servers.py sse PORT                         (HTTP+SSE: GET /sse)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel


class Hit(BaseModel):
    title: str
    score: float


class Hits(BaseModel):
    query: str
    hits: list[Hit]


class Whoami(BaseModel):
    pid: int
    cwd: str
    env: list[str]


def build(echo_says: str = "Say the text back.", process_tools: bool = False) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("docs", version="1.0")

    @server.tool(description="Search the documentation.")
    def search(query: str, limit: int = 2) -> Hits:
        return Hits(
            query=query,
            hits=[Hit(title=f"{query} {n}", score=1.0 / (n + 1)) for n in range(limit)],
        )

    @server.tool(description=echo_says)
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Always fails.")
    def fail(reason: str) -> str:
        raise ValueError(f"failed on purpose: {reason}")

    @server.tool(description="Resets everything (never to be offered).")
    def admin_reset() -> str:
        return "reset"

    if process_tools:

        @server.tool(description="The server process: its pid, directory and environment.")
        def whoami() -> Whoami:
            return Whoami(pid=os.getpid(), cwd=os.getcwd(), env=sorted(os.environ))

        @server.tool(description="Exits at once, as a crash.")
        def crash() -> str:
            os._exit(3)

        @server.tool(description="A file's text.")
        def read_file(path: str) -> str:
            with open(path) as found:
                return found.read()

    return server


class BearerOnly:
    """Refuses every request without the token (401), as a protected server does."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.token:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorized"})
            return
        await self.app(scope, receive, send)


if __name__ == "__main__" and sys.argv[1] == "stdio":
    build(process_tools=True).run("stdio")
elif __name__ == "__main__" and sys.argv[1] == "sse":
    sse = build(process_tools=True).sse_app()
    uvicorn.run(sse, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
elif __name__ == "__main__":
    port, token = int(sys.argv[1]), sys.argv[2]
    # A third argument: what `echo` tells models it does (a server changing its tools).
    server = build(*sys.argv[3:4])
    app = server.streamable_http_app(streamable_http_path="/mcp")
    uvicorn.run(BearerOnly(app, token), host="127.0.0.1", port=port, log_level="warning")
