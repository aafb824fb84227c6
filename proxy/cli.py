"""The ``llm-edge-agent`` command: serve, check, models, cost, health, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from proxy import __version__

DEFAULT_PORT = 8787


def _default_config() -> str:
    return os.environ.get("LLM_EDGE_CONFIG", "config.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"llm-edge-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway until SIGTERM/SIGINT")
    serve.add_argument(
        "--config", default=None, help="config file (default: $LLM_EDGE_CONFIG or ./config.yaml)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (SO_REUSEPORT)")
    serve.add_argument("--no-watch", action="store_true", help="do not watch the config file")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    check = commands.add_parser("check", help="validate a config file")
    check.add_argument("path", nargs="?", default=None)

    models = commands.add_parser("models", help="configured models: capabilities and prices")
    models.add_argument("--config", default=None)
    what = models.add_mutually_exclusive_group()
    what.add_argument(
        "--check-prices", action="store_true", help="list prices that differ from the catalog's"
    )
    what.add_argument("--cheapest", action="store_true", help="the cheapest model for a need")
    models.add_argument("--provider", help="with --cheapest: a provider name or type")
    models.add_argument(
        "--needs", type=_capability_list, default=(), help="with --cheapest: e.g. tools,vision"
    )
    models.add_argument("--input", type=int, default=1000, help="with --cheapest: input tokens")
    models.add_argument("--output", type=int, default=1000, help="with --cheapest: output tokens")

    cost = commands.add_parser("cost", help="price a request and explain the arithmetic")
    cost.add_argument("model")
    cost.add_argument("--input", type=int, required=True, help="input tokens")
    cost.add_argument("--output", type=int, required=True, help="output tokens")
    cost.add_argument("--cached", type=int, default=0, help="of the input, cache-read tokens")
    cost.add_argument("--config", default=None)

    health = commands.add_parser("health", help="check every provider now (exit 1 on a failure)")
    health.add_argument("--config", default=None)

    budgets = commands.add_parser("budgets", help="budgets and rate limits of a running sidecar")
    budgets.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="its address")
    budgets.add_argument("--token-env", default=None, help="variable holding an inbound token")

    demo = commands.add_parser("demo", help="run offline against a simulated vendor")
    demo.add_argument("--requests", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": _serve, "check": _check, "models": _models, "cost": _cost}
    handler = {**handlers, "health": _health, "demo": _demo, "budgets": _budgets}[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


def _load(path: str | None):
    from proxy.config.build import load_snapshot
    from proxy.config.loader import ConfigError

    try:
        return load_snapshot(Path(path or _default_config()))
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None


def _serve(args: argparse.Namespace) -> int:
    config = Path(args.config or _default_config())
    if args.workers > 1:
        # The supervisor never serves: it skips the server's imports (~15 MB of RSS).
        from proxy.server.workers import run_workers

        _load(str(config))  # fail fast, once, on an invalid config
        worker_args = ["--config", str(config), "--host", args.host, "--port", str(args.port)]
        if args.no_watch:
            worker_args.append("--no-watch")
        return run_workers(args.workers, worker_args)
    from proxy.logs import configure_logging
    from proxy.server.run import install_uvloop, serve

    snapshot = _load(str(config))
    configure_logging(snapshot.server.logging)
    for warning in snapshot.warnings:
        logging.getLogger("llm_edge_agent").warning("%s", warning)
    _warn_exposed(args.host, snapshot)
    install_uvloop()
    return asyncio.run(
        serve(
            snapshot,
            config,
            args.host,
            args.port,
            watch=not args.no_watch,
            reuse_port=args.reuse_port,
        )
    )


def _warn_exposed(host: str, snapshot: object) -> None:
    """Loud warning: a non-loopback bind without inbound auth lets anyone spend the keys."""
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    tokens = getattr(getattr(snapshot, "server", None), "auth", None)
    if not loopback and not getattr(tokens, "tokens", ()):
        print(
            "WARNING: llm-edge-agent is listening on a non-loopback address without inbound "
            "auth (server.auth.tokens_env): anyone who can reach it can spend your vendor "
            "keys.",
            file=sys.stderr,
        )


def _check(args: argparse.Namespace) -> int:
    from proxy.config.build import check

    problems, warnings = check(Path(args.path or _default_config()))
    if not problems:
        warnings += _stale_prices(Path(args.path or _default_config()))
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in problems:
        print(line)
    if not problems:
        print(f"{args.path or _default_config()}: ok")
    return 1 if problems else 0


def _stale_prices(path: Path) -> list[str]:
    """A warning per configured price that differs from the built-in catalog's."""
    from proxy.catalog import Catalog, report
    from proxy.config.build import load_snapshot

    differences = report.price_differences(load_snapshot(path), Catalog())
    return [f"{path}: models.{d}; see `llm-edge-agent models --check-prices`" for d in differences]


