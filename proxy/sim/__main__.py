"""``python -m proxy.sim``: serve the fake OpenAI + Anthropic upstream until SIGINT/SIGTERM.

Prints ``proxy.sim listening on http://HOST:PORT`` once bound (``--port 0`` picks a free
port), so a parent process can wait for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from proxy.sim.app import Sim, SimConfig, create_app
from proxy.sim.runner import new_event_loop

_DEFAULTS = SimConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m proxy.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument(
        "--chunks", type=int, default=_DEFAULTS.n_chunks, help="content pieces per stream"
    )
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="pause between stream events"
    )
    parser.add_argument(
        "--openai-key", default=None, help="expected OpenAI key (unchecked if absent)"
    )
    parser.add_argument(
        "--anthropic-key", default=None, help="expected Anthropic key (unchecked if absent)"
    )
    parser.add_argument(
        "--cohere-key", default=None, help="expected Cohere key (unchecked if absent)"
    )
    parser.add_argument("--model", action="append", default=[], help="extra model id to accept")
    parser.add_argument(
        "--max-records",
        type=int,
        default=_DEFAULTS.max_records,
        help="requests kept for /_sim/received",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip request schema validation")
    return parser.parse_args(argv)


async def serve(sim: Sim, host: str, port: int) -> None:
    runner = web.AppRunner(create_app(sim), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = runner.addresses[0]
    print(f"proxy.sim listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SimConfig(
        validate=False if args.no_validate else None,
        n_chunks=args.chunks,
        chunk_delay_ms=args.chunk_delay_ms,
        openai_key=args.openai_key,
        anthropic_key=args.anthropic_key,
        cohere_key=args.cohere_key,
        extra_models=frozenset(args.model),
        max_records=args.max_records,
    )
    sim = Sim(config)
    if not sim.config.validate and not args.no_validate:
        print("proxy.sim: vendor kit not found, request validation is off", file=sys.stderr)
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(sim, args.host, args.port))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
