"""Gemini translation beside Anthropic's, measured side by side in one process (issue 13).

    .venv/bin/python tests/bench/translation_cost.py [--rounds 9]

The same inputs as ``test_micro.py`` (the kit's requests; a ~1 KB text answer and the kit's
tool-use answer; a 50-event text stream), each pair timed alternately round after round so
a loaded machine slows both alike; prints the time per call (per event for streams) and the
ratio Gemini / Anthropic. The ``round trip`` rows time what one request pays in all: its
request's translation and then its answer's (a request offering tools, or carrying tool
results, answered with the kit's tool calls; a small text request answered with text). Each
figure is the best round's mean (the least disturbed by other processes on a shared machine).
Stdlib + the repo only.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from benchlib import bodies  # noqa: E402
from test_micro import (  # noqa: E402
    _events,
    _feed_all,
    _gemini_responses,
    _inline_images,
    _requests,
    _responses,
    gemini_stream_events,
)

from proxy.providers.anthropic.request import openai_to_anthropic  # noqa: E402
from proxy.providers.anthropic.response import anthropic_to_openai_response  # noqa: E402
from proxy.providers.anthropic.stream import AnthropicToOpenAIStream  # noqa: E402
from proxy.providers.gemini.request import unified_to_gemini  # noqa: E402
from proxy.providers.gemini.response import gemini_to_unified  # noqa: E402
from proxy.providers.gemini.stream import GeminiToUnifiedStream  # noqa: E402

Pair = tuple[str, Callable[[], Any], Callable[[], Any], int]


def pairs() -> list[Pair]:
    out: list[Pair] = []
    for case, body in sorted(_requests().items()):
        inline = _inline_images(body)
        out.append((
            f"request {case}",
            lambda b=inline: openai_to_anthropic(
                b, upstream_model="claude", default_max_tokens=4096, drop_unsupported=True
            ),
            lambda b=inline: unified_to_gemini(b, drop_unsupported=True),
            1,
        ))  # fmt: skip
    gemini = _gemini_responses()
    for case, response in sorted(_responses().items()):
        out.append((
            f"response {case}",
            lambda r=response: anthropic_to_openai_response(r, created=1),
            lambda r=gemini[case]: gemini_to_unified(r, 1),
            1,
        ))  # fmt: skip
    out.extend(_round_trips(out))
    anthropic_events = [(n, orjson.loads(d)) for n, d in _events(bodies.anthropic_stream())]
    gemini_events = [(None, e) for e in gemini_stream_events()]
    out.append((
        "stream (per event)",
        lambda: _feed_all(AnthropicToOpenAIStream, anthropic_events),
        lambda: _feed_all(GeminiToUnifiedStream, gemini_events),
        len(gemini_events),
    ))  # fmt: skip
    return out


ROUND_TRIPS = (
    ("request small", "response small"),
    ("request chat.request", "response tool_use"),
    ("request chat.request.tool_results", "response tool_use"),
)


def _round_trips(calls: list[Pair]) -> list[Pair]:
    """A request's translation followed by its answer's, for each pairing in ROUND_TRIPS."""
    by_name = {name: (a, g) for name, a, g, _per in calls}
    out: list[Pair] = []
    for request, answer in ROUND_TRIPS:
        if request not in by_name or answer not in by_name:
            continue  # the kit sample is missing
        (a_req, g_req), (a_ans, g_ans) = by_name[request], by_name[answer]
        out.append((
            f"round trip {request[8:]} + {answer[9:]}",
            lambda q=a_req, r=a_ans: (q(), r()),
            lambda q=g_req, r=g_ans: (q(), r()),
            1,
        ))  # fmt: skip
    return out


def measure(rounds: int) -> list[tuple[str, float, float]]:
    rows = []
    for name, anthropic, gemini, per in pairs():
        number = max(1, 2000 // per)
        a_times, g_times = [], []
        for round_ in range(rounds):
            order = [(anthropic, a_times), (gemini, g_times)]
            for fn, sink in order if round_ % 2 == 0 else reversed(order):
                sink.append(timeit.timeit(fn, number=number) / number / per * 1e6)
        rows.append((name, min(a_times), min(g_times)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    print(f"{'case':<48} {'anthropic us':>13} {'gemini us':>10} {'gemini/anthropic':>17}")
    for name, a, g in measure(args.rounds):
        print(f"{name:<48} {a:>13.2f} {g:>10.2f} {g / a:>17.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
