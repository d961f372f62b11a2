"""A small client of the admin API (used by `tollway admin ...`), with names resolved to ids."""

from __future__ import annotations

from typing import Any

import httpx

PREFIX = "/admin/v1"


class AdminClientError(Exception):
    """An answer other than success; `str()` says what the API said, field by field."""

    def __init__(self, status: int, message: str, fields: list[dict[str, str]]) -> None:
        self.status = status
        self.fields = fields
        lines = [f"{message} (HTTP {status})" if status else message]
        lines += [f"  {f['field'] or '(request)'}: {f['message']}" for f in fields]
        super().__init__("\n".join(lines))


class AdminClient:
    def __init__(self, url: str, token: str | None, *, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url + PREFIX, headers=headers, timeout=timeout_s)
        self.url = url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise AdminClientError(
                0, f"cannot reach the admin API at {self.url}: {exc}", []
            ) from None
        if response.is_success:
            return response.json() if response.content else None
        try:
            detail = response.json()["error"]
            raise AdminClientError(response.status_code, detail["message"], detail["fields"])
        except (ValueError, KeyError, TypeError):
            raise AdminClientError(response.status_code, response.text[:200], []) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json=body if body is not None else {})

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list, following pages."""
        out: list[dict[str, Any]] = []
        after = None
        while True:
            page = self.get(path, limit=500, after=after, **params)
            out.extend(page["items"])
            after = page["next_after"]
            if after is None:
                return out

    # --- names to ids ------------------------------------------------------------------------

    def team_id(self, name: str) -> int:
        found = self.get("/teams", name=name)["items"]
        if not found:
            raise AdminClientError(404, f"no team named {name!r} (that you can see)", [])
        return int(found[0]["id"])

    def user_id(self, name: str) -> int:
        found = self.get("/users", name=name)["items"]
        if not found:
            raise AdminClientError(404, f"no user named {name!r}", [])
        return int(found[0]["id"])

    def _qualified(self, value: str, what: str) -> tuple[int, str]:
        team, sep, name = value.partition("/")
        if not sep or not team or not name:
            raise AdminClientError(0, f"name the {what} as TEAM/NAME (got {value!r})", [])
        return self.team_id(team), name

    def app_id(self, value: str) -> int:
        team_id, name = self._qualified(value, "app")
        found = self.get("/apps", team_id=team_id, name=name)["items"]
        if not found:
            raise AdminClientError(404, f"no app {value!r}", [])
        return int(found[0]["id"])

    def service_id(self, value: str) -> int:
        # By team name: another team's public service is visible, its team may not be.
        team, sep, name = value.partition("/")
        if not sep or not team or not name:
            raise AdminClientError(0, f"name the service as TEAM/NAME (got {value!r})", [])
        found = self.get("/services", team=team, name=name)["items"]
        if not found:
            raise AdminClientError(404, f"no service {value!r}", [])
        return int(found[0]["id"])
