"""A store-backed gateway configured through its admin API, for the REST service tests: a team
owning services, an app of another team subscribed to them (approval auto), its key; helpers
to publish versions and wait until the data plane serves them.

The pattern is tests/integration/test_tenancy.py's: `tollway serve` on a SQLite data
directory, with workers and the admin API, configured only through the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from servers import Process, free_port, start_gateway

ADMIN_TOKEN = "tollway-test-admin-token-0123456789"
SECRET_KEY = "tollway-test-secret-key-0123456789abcdef"
# How long a change may take to reach every worker before a test gives up.
PATIENCE_S = 15.0


class RestGateway:
    def __init__(
        self, workdir: Path, workers: int = 2, server: dict[str, Any] | None = None
    ) -> None:
        admin_port = free_port()
        self.process: Process = start_gateway(
            workdir,
            {"server": server} if server else None,
            "--data-dir",
            str(workdir / f"rest-store-{admin_port}"),
            "--admin-port",
            str(admin_port),
            env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, "TOLLWAY_SECRET_KEY": SECRET_KEY},
            workers=workers,
        )
        self.admin = httpx.Client(
            base_url=f"http://127.0.0.1:{admin_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        self.owner = self.ok(self.admin.post("/teams", json={"name": "owners"}), 201)["id"]
        users = self.ok(self.admin.post("/teams", json={"name": "users"}), 201)["id"]
        self.app = self.ok(self.admin.post("/apps", json={"team_id": users, "name": "app"}), 201)[
            "id"
        ]
        self.key = self.ok(self.admin.post(f"/apps/{self.app}/keys", json={"name": "k"}), 201)[
            "key"
        ]
        self.headers = {"Authorization": f"Bearer {self.key}"}
        self.client = httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    @property
    def url(self) -> str:
        return self.process.url

    def close(self) -> None:
        self.client.close()
        self.admin.close()
        self.process.stop()

    @staticmethod
    def ok(response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None

    def service(self, name: str, upstream: dict[str, Any]) -> int:
        """A public rest service at /NAME with `upstream` published as version 1, the app
        subscribed; returns once the gateway forwards to it."""
        created = self.ok(
            self.admin.post(
                "/services",
                json={
                    "team_id": self.owner,
                    "name": name,
                    "kind": "rest",
                    "route_prefix": f"/{name}",
                    "visibility": "public",
                    "approval": "auto",
                },
            ),
            201,
        )
        service_id = int(created["id"])
        self.publish(service_id, upstream)
        self.ok(
            self.admin.post("/subscriptions", json={"app_id": self.app, "service_id": service_id}),
            201,
        )
        self.until(f"/{name} served", lambda: self.served(f"/{name}/"))
        return service_id

    def fresh(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request on a connection of its own (so that it may land on any worker)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def served(self, path: str) -> bool:
        """The gateway forwards `path` (the key known, subscribed, the route in place)."""
        answer = self.fresh("GET", path)
        if answer.status_code in (401, 403):
            return False
        return not (answer.status_code == 404 and b"unknown_url" in answer.content)

    def version(self, service_id: int, upstream: dict[str, Any]) -> int:
        created = self.ok(
            self.admin.post(f"/services/{service_id}/versions", json={"upstream": upstream}), 201
        )
        return int(created["number"])

    def publish(self, service_id: int, upstream: dict[str, Any]) -> int:
        number = self.version(service_id, upstream)
        self.ok(self.admin.post(f"/services/{service_id}/versions/{number}/publish"))
        return number

    def until(self, label: str, check: Callable[[], bool], patience_s: float = PATIENCE_S) -> float:
        """Waits for `check` to hold six times in a row (on fresh connections: both workers);
        returns how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < patience_s:
            if all(_fresh(check) for _ in range(6)):
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"{label}: not so after {patience_s} s\n{self.process.log()[-4000:]}")

    def target_of(self, path: str, **headers: str) -> str:
        """Which target answered a GET (on a fresh connection)."""
        answer = self.fresh("GET", path, headers=headers)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        return str(answer.json()["target"])


def _fresh(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except httpx.HTTPError:
        return False


def shares(names: list[str], expected: dict[str, float]) -> tuple[dict[str, float], float]:
    """Each target's share of `names`, and the largest gap to its expected share."""
    total = len(names)
    got = {name: names.count(name) / total for name in expected}
    assert set(names) <= set(expected), set(names) - set(expected)
    return got, max(abs(got[name] - share) for name, share in expected.items())
