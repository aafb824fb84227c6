"""Does an Azure OpenAI or OpenAI-compatible upstream cost the gateway more than OpenAI's?

    .venv/bin/python tests/bench/vendor_overhead.py [--rounds 1500] [--stream-rounds 300]
        [--vendors openai,anthropic,cohere]

One gateway (1 worker) and one fake upstream (``fake_upstream.py``, the same canned OpenAI
bytes on OpenAI's, Azure's and the compatible server's paths), so the only difference
between the three is what the gateway does per vendor type: URL and auth, Azure's error
mapping, and the repairs an OpenAI-wire vendor other than OpenAI gets (a parse and a
serialise per stream chunk). Requests go round-robin over the three in one run, each on its
own keep-alive connection, in alternating blocks of 100, so load from other sessions hits
all three alike. Reports end-to-end latency (p50, p90), the gateway's ``x-llm-overhead-ms``
(for a stream: until its headers) and the gateway's CPU time per request (utime + stime
around each block: the figure least disturbed by a loaded machine), with ratios to OpenAI.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.bodies import _compact, _openai_request  # noqa: E402
from benchlib.procs import Proc, cpu_seconds, free_port, start, stop  # noqa: E402

PYTHON = str(HERE.parents[1] / ".venv" / "bin" / "python")
VENDORS = ("openai", "azure_openai", "openai_compatible")
# Translated vendors (canned Anthropic / Cohere answers on their paths), for --vendors.
KNOWN = (*VENDORS, "anthropic", "cohere")
BLOCK = 100
CONFIG = """
providers:
  openai: {{type: openai, base_url: "http://127.0.0.1:{port}{prefix}/v1", api_key: sk-bench}}
  azure_openai: {{type: azure_openai, base_url: "http://127.0.0.1:{port}{prefix}",
    api_version: "2024-10-21", api_key: azure-bench}}
  openai_compatible: {{type: openai_compatible, base_url: "http://127.0.0.1:{port}{prefix}/v1"}}
  anthropic: {{type: anthropic, base_url: "http://127.0.0.1:{port}{prefix}", api_key: ak-bench}}
  cohere: {{type: cohere, base_url: "http://127.0.0.1:{port}{prefix}", api_key: co-bench}}
models:
  m-openai: {{provider: openai, upstream_model: gpt-4o, price: {{input_per_1k: 0.0025, output_per_1k: 0.01}}}}
  m-azure_openai: {{provider: azure_openai, upstream_model: gpt-4o-prod, price: {{input_per_1k: 0.0025, output_per_1k: 0.01}}}}
  m-openai_compatible: {{provider: openai_compatible, upstream_model: llama3.1:8b, price: {{input_per_1k: 0.0025, output_per_1k: 0.01}}}}
  m-anthropic: {{provider: anthropic, upstream_model: claude-sonnet-4-5-20250929, price: {{input_per_1k: 0.0025, output_per_1k: 0.01}}}}
  m-cohere: {{provider: cohere, upstream_model: command-a-03-2025, price: {{input_per_1k: 0.0025, output_per_1k: 0.01}}}}
