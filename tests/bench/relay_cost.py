"""The stream relay per event, for each pass-through and translated pairing (same process).

    .venv/bin/python tests/bench/relay_cost.py [--rounds 9]

Feeds whole recorded streams (the benchmark's canned 50-chunk bodies, cut into 1 KB reads as
sockets deliver them) through :class:`proxy.engine.relay.StreamRelay`: parse, translate where
the pair needs it, stamp usage and cost, encode. Prints microseconds per upstream event, the
best round's mean. Stdlib + the repo only; run it against two trees to compare a change.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from benchlib import bodies  # noqa: E402

from proxy.engine.dialects import stream_translator  # noqa: E402
from proxy.engine.relay import StreamRelay  # noqa: E402
from proxy.pricing import Price  # noqa: E402
from proxy.providers.registry import vendor_for  # noqa: E402

PRICE = Price(Decimal("0.0025"), Decimal("0.01"))
READ = 1024


def cases() -> list[tuple[str, str, str, bytes]]:
    """(name, client dialect, vendor type, upstream stream bytes)."""
    openai, anthropic = bodies.openai_stream(), bodies.anthropic_stream()
    return [
        ("openai -> openai (pass-through)", "openai", "openai", openai),
        ("anthropic -> anthropic (pass-through)", "anthropic", "anthropic", anthropic),
        ("openai client, anthropic upstream", "openai", "anthropic", anthropic),
        ("anthropic client, openai upstream", "anthropic", "openai", openai),
    ]


def relay_once(dialect: str, vendor_type: str, raw: bytes) -> int:
    vendor = vendor_for(vendor_type)
    relay = StreamRelay(
        dialect=dialect,
        wire=vendor.wire,
        translator=stream_translator(dialect, vendor, 1, "m"),
        include_usage=True,
        price=PRICE,
    )
    size = sum(len(relay.feed(raw[i : i + READ])) for i in range(0, len(raw), READ))
    return size + len(relay.end())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    for name, dialect, vendor_type, raw in cases():
        events = raw.count(b"\n\n")
        number = 200
        best = min(
            timeit.repeat(
                lambda d=dialect, v=vendor_type, r=raw: relay_once(d, v, r),
                number=number,
                repeat=args.rounds,
            )
        )
        print(f"{name:<40} {best / number / events * 1e6:7.2f} us/event  ({events} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
