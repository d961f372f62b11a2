"""`tollway admin ...`: the common tasks, through the admin API.

The API's address is --url, else $TOLLWAY_ADMIN_URL, else http://127.0.0.1:8081; the token
is $TOLLWAY_TOKEN, else $TOLLWAY_ADMIN_TOKEN. Teams, apps and services are named by name
(apps and services as TEAM/NAME). `--json` prints the API's answers as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tollway.admin.client import AdminClient

# httpx and the client load only when `tollway admin` runs.
Handler = Callable[["AdminClient", argparse.Namespace], Any]


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def add_parsers(commands: Any) -> None:
    admin = commands.add_parser("admin", help="manage teams, apps, keys, services, approvals")
    admin.add_argument(
        "--url", help="the admin API (default: $TOLLWAY_ADMIN_URL or http://127.0.0.1:8081)"
    )
    admin.add_argument("--json", action="store_true", help="print the API's JSON answers")
    tasks = admin.add_subparsers(dest="task", required=True)

    def task(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = tasks.add_parser(name, help=help)
        parser.set_defaults(handler=_run, task_handler=handler)
        return parser

    task("whoami", _whoami, "who the token belongs to, and its teams")
    p = task("login", _login, "log in with a password (asked for, or --password-stdin)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = task("create-token", _create_token, "issue an admin-API token for a user (shown once)")
    p.add_argument("user")
    p.add_argument("--name", default="cli", help="a label for the token")
    p.add_argument("--expires-at", help="ISO 8601 time with a zone")
    task("teams", _teams, "list teams")
    p = task("create-team", _create_team, "create a team")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p = task("create-user", _create_user, "create a user (password read from stdin)")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="a platform admin")
    p.add_argument("--password-stdin", action="store_true", help="read a password from stdin")
    p = task("add-member", _add_member, "give a user a role in a team")
    p.add_argument("team")
    p.add_argument("user")
    p.add_argument("role", choices=["team_admin", "developer", "viewer"])
    p = task("apps", _apps, "list apps")
    p.add_argument("--team")
    p = task("create-app", _create_app, "create an app in a team")
    p.add_argument("team")
    p.add_argument("name")
    p = task("create-key", _create_key, "create an API key for an app (printed once)")
    p.add_argument("app", metavar="TEAM/APP")
    p.add_argument("name")
    p.add_argument("--models", type=_csv, help="allowed models or globs, comma-separated")
    p.add_argument("--cidrs", type=_csv, help="allowed client networks, comma-separated")
    p.add_argument("--expires-at", help="ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z")
    p = task("keys", _keys, "list an app's keys")
    p.add_argument("app", metavar="TEAM/APP")
    p = task("revoke-key", _revoke_key, "revoke a key")
    p.add_argument("app", metavar="TEAM/APP")
    p.add_argument("key_id", type=int)
    p = task("rotate-key", _rotate_key, "replace a key; the old one works for --overlap seconds")
    p.add_argument("app", metavar="TEAM/APP")
    p.add_argument("key_id", type=int)
    p.add_argument("--overlap", type=int, default=3600)
    p = task("create-service", _create_service, "create a service in a team")
    p.add_argument("team")
    p.add_argument("name")
    p.add_argument("--kind", choices=["ai", "rest", "prompt", "mcp"], default="ai")
    p.add_argument("--prefix", required=True, help="its route prefix, e.g. /billing")
    p.add_argument("--public", action="store_true", help="listed in every team's catalog")
    p.add_argument("--auto-approve", action="store_true", help="approve subscriptions at once")
    p = task("create-version", _create_version, "add a draft version to a service")
    p.add_argument("service", metavar="TEAM/SERVICE")
    content = p.add_mutually_exclusive_group(required=True)
    content.add_argument("--models", type=_csv, help="kind ai: model names, comma-separated")
    content.add_argument("--upstream", type=_csv, help="kind rest: target URLs, comma-separated")
    p.add_argument("--notes", default="")
    p = task("publish", _publish, "publish a version: it serves from now on")
    p.add_argument("service", metavar="TEAM/SERVICE")
    p.add_argument("version", type=int)
    p = task("canary", _canary, "serve a version beside the published one, with a share")
    p.add_argument("service", metavar="TEAM/SERVICE")
    p.add_argument("version", type=int)
    p.add_argument("--weight", type=int, required=True, help="percent of the calls, 0 to 100")
    p = task("rollback", _rollback, "serve an earlier published version again")
    p.add_argument("service", metavar="TEAM/SERVICE")
    p.add_argument("version", type=int, nargs="?")
    task("catalog", _catalog, "the services you may subscribe to")
    p = task("subscribe", _subscribe, "subscribe an app to a service")
    p.add_argument("app", metavar="TEAM/APP")
    p.add_argument("service", metavar="TEAM/SERVICE")
    p.add_argument("--note", default="")
    task("pending", _pending, "subscriptions waiting for your approval")
    for name, verb in (("approve", "approve"), ("reject", "reject"), ("revoke", "revoke")):
        p = task(name, _decision(verb), f"{verb} a subscription")
        p.add_argument("subscription_id", type=int)
        if verb != "approve":
            p.add_argument("--reason", default="")


def _run(args: argparse.Namespace) -> int:
    from tollway.admin.client import AdminClient, AdminClientError
    from tollway.settings import admin_client_settings

    settings = admin_client_settings(args.url)
    if settings.token is None and args.task != "login":
        print(
            "tollway admin: set TOLLWAY_TOKEN (or TOLLWAY_ADMIN_TOKEN) to an admin token",
            file=sys.stderr,
        )
        return 2
    with AdminClient(settings.url, settings.token) as client:
        try:
            result = args.task_handler(client, args)
        except AdminClientError as exc:
            print(f"tollway admin {args.task}: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for line in _lines(args.task, result):
            print(line)
    return 0


def _lines(task: str, result: Any) -> list[str]:
    if isinstance(result, list):
        return [_line(item) for item in result] or ["(none)"]
    if isinstance(result, dict):
        line = _line(result)
        secret = result.get("key") or result.get("token")
        if secret:
            return [line, f"{secret}", "(shown once: store it now)"]
        return [line]
    return [] if result is None else [str(result)]


def _line(item: dict[str, Any]) -> str:
    parts = []
    for name in (
        "id",
        "number",
        "name",
        "team",
        "app",
        "service",
        "kind",
        "route_prefix",
        "visibility",
        "approval",
        "status",
        "weight",
        "role",
        "prefix",
        "models",
        "version",
        "revoked_at",
        "expires_at",
    ):
        if item.get(name) is not None:
            value = item[name]
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            parts.append(f"{name}={value}")
    return " ".join(parts)


def _whoami(client: AdminClient, _args: argparse.Namespace) -> Any:
    me = client.get("/me")
    return [me["user"], *me["teams"]]


def _login(client: AdminClient, args: argparse.Namespace) -> Any:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
    answer = client.call("POST", "/auth/login", json={"name": args.name, "password": password})
    return {
        "name": answer["user"]["name"],
        "expires_at": answer["expires_at"],
        "token": answer["token"],
    }


def _create_token(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name}
    if args.expires_at:
        body["expires_at"] = args.expires_at
    return client.post(f"/users/{client.user_id(args.user)}/tokens", body)


def _teams(client: AdminClient, _args: argparse.Namespace) -> Any:
    return client.items("/teams")


def _create_team(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post("/teams", {"name": args.name, "description": args.description})


def _create_user(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "platform_role": "admin" if args.admin else "member"}
    if args.password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    return client.post("/users", body)


def _add_member(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post(
        f"/teams/{client.team_id(args.team)}/members", {"user": args.user, "role": args.role}
    )


def _apps(client: AdminClient, args: argparse.Namespace) -> Any:
    team_id = client.team_id(args.team) if args.team else None
    return client.items("/apps", team_id=team_id)


def _create_app(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post("/apps", {"team_id": client.team_id(args.team), "name": args.name})


def _create_key(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name}
    for name in ("models", "cidrs", "expires_at"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    return client.post(f"/apps/{client.app_id(args.app)}/keys", body)


def _keys(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.items(f"/apps/{client.app_id(args.app)}/keys")


def _revoke_key(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post(f"/apps/{client.app_id(args.app)}/keys/{args.key_id}/revoke")


def _rotate_key(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post(
        f"/apps/{client.app_id(args.app)}/keys/{args.key_id}/rotate", {"overlap_s": args.overlap}
    )


def _create_service(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post(
        "/services",
        {
            "team_id": client.team_id(args.team),
            "name": args.name,
            "kind": args.kind,
            "route_prefix": args.prefix,
            "visibility": "public" if args.public else "private",
            "approval": "auto" if args.auto_approve else "manual",
        },
    )


def _create_version(client: AdminClient, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"notes": args.notes}
    if args.models is not None:
        body["models"] = args.models
    else:
        body["upstream"] = {"targets": [{"url": url} for url in args.upstream]}
    return client.post(f"/services/{client.service_id(args.service)}/versions", body)


def _publish(client: AdminClient, args: argparse.Namespace) -> Any:
    service_id = client.service_id(args.service)
    return client.post(f"/services/{service_id}/versions/{args.version}/publish")


def _canary(client: AdminClient, args: argparse.Namespace) -> Any:
    service_id = client.service_id(args.service)
    return client.post(
        f"/services/{service_id}/versions/{args.version}/canary", {"weight": args.weight}
    )


def _rollback(client: AdminClient, args: argparse.Namespace) -> Any:
    body = {"version": args.version} if args.version is not None else {}
    return client.post(f"/services/{client.service_id(args.service)}/rollback", body)


def _catalog(client: AdminClient, _args: argparse.Namespace) -> Any:
    return client.items("/catalog")


def _subscribe(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.post(
        "/subscriptions",
        {
            "app_id": client.app_id(args.app),
            "service_id": client.service_id(args.service),
            "note": args.note,
        },
    )


def _pending(client: AdminClient, _args: argparse.Namespace) -> Any:
    return client.items("/subscriptions", side="owner", status="pending")


def _decision(verb: str) -> Handler:
    def decide(client: AdminClient, args: argparse.Namespace) -> Any:
        body = {"reason": args.reason} if verb != "approve" else None
        return client.post(f"/subscriptions/{args.subscription_id}/{verb}", body)

    return decide
