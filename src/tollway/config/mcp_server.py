"""What one version of an MCP service is: an upstream MCP server whose tools the gateway
offers, under the service's name, to the apps subscribed to it. The gateway reaches it over
Streamable HTTP, the older HTTP+SSE transport, or stdio (a command each worker runs itself).

The server's credential is the gateway's, never passed to clients: a bearer token given to the
admin API (kept sealed with the store's secret key, never shown again) or read from an
environment variable of the gateway's; a stdio server gets the gateway's variables that its
version names, and no others. Allow and deny lists say which of
the server's tools apps may see and call (names or fnmatch patterns)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from tollway.config.fields import Strict, env_name, http_url, static_headers

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


class McpServerSpec(Strict):
    transport: Literal["http", "sse", "stdio"] = Field(
        "http",
        description="http: Streamable HTTP at `url`; sse: the older HTTP+SSE transport, its "
        "stream at `url`; stdio: `command`, run by each worker in `cwd`",
    )
    url: str | None = Field(
        None, description="http and sse: the server's endpoint, e.g. http://host/mcp"
    )
    command: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] | None = Field(
        None, min_length=1, max_length=64, description="stdio: the program and arguments"
    )
    cwd: str | None = Field(
        None, description="stdio: the absolute path of the directory it runs in (it must exist)"
    )
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="stdio: static, non-secret environment variables"
    )
    pass_env: list[EnvName] = Field(
        default_factory=list,
        description="stdio: the gateway's own environment variables it gets (its secrets)",
    )
    max_memory_mb: int | None = Field(
        1024, ge=16, le=65536, description="stdio: its address-space limit (None: no limit)"
    )
    sandbox: bool = Field(
        True,
        description="stdio: confine its files with Landlock (read the system's directories and "
        "read_paths, change only cwd and write_paths); false runs it unconfined",
    )
    read_paths: list[Annotated[str, StringConstraints(pattern=r"^/")]] = Field(
        default_factory=list,
        description="stdio: absolute paths it may read and run beyond the system's (its own "
        "program's directory, an interpreter's libraries)",
    )
    write_paths: list[Annotated[str, StringConstraints(pattern=r"^/")]] = Field(
        default_factory=list, description="stdio: absolute paths it may change beyond cwd"
    )
    bearer_token_env: str | None = Field(
        None, description="an environment variable holding the server's bearer token"
    )
    bearer_token: str | None = Field(
        None,
        max_length=4096,
        description="the server's bearer token: kept sealed with the store's secret key, "
        "never shown (its sealed form is `sealed_token`)",
    )
    sealed_token: str | None = Field(
        None,
        max_length=8192,
        description="set by the gateway: `bearer_token` sealed with the store's secret key",
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

    _env = field_validator("bearer_token_env")(env_name)
    _headers = field_validator("headers")(static_headers)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("bearer_token")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value or not value.strip()):
            raise ValueError("a token on one line, not empty")
        return value

    @model_validator(mode="after")
    def _reached(self) -> McpServerSpec:
        given = [self.bearer_token_env, self.bearer_token or self.sealed_token]
        if all(given):
            raise ValueError("give the token or the variable holding it, not both")
        if self.transport == "stdio":
            if not self.command or self.url is not None:
                raise ValueError("a stdio server gives `command` (and no url)")
            if self.cwd is None or not os.path.isabs(self.cwd):
                raise ValueError("a stdio server gives `cwd`, an absolute path")
        else:
            if self.url is None or self.command is not None:
                raise ValueError(f"an {self.transport} server gives `url` (and no command)")
            if self.env or self.pass_env or self.cwd is not None:
                raise ValueError("env, pass_env and cwd are for stdio servers")
            if self.read_paths or self.write_paths:
                raise ValueError("read_paths and write_paths are for stdio servers")
        if self.transport == "stdio" and any(given):
            raise ValueError("a stdio server's secrets go in its environment (pass_env)")
        return self
