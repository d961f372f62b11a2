"""The admin console in a real browser (Chromium, driven by Playwright) against the real
gateway: `tollway serve` on a SQLite store, with its admin API and the mock provider.

An operator signs in, creates two teams and a developer's membership, publishes a service that
needs approval, makes an app and a key for the other team, subscribes it from the catalog and
approves the request; the key then calls the service with the `openai` SDK, and the call shows
on the dashboard and in the records explorer. The developer of the other team, signed in,
cannot see the first team's private service. A screenshot of every screen is written to
TOLLWAY_CONSOLE_SCREENSHOTS (default build/console-screenshots/, which docs/console.md names).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from gateways import UPSTREAM_KEY
from prompt_api_servers import prompt
from servers import Process, free_port, start_gateway

ADMIN_TOKEN = "tollway-console-admin-token-0123456789"
SECRET_KEY = "tollway-console-secret-key-0123456789abcdef"
OPERATOR, OPERATOR_PASSWORD = "olivia", "olivia-console-pass"
DEVELOPER, DEVELOPER_PASSWORD = "dan", "dan-console-password"
ROOT = Path(__file__).parents[2]
# What the app asks (the mock's echo model answers it back): an invoice number to redact.
PROMPT = "hello console, about INV-123456"
SHOTS = Path(os.environ.get("TOLLWAY_CONSOLE_SCREENSHOTS", ROOT / "build" / "console-screenshots"))


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("no Chromium on this machine: apt-get install chromium (scripts/test)")


class Console:
    """The gateway and its admin API as the test sets them up."""

    def __init__(self, process: Process, admin_port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{admin_port}/ui/"
        self.admin = httpx.Client(
            base_url=f"http://127.0.0.1:{admin_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def console(workdir: Path, mock: Process) -> Iterator[Console]:
    admin_port = free_port()
    process = start_gateway(
        workdir,
        None,
        "--data-dir",
        str(workdir / f"console-store-{admin_port}"),
        "--admin-port",
        str(admin_port),
        env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, "TOLLWAY_SECRET_KEY": SECRET_KEY},
        workers=1,
    )
    gw = Console(process, admin_port)
    # What the console does not need to show being made: the upstream, the model, two users.
    gw.ok(
        gw.admin.post(
            "/providers",
            json={
                "name": "mock",
                "type": "openai_compatible",
                "base_url": mock.url + "/v1",
                "credentials": {"api_key": UPSTREAM_KEY},
            },
        ),
        201,
    )
    gw.ok(
        gw.admin.post(
            "/models",
            json={
                "name": "gpt-4o-mini",
                "deployments": [{"provider": "mock", "model": "gpt-4o-mini~echo"}],
            },
        ),
        201,
    )
    for name, password, role in (
        (OPERATOR, OPERATOR_PASSWORD, "admin"),
        (DEVELOPER, DEVELOPER_PASSWORD, "member"),
    ):
        gw.ok(
            gw.admin.post(
                "/users",
                json={"name": name, "password": password, "platform_role": role},
            ),
            201,
        )
    yield gw
    gw.admin.close()
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_binary(),
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield launched
        launched.close()


class Screens:
    """A browser page that fails the test on any script error or CSP violation, and keeps a
    screenshot of each screen it is asked to."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self._console)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def _console(self, message: Any) -> None:
        # A refusal the test provokes (the browser logs every 4xx it loads) is no problem;
        # a script error or a Content-Security-Policy violation is.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def shot(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def nav(self, label: str) -> None:
        self.page.get_by_role("navigation", name="Console").get_by_role("link", name=label).click()


def sign_in(screens: Screens, url: str, name: str, password: str) -> None:
    page = screens.page
    page.goto(url)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def openai_call(console: Console, key: str) -> str:
    client = openai.OpenAI(base_url=console.process.url + "/v1", api_key=key, max_retries=0)
    deadline = time.monotonic() + 15
    while True:
        try:
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
            )
            return answer.choices[0].message.content or ""
        except openai.APIStatusError:
            # The approval reaches the data plane within a second or so.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).select_option(label=option)