retry: {{max_retries: 0}}
"""  # noqa: E501


def _measure(
    gateway: Proc, body_for: dict[str, bytes], rounds: int, vendors: tuple[str, ...] = VENDORS
) -> dict[str, dict]:
    """``rounds`` requests per vendor in blocks of BLOCK, the vendors' blocks alternating; the
    gateway's CPU time is read around each block."""
    port = gateway.port
    conns = {v: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for v in vendors}
    out: dict[str, dict] = {v: {"total": [], "overhead": [], "cpu": 0.0, "n": 0} for v in vendors}
    order = list(vendors)
    for block in range(max(rounds // BLOCK, 1) + 1):  # the first cycle warms up
        order = order[1:] + order[:1]
        for vendor in order:
            figures, conn = out[vendor], conns[vendor]
            cpu = cpu_seconds(gateway.pids())
            for _ in range(BLOCK):
                started = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body_for[vendor],
                             {"content-type": "application/json"})  # fmt: skip
                reply = conn.getresponse()
                data = reply.read()
                elapsed = time.perf_counter() - started
                if reply.status != 200:
                    raise SystemExit(f"{vendor}: HTTP {reply.status}: {data[:300]!r}")
                if block:
                    figures["total"].append(elapsed * 1000)
                    figures["overhead"].append(float(reply.getheader("x-llm-overhead-ms")))
            if block:
                figures["cpu"] += cpu_seconds(gateway.pids()) - cpu
                figures["n"] += BLOCK
    for conn in conns.values():
        conn.close()
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _report(name: str, figures: dict[str, dict]) -> list[str]:
    def cpu_us(vendor: str) -> float:
        return figures[vendor]["cpu"] / figures[vendor]["n"] * 1e6

    base = figures["openai"]
    lines = [
        f"\n{name}",
        "| upstream type | e2e p50 ms | e2e p90 ms | overhead p50 ms | gateway CPU us/req "
        "| e2e p50 / openai | CPU / openai |",
        "|---|---|---|---|---|---|---|",
    ]
    for vendor in figures:
        total, overhead = figures[vendor]["total"], figures[vendor]["overhead"]
        lines.append(
            f"| {vendor} | {statistics.median(total):.3f} | {_p(total, 90):.3f} "
            f"| {statistics.median(overhead):.3f} | {cpu_us(vendor):.0f} "
            f"| {statistics.median(total) / statistics.median(base['total']):.3f} "
            f"| {cpu_us(vendor) / cpu_us('openai'):.3f} |"
        )
    return lines


def relay_cost_us(batches: int = 40, size: int = 100) -> tuple[float, float]:
    """CPU of relaying the canned 50-chunk stream to an OpenAI client, in-process and pure:
    (OpenAI's pass-through, an Azure/compatible stream's repairs), best batch of each,
    the two alternating (in both orders) so a burst of load spoils both or neither."""
    sys.path.insert(0, str(HERE.parents[1]))
    from decimal import Decimal

    from benchlib.bodies import openai_stream

    from proxy.engine.relay import StreamRelay
    from proxy.pricing import Price
    from proxy.providers.openai_wire import WireStream

    body, price = openai_stream(), Price(Decimal("0.0025"), Decimal("0.01"))
    best = {False: float("inf"), True: float("inf")}
    for batch in range(batches):
        for repaired in (False, True) if batch % 2 else (True, False):
            started = time.process_time()
            for _ in range(size):
                translator = WireStream(1) if repaired else None
                relay = StreamRelay(dialect="openai", wire="openai", translator=translator,
                                    include_usage=True, price=price)  # fmt: skip
                relay.feed(body)
            best[repaired] = min(best[repaired], (time.process_time() - started) / size * 1e6)
    return best[False], best[True]


def translated_relay_cost_us(wires: tuple[str, ...], batches: int = 30) -> dict[str, float]:
    """CPU of relaying each wire's canned 50-delta stream to an OpenAI client through the hub
    (OpenAI's is a pass-through, the others translated), in-process, best batch of 100."""
    sys.path.insert(0, str(HERE.parents[1]))
    from decimal import Decimal

    from benchlib import bodies

    from proxy.engine.dialects import stream_translator
    from proxy.engine.relay import StreamRelay
    from proxy.pricing import Price
    from proxy.providers.registry import vendor_for

    streams = {"openai": bodies.openai_stream(), "anthropic": bodies.anthropic_stream(),
               "cohere": bodies.cohere_stream()}  # fmt: skip
    price, best = Price(Decimal("0.0025"), Decimal("0.01")), dict.fromkeys(wires, float("inf"))
    for batch in range(batches):
        for wire in wires if batch % 2 else wires[::-1]:
            vendor, started = vendor_for(wire), time.process_time()
            for _ in range(100):
                translator = stream_translator("openai", vendor, 1, "m")
                relay = StreamRelay(dialect="openai", wire=vendor.wire, translator=translator,
                                    include_usage=True, price=price, model="m")  # fmt: skip
                relay.feed(streams[wire])
            best[wire] = min(best[wire], (time.process_time() - started) / 100 * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1500)
    parser.add_argument("--stream-rounds", type=int, default=300)
    parser.add_argument("--vendors", default=",".join(VENDORS), help=f"some of {KNOWN}")
    args = parser.parse_args(argv)
    vendors = tuple(v for v in args.vendors.split(",") if v in KNOWN)
    if "openai" not in vendors:
        vendors = ("openai", *vendors)  # the ratios' baseline
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        upstream_port, gateway_port = free_port(), free_port()
        upstream = start("upstream", [PYTHON, str(HERE / "fake_upstream.py"), "--port",
                         str(upstream_port)], port=upstream_port, log_dir=work)  # fmt: skip
        procs = [upstream]
        try:
            lines = []
            for label, prefix, rounds, extra in (
                ("non-streaming, openai SDK shape", "", args.rounds, {}),
                ("stream (50 chunks + usage), include_usage", "/stream", args.stream_rounds,
                 {"stream": True, "stream_options": {"include_usage": True}}),
            ):  # fmt: skip
                config = work / f"config{len(procs)}.yaml"
                config.write_text(CONFIG.format(port=upstream_port, prefix=prefix))
                gateway = start("gateway", [PYTHON, "-m", "proxy", "serve", "--config", str(config),
                                "--port", str(gateway_port), "--no-watch"], port=gateway_port,
                                log_dir=work, ready_path="/readyz")  # fmt: skip
                procs.append(gateway)
                bodies = {v: _compact(_openai_request(f"m-{v}", **extra)).encode() for v in vendors}
                lines += _report(label, _measure(gateway, bodies, rounds, vendors))
                stop(gateway)
            plain, repaired = relay_cost_us()
            lines += [
                "\nrelay CPU per 50-chunk stream to an OpenAI client (in-process, best batch)",
                f"openai {plain:.1f} us, azure_openai/openai_compatible {repaired:.1f} us "
                f"({repaired / plain:.3f})",
            ]
            translated = tuple(v for v in vendors if v in ("openai", "anthropic", "cohere"))
            if len(translated) > 1:
                costs = translated_relay_cost_us(translated)
                lines.append("relay CPU per 50-delta stream through the hub to an OpenAI client")
                base = costs["openai"]
                lines += [f"{w} {us:.1f} us ({us / base:.3f})" for w, us in costs.items()]
            print("\n".join(lines))
        finally:
            for proc in procs:
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
