"""``--workers N``: ``/metrics`` answers for the whole sidecar, not for the worker it reached.

SO_REUSEPORT hands each scrape to one worker, so on its own a scrape would see that worker's
counters only, and a counter would seem to jump back and forth between scrapes. The supervisor
makes a private directory (mode 0700) and names it in ``LLM_EDGE_PEERS_DIR``; every worker
listens there on ``<pid>.sock`` and answers each connection with its own samples. The worker
that got the scrape reads its siblings' samples and adds them to its own (:func:`merge`).
This happens at scrape time only: the request path does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from proxy.server.metrics import PREFIX, Metrics
from proxy.server.workers import PEERS_ENV

log = logging.getLogger("llm_edge_agent")
PEER_TIMEOUT_S = 1.0  # a sibling that cannot answer in this time is left out of the scrape
COST = f"{PREFIX}_cost_usd"
WORKERS = f"{PREFIX}_workers"
# Gauges whose whole-sidecar value is the worst worker's, not the sum.
MAX_OF = frozenset({f"{PREFIX}_draining", f"{PREFIX}_circuit_state"})
# Budget gauges when the limits live in Redis: every worker reads the same fleet-wide
# counters, so the sidecar's value is the freshest reading (spend only grows within a
# window), never the sum. With the memory backend each worker has budgets of its own: summed.
SHARED_SPEND, SHARED_REMAINING = f"{PREFIX}_budget_spend_usd", f"{PREFIX}_budget_remaining_usd"

# One worker's numbers: {"families": [[name, help, type, unit, [[sample, labels, value]]]],
# "cost": [[model, provider, exact decimal as text]]}.
Payload = dict[str, Any]


def payload(metrics: Metrics) -> Payload:
    """This worker's samples, and its exact cost sums (the float family would lose digits)."""
    families = [
        [f.name, f.documentation, f.type, f.unit, [[s.name, s.labels, s.value] for s in f.samples]]
        for f in metrics.registry.collect()
    ]
    cost = [[model, provider, str(amount)] for (model, provider), amount in metrics.cost.items()]
    return {"families": families, "cost": cost}


def merge(payloads: list[Payload], shared_limits: bool = False) -> list[Metric]:
    """The families of all ``payloads`` as one worker's would be: counters, histograms and
    gauges summed, ``_created`` the earliest, ``MAX_OF`` gauges the largest, cost summed
    exactly; plus a gauge saying how many workers were summed. ``shared_limits`` (the limits
    are in Redis): budget spend is the largest reading and the remaining the smallest."""
    heads: dict[str, tuple[str, str, str]] = {}
    slots: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]]] = {}
    cost: dict[tuple[str, str], Decimal] = {}
    for one in payloads:
        for name, doc, typ, unit, samples in one["families"]:
            heads.setdefault(name, (doc, typ, unit))
            family = slots.setdefault(name, {})
            for sample, labels, value in samples:
                key = (sample, tuple(sorted(labels.items())))
                slot = family.get(key)
                if slot is None:
                    family[key] = [sample, labels, value]
                else:
                    slot[2] = _combine(name, sample, slot[2], value, shared_limits)
        for model, provider, amount in one["cost"]:
            cost[(model, provider)] = cost.get((model, provider), Decimal(0)) + Decimal(amount)
    merged = []
    for name, (doc, typ, unit) in heads.items():
        family = Metric(name, doc, typ, unit)
        family.samples = [Sample(s, labels, value) for s, labels, value in slots[name].values()]
        if name == COST:
            family.samples = [
                Sample(f"{COST}_total", {"model": model, "provider": provider}, float(amount))
                for (model, provider), amount in sorted(cost.items())
            ]
        merged.append(family)
    workers = Metric(WORKERS, "Worker processes whose numbers this scrape sums.", "gauge")
    workers.samples = [Sample(WORKERS, {}, len(payloads))]
    merged.append(workers)
    return merged


def _combine(family: str, sample: str, old: float, new: float, shared_limits: bool) -> float:
    if sample.endswith("_created"):
        return min(old, new)
    if family in MAX_OF or (shared_limits and family == SHARED_SPEND):
        return max(old, new)
    if shared_limits and family == SHARED_REMAINING:
        return min(old, new)
    return old + new


class Merged:
    """A registry stand-in for prometheus-client's encoders: fixed, already merged families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class Peers:
    """This worker's socket in the shared directory, and the reading of its siblings'."""

    def __init__(self, directory: Path, metrics: Metrics) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.sock"
        self._metrics = metrics
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    def from_env(cls, metrics: Metrics) -> Peers | None:
        """Peers when started by the ``--workers`` supervisor, else None (one process)."""
        directory = os.environ.get(PEERS_ENV)
        return cls(Path(directory), metrics) if directory else None

    async def start(self) -> bool:
        """Listen for siblings; False (logged) if the socket cannot be made: this worker then
        serves, and its scrapes show its own numbers only."""
        try:
            self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))
        except OSError as error:
            log.warning("metrics: no socket at %s (%s): scrapes see one worker", self.path, error)
            return False
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):  # the last worker out, should the supervisor be gone
            self.directory.rmdir()

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(orjson.dumps(payload(self._metrics)))
            await writer.drain()
        except OSError:  # the asking sibling gave up; nothing to do
            pass
        finally:
            writer.close()

    async def registry(self) -> Merged:
        """This worker's families merged with every sibling's that answers in time."""
        siblings = [p for p in self.directory.glob("*.sock") if p != self.path]
        answers = await asyncio.gather(*(_ask(path) for path in sorted(siblings)))
        payloads = [payload(self._metrics), *(a for a in answers if a is not None)]
        shared = self._metrics.state.snapshot.limits.backend == "redis"
        return Merged(merge(payloads, shared_limits=shared))


async def _ask(path: Path) -> Payload | None:
    """One sibling's payload, or None (logged) if it is gone, slow or garbled."""
    writer = None
    try:
        async with asyncio.timeout(PEER_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path))
            data = await reader.read()
        answer = orjson.loads(data)
        merge([answer])  # the shape check: what merges alone merges with the others
        return answer
    except (OSError, TimeoutError, ValueError, TypeError, KeyError, ArithmeticError) as error:
        log.warning("metrics: worker %s did not answer (%s); scrape without it", path.stem, error)
        return None
    finally:
        if writer is not None:
            writer.close()
