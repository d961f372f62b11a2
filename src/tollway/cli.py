"""The `tollway` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from tollway import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollway", description="Tollway AI gateway")
    parser.add_argument("--version", action="version", version=f"tollway {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", metavar="PATH", help="YAML configuration file")
    serve.add_argument(
        "--upstream",
        metavar="URL",
        help="zero-config mode: send every model to this OpenAI-compatible base "
        "URL (e.g. http://127.0.0.1:9000/v1)",
    )
    serve.add_argument(
        "--upstream-key-env",
        metavar="VAR",
        help="with --upstream: environment variable holding the upstream's key",
    )
    serve.add_argument(
        "--key", metavar="CLIENT_KEY", help="with --upstream: require this client key"
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument(
        "--workers", type=int, help="worker processes sharing the port (default: the CPU count)"
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight requests may take (default 30)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log each request as one JSON line on standard error",
    )
    serve.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the control plane's SQLite store in DIR (created on first start; default "
        "$TOLLWAY_DATA_DIR or ~/.local/share/tollway when no --config is given)",
    )
    serve.add_argument(
        "--store",
        metavar="URL",
        help="the control plane's store at a database URL (postgresql://...)",
    )
    serve.add_argument(
        "--admin-host", metavar="HOST", help="admin API address with a store (default 127.0.0.1)"
    )
    serve.add_argument(
        "--admin-port", type=int, metavar="PORT", help="admin API port with a store (default 8081)"
    )

    serve.add_argument(
        "--redis",
        metavar="URL",
        help="count rate limits and budgets in Redis, shared by every node "
        "(redis://host:6379/0; default $TOLLWAY_REDIS_URL, else each node's own memory)",
    )

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("path")

    hash_key = commands.add_parser(
        "hash-key", help="print the SHA-256 of a client key for key_sha256"
    )
    hash_key.add_argument("key", nargs="?", help="the key (read from stdin when omitted)")

    mock = commands.add_parser(
        "mock-provider", help="run a fake OpenAI-format provider for tests and load tests"
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument("--api-key", help="require this key from callers")
    mock.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    mock.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    mock.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before each response head"
    )
    mock.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between chunks")
    mock.add_argument("--words", type=int, default=50, help="reply length in words")
    mock.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="probability of answering with an error status",
    )
    mock.add_argument(
        "--error-status", default="500", help="error statuses to draw from, e.g. 429|500|503"
    )
    mock.add_argument(
        "--reset-rate",
        type=float,
        default=0.0,
        help="probability of resetting the connection instead of answering",
    )
    mock.add_argument("--cut-after", type=int, help="cut streams after this many chunks")
    mock.add_argument(
        "--fault",
        default="",
        help="any other settings as key=value,... (see docs/mock-provider.md)",
    )

    from tollway.commands import admin as admin_commands
    from tollway.commands import store as store_commands

    store_commands.add_parsers(commands)
    admin_commands.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    # Migrations say what they did through tollway.store; alembic's own setup chatter is noise.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    if args.command == "serve":
        from tollway.app import serve
        from tollway.settings import ServeSettings

        return serve(
            ServeSettings(
                config_path=args.config,
                upstream=args.upstream,
                upstream_key_env=args.upstream_key_env,
                client_key=args.key,
                host=args.host,
                port=args.port,
                workers=args.workers,
                drain_timeout_s=args.drain_timeout,
                data_dir=args.data_dir,
                store=args.store,
                admin_host=args.admin_host,
                admin_port=args.admin_port,
                access_log=args.access_log,
                redis_url=args.redis,
            )
        )
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "hash-key":
        from tollway.config.compile import hash_key

        key = args.key if args.key is not None else sys.stdin.readline().rstrip("\n")
        if not key:
            print("tollway hash-key: no key given", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    if args.command == "mock-provider":
        return _mock_provider(args)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    return 2


def _check_config(path: str) -> int:
    import os

    from tollway.config.compile import compile_config
    from tollway.config.load import ConfigError, config_warnings, load_config_file

    try:
        config = load_config_file(path, log_warnings=False)
        runtime = compile_config(config, os.environ, source=path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    for warning in config_warnings(config):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    models = sorted(runtime.models) + (["*"] if runtime.wildcard else [])
    print(
        f"{path}: ok ({len(models)} models: {', '.join(models) or 'none'}; "
        f"{len(runtime.keys)} client keys)"
    )
    return 0


def _mock_provider(args: argparse.Namespace) -> int:
    import uvloop

    from tollway.testing.mock_faults import FaultSpec, FaultSpecError
    from tollway.testing.mock_provider import serve_mock

    settings = (
        f"latency_ms={args.latency_ms},chunks={args.chunks},"
        f"chunk_delay_ms={args.chunk_delay_ms},words={args.words},"
        f"error_rate={args.error_rate},error_status={args.error_status},"
        f"reset_rate={args.reset_rate}"
    )
    if args.cut_after is not None:
        settings += f",cut_after={args.cut_after}"
    try:
        spec = FaultSpec().merged(settings).merged(args.fault)
    except FaultSpecError as exc:
        print(f"tollway mock-provider: {exc}", file=sys.stderr)
        return 2
    if (args.tls_cert is None) != (args.tls_key is None):
        print("tollway mock-provider: give both --tls-cert and --tls-key", file=sys.stderr)
        return 2
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    uvloop.run(serve_mock(args.host, args.port, spec, args.api_key, tls=tls))
    return 0