def test_an_operator_and_a_developer_run_the_gateway_from_the_console(
    console: Console, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    screens = Screens(page)
    page.goto(console.url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    paint = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
    )
    screens.shot("01-sign-in")
    sign_in(screens, console.url, OPERATOR, OPERATOR_PASSWORD)
    expect(page.get_by_text("No calls in this range.")).to_be_visible()

    # Two teams; the developer joins the second.
    for team in ("ml", "payments"):
        screens.nav("Teams & members")
        page.get_by_role("button", name="New team").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Name", exact=True).fill(team)
        dialog.get_by_role("button", name="Create team").click()
        expect(page.get_by_role("heading", name=team, exact=True)).to_be_visible()
    page.get_by_role("button", name="Add member").click()
    dialog = page.get_by_role("dialog")
    choose(dialog, "User", DEVELOPER)  # type: ignore[arg-type]
    dialog.get_by_label("Role", exact=True).select_option("developer")
    dialog.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("table", name="Members").get_by_text(DEVELOPER)).to_be_visible()
    screens.shot("03-team")
    screens.nav("Teams & members")
    expect(page.get_by_role("link", name="payments")).to_be_visible()
    screens.shot("04-teams")

    # Team ml publishes a chat service that needs approval (and a private one, by the API).
    screens.nav("Services")
    page.get_by_role("button", name="New service").click()
    dialog = page.get_by_role("dialog")
    choose(dialog, "Team", "ml")  # type: ignore[arg-type]
    dialog.get_by_label("Name", exact=True).fill("chat")
    dialog.get_by_label("Kind", exact=True).select_option("ai")
    dialog.get_by_label("Visibility", exact=True).select_option("public")
    dialog.get_by_label("Approval", exact=True).select_option("manual")
    dialog.get_by_role("button", name="Create service").click()
    expect(page.get_by_role("button", name="Edit settings")).to_be_visible()
    page.get_by_role("button", name="New draft version").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("gpt-4o-mini").check()
    dialog.get_by_role("button", name="Create draft").click()
    expect(page.get_by_text("draft", exact=True)).to_be_visible()
    page.get_by_role("button", name="Publish", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_text("published", exact=True).first).to_be_visible()
    # Its calls are recorded with their bodies, an invoice number redacted.
    page.get_by_role("button", name="Edit recording").click()
    page.get_by_label("Record request and response bodies").check()
    page.get_by_label("Redact patterns", exact=True).fill("INV-\\d{6}")
    page.get_by_role("button", name="Save recording").click()
    expect(page.get_by_role("button", name="Edit recording")).to_be_visible()
    screens.shot("05-service")
    ml = next(t for t in console.ok(console.admin.get("/teams"))["items"] if t["name"] == "ml")
    internal = console.ok(
        console.admin.post(
            "/services",
            json={
                "team_id": ml["id"],
                "name": "internal",
                "kind": "ai",
                "route_prefix": "/internal",
                "visibility": "private",
            },
        ),
        201,
    )
    console.ok(
        console.admin.post(
            f"/services/{internal['id']}/versions", json={"models": ["gpt-4o-mini"]}
        ),
        201,
    )
    console.ok(console.admin.post(f"/services/{internal['id']}/versions/1/publish"))
    screens.nav("Services")
    expect(page.get_by_role("link", name="internal")).to_be_visible()
    screens.shot("06-services")

    # Team payments makes an app and a key; the key's secret is shown once.
    screens.nav("Apps & keys")
    page.get_by_role("button", name="New app").click()
    dialog = page.get_by_role("dialog")
    choose(dialog, "Team", "payments")  # type: ignore[arg-type]
    dialog.get_by_label("App name", exact=True).fill("bot")
    dialog.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", name="bot", exact=True)).to_be_visible()
    page.get_by_role("button", name="New key").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Key name", exact=True).fill("prod")
    dialog.get_by_role("button", name="Create key").click()
    secret = page.locator("code.secret").inner_text()
    assert secret.startswith("tw-") or len(secret) > 20, secret
    screens.shot("07-app-new-key")
    page.get_by_role("button", name="I have copied it").click()
    expect(page.locator("code.secret")).to_have_count(0)
    assert secret not in page.content()  # shown once: gone from the page

    # It subscribes from the catalog: pending until team ml approves.
    screens.nav("Catalog")
    expect(page.get_by_role("link", name="chat")).to_be_visible()
    screens.shot("08-catalog")
    page.get_by_role("link", name="chat").click()
    expect(page.get_by_role("heading", name="ml/chat")).to_be_visible()
    page.get_by_role("button", name="Subscribe").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Request subscription").click()
    expect(dialog.get_by_text("pending", exact=False).first).to_be_visible()
    page.keyboard.press("Escape")
    screens.shot("09-catalog-entry")
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(
            base_url=console.process.url + "/v1", api_key=secret, max_retries=0
        ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

    screens.nav("Subscriptions")
    queue = page.get_by_role("table", name="Waiting for approval")
    expect(queue.get_by_role("link", name="bot")).to_be_visible()
    screens.shot("10-approval-queue")
    queue.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Nothing waits for approval.")).to_be_visible()

    # The key calls the service with the openai SDK; the call shows on the dashboard.
    assert openai_call(console, secret) == PROMPT
    for _ in range(4):
        assert openai_call(console, secret) == PROMPT
    # Once the served calls' records are in, the dashboard counts every call made.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        served = console.ok(console.admin.get("/analytics/records", params={"status": 200}))
        if len(served["items"]) == 5:
            break
        time.sleep(0.2)
    made = console.ok(console.admin.get("/analytics/summary"))["stats"]["requests"]
    screens.nav("Overview")
    requests_card = page.get_by_role("region", name="Totals").locator(".card").first
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if requests_card.count() and requests_card.inner_text().endswith(f"{made:,}"):
            break
        time.sleep(0.3)
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_load_state("networkidle")
    expect(requests_card).to_have_text(re.compile(rf"Requests\s*{made}$"))
    totals = page.get_by_role("region", name="Totals")
    expect(totals.get_by_text("Requests")).to_be_visible()
    expect(
        page.get_by_role("figure").filter(has_text="Top apps by requests").get_by_text("bot")
    ).to_be_visible()
    screens.shot("02-overview")

    # ... and in the records explorer, with its detail.
    screens.nav("Call records")
    row = page.get_by_role("table").get_by_role("row").filter(has_text="gpt-4o-mini").first
    expect(row).to_be_visible()
    expect(row).to_contain_text("bot")
    screens.shot("11-records")
    row.click()
    expect(page.get_by_role("heading", name="Call record")).to_be_visible()
    expect(page.get_by_text("hello console").first).to_be_visible()
    assert "INV-123456" not in page.content()
    assert secret not in page.content()
    screens.shot("12-record-detail")

    # A prompt API with a draft (made by the API) in its editor.
    sentiment = console.ok(
        console.admin.post(
            "/services",
            json={
                "team_id": ml["id"],
                "name": "sentiment",
                "kind": "prompt",
                "route_prefix": "/apis/sentiment",
            },
        ),
        201,
    )
    console.ok(
        console.admin.post(
            f"/services/{sentiment['id']}/versions",
            json={"prompt": prompt("gpt-4o-mini"), "notes": "first cut"},
        ),
        201,
    )
    page.goto(f"{console.url}prompt-apis/{sentiment['id']}")
    expect(page.get_by_role("button", name="Save draft")).to_be_visible()
    screens.shot("20-prompt-api-editor")
    screens.nav("Apps & keys")
    expect(page.get_by_role("link", name="bot")).to_be_visible()
    screens.shot("21-apps")
    page.set_viewport_size({"width": 1920, "height": 1080})
    screens.nav("Call records")
    expect(page.get_by_role("table").get_by_role("row").nth(1)).to_be_visible()
    screens.shot("22-records-wide")
    page.set_viewport_size({"width": 1440, "height": 900})
    for label, name in (
        ("Audit log", "13-audit"),
        ("Prompt APIs", "14-prompt-apis"),
        ("Providers & models", "15-providers"),
        ("Limits & budgets", "16-limits"),
        ("Settings", "17-settings"),
        ("Subscriptions", "18-subscriptions"),
    ):
        screens.nav(label)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        screens.shot(name)
    assert screens.problems == []
    context.close()

    # The developer of team payments signs in: team ml's private service is not there.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    developer = Screens(context.new_page())
    sign_in(developer, console.url, DEVELOPER, DEVELOPER_PASSWORD)
    developer.nav("Catalog")
    expect(developer.page.get_by_role("link", name="chat")).to_be_visible()
    expect(developer.page.get_by_role("link", name="internal")).to_have_count(0)
    developer.shot("19-developer-catalog")
    developer.page.goto(f"{console.url}catalog/{internal['id']}")
    expect(developer.page.get_by_text("This service is not in the catalog.")).to_be_visible()
    developer.nav("Services")
    expect(developer.page.get_by_role("link", name="chat")).to_be_visible()
    expect(developer.page.get_by_role("link", name="internal")).to_have_count(0)
    assert developer.problems == []
    context.close()
    (SHOTS / "timings.json").write_text(json.dumps({"first_contentful_paint_ms": paint}) + "\n")
