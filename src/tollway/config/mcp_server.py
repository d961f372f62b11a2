"""What one version of an MCP service is: an upstream MCP server (Streamable HTTP) whose tools
the gateway offers, under the service's name, to the apps subscribed to it.

The server's credential is the gateway's: a bearer token read from an environment variable of
the gateway's (never stored, never shown, never passed to clients). Allow and deny lists say
which of the server's tools apps may see and call (names or fnmatch patterns)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tollway.config.fields import Strict, env_name, http_url, static_headers


class McpServerSpec(Strict):
    url: str = Field(description="the server's Streamable HTTP endpoint, e.g. http://host/mcp")
    bearer_token_env: str | None = Field(
        None, description="an environment variable holding the server's bearer token"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="static, non-secret headers sent with each message"
    )
    allow: list[str] | None = Field(
        None, description="the tools offered (names or patterns); default: every tool"
    )
    deny: list[str] = Field(default_factory=list, description="tools never offered")
    timeout_s: float = Field(30.0, gt=0, le=600, description="the longest a message may take")
    on_tool_change: Literal["record", "hide"] = Field(
        "record",
        description="a tool whose description or schemas changed since the version was "
        "published: recorded in the audit log (and an event), and with `hide` also withheld "
        "until a new version is published (re-approved)",
    )
    tools: dict[str, str] | None = Field(
        None,
        description="set by the gateway when the version is published: each tool's fingerprint "
        "(its description and schemas) as the server described it then",
    )

    _url = field_validator("url")(http_url)
    _env = field_validator("bearer_token_env")(env_name)
    _headers = field_validator("headers")(static_headers)