def _capability_list(text: str) -> tuple[str, ...]:
    from proxy.capabilities.model import FLAGS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FLAGS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown capability {', '.join(unknown)}; known: {', '.join(FLAGS)}"
        )
    return names


def _models(args: argparse.Namespace) -> int:
    from proxy.catalog import report

    snapshot = _load(args.config)
    if args.check_prices:
        return _check_prices(snapshot)
    if args.cheapest:
        return _cheapest(snapshot, args)
    print(report.table(report.model_rows(snapshot)))
    return 0


def _check_prices(snapshot) -> int:
    """Every configured price that differs from the catalog's; exit 1 when there is one."""
    from proxy.catalog import Catalog, report

    catalog = Catalog()
    differences = report.price_differences(snapshot, catalog)
    for difference in differences:
        print(difference)
    print(f"{len(differences)} configured price(s) differ from the catalog ({catalog.source})")
    return 1 if differences else 0


def _cheapest(snapshot, args: argparse.Namespace) -> int:
    """The specification's cheapest_for_provider, over the configured models."""
    from proxy.catalog import report
    from proxy.pricing import format_usd

    if min(args.input, args.output) < 0:
        print("token counts must be >= 0", file=sys.stderr)
        return 2
    models = [
        m
        for m in snapshot.models.values()
        if args.provider in (None, m.provider, snapshot.providers[m.provider].type)
    ]
    ranked = report.cheapest(
        models, needs=args.needs, input_tokens=args.input, output_tokens=args.output
    )
    if not ranked:
        print("no configured model matches", file=sys.stderr)
        return 1
    for model, amount in ranked[:5]:
        print(
            f"{model.name} ({model.provider}): ${format_usd(amount)} for "
            f"{args.input} input + {args.output} output tokens"
        )
    return 0


def _cost(args: argparse.Namespace) -> int:
    from proxy.pricing import Usage, cost, format_usd

    snapshot = _load(args.config)
    model = snapshot.resolve(args.model)
    if model is None:
        print(f"unknown model: {args.model}", file=sys.stderr)
        return 1
    if min(args.input, args.output, args.cached) < 0 or args.cached > args.input:
        print("token counts must be >= 0 and --cached <= --input", file=sys.stderr)
        return 2
    usage = Usage(
        prompt_tokens=args.input, completion_tokens=args.output, cached_tokens=args.cached
    )
    amount: Decimal = cost(model.price, usage)
    print(format_usd(amount))
    from proxy.catalog import Catalog, report

    source = Catalog().source if model.price_source == "catalog" else None
    print("\n".join(report.explain_cost(model, usage, source)))
    return 0


def _health(args: argparse.Namespace) -> int:
    """Each provider as ``openai: OK (123ms)`` or ``anthropic: FAIL - <error>``."""
    from proxy.engine.health import check_all
    from proxy.engine.state import GatewayState

    snapshot = _load(args.config)

    async def run() -> dict:
        return await check_all(GatewayState(snapshot))

    results = asyncio.run(run())
    for name, health in results.items():
        if health.healthy:
            print(f"{name}: OK ({round(health.response_time_ms)}ms)")
        else:
            print(f"{name}: FAIL - {health.error}")
    return 0 if all(h.healthy for h in results.values()) else 1


def _demo(args: argparse.Namespace) -> int:
    from proxy.demo import run_demo

    return run_demo()


def _budgets(args: argparse.Namespace) -> int:
    from proxy.engine.limits.cli import print_budgets

    token = os.environ.get(args.token_env, "") if args.token_env else ""
    return print_budgets(args.url, token)
