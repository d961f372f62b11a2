"""What one version of an MCP service is: an upstream MCP server (Streamable HTTP) whose tools
the gateway offers, under the service's name, to the apps subscribed to it.

The server's credential is the gateway's: a bearer token read from an environment variable of
the gateway's (never stored, never shown, never passed to clients). Allow and deny lists say
which of the server's tools apps may see and call (names or fnmatch patterns)."""

from __future__ import annotations

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

    _url = field_validator("url")(http_url)
    _env = field_validator("bearer_token_env")(env_name)
    _headers = field_validator("headers")(static_headers)
