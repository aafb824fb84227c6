"""A circuit breaker per provider.

Closed: requests flow; provider-side failures (transport, timeouts, 5xx, 529, 429) are counted.
A verdict is a request's, not an attempt's (:mod:`proxy.engine.attempts` records one per
request and provider, after its retries), so a provider that answers within its retries
never trips it. It opens after ``failure_threshold`` consecutive failures, or when the
failure rate over the last ``window_s`` reaches ``failure_rate`` with at least
``min_requests`` outcomes. Open: calls
fail fast (or fall back) for ``cooldown_s``; outcomes of requests that started before it opened
change nothing. Half-open: up to ``half_open_probes`` requests go through; once that many have
succeeded it closes, and any failure re-opens it. Client and configuration errors (400, 401,
403, 404, 413, 422) are never recorded, so one bad request or key cannot trip it.

Active health checks feed it too (:meth:`Breaker.record_health`): a failed check counts like a
failed request, a passing one ends an open circuit's cooldown early (probes still decide).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from enum import StrEnum

from proxy.config.snapshot import BreakerSettings, ProviderConfig


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Not thread-safe by design: each worker process runs one event loop."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._state = State.CLOSED
        self._consecutive = 0
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probes = 0  # half-open slots handed out and not released
        self._probe_successes = 0
        self.transitions = 0
        self.transitions_to: dict[State, int] = dict.fromkeys(State, 0)

    @property
    def state(self) -> State:
        if (
            self._state is State.OPEN
            and self._clock() - self._opened_at >= self.settings.cooldown_s
        ):
            self._enter(State.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a request go to this provider now? Reserves a probe slot when half-open: the
        caller must then record a verdict or :meth:`release_probe`."""
        if not self.settings.enabled:
            return True
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and self._probes < self.settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until an open circuit lets probes through (0 when not open)."""
        if self.state is not State.OPEN:
            return 0.0
        return max(self.settings.cooldown_s - (self._clock() - self._opened_at), 0.0)

    def record_success(self) -> None:
        self._consecutive = 0
        self._remember(False)
        if self._state is State.HALF_OPEN:
            self._probe_successes += 1
            if self._probe_successes >= self.settings.half_open_probes:
                self._enter(State.CLOSED)

    def record_failure(self) -> None:
        if not self.settings.enabled:
            return
        self._consecutive += 1
        self._remember(True)
        state = self.state
        if state is State.HALF_OPEN or (state is State.CLOSED and self._tripped()):
            self._enter(State.OPEN)

    def release_probe(self, epoch: int | None = None) -> None:
        """A half-open probe ended without a provider verdict (client error, cancelled).

        ``epoch`` is :attr:`transitions` when the slot was taken: a slot from an earlier
        half-open period is not given back to the current one.
        """
        if epoch is not None and epoch != self.transitions:
            return
        if self._state is State.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def record_health(self, healthy: bool) -> None:
        """An active health check's verdict (only checks that judged the provider itself)."""
        if not healthy:
            self.record_failure()
        elif self.state is State.OPEN:
            self._enter(State.HALF_OPEN)

    def _remember(self, failed: bool) -> None:
        now = self._clock()
        self._outcomes.append((now, failed))
        horizon = now - self.settings.window_s
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()

    def _tripped(self) -> bool:
        if self._consecutive >= self.settings.failure_threshold:
            return True
        total = len(self._outcomes)
        if total < self.settings.min_requests:
            return False
        failures = sum(1 for _, failed in self._outcomes if failed)
        return failures / total >= self.settings.failure_rate

    def _enter(self, state: State) -> None:
        self._state, self._probes, self._probe_successes = state, 0, 0
        if state is State.OPEN:
            self._opened_at = self._clock()
        elif state is State.CLOSED:
            self._consecutive = 0
            self._outcomes.clear()
        self.transitions += 1
        self.transitions_to[state] += 1


class Breakers:
    """One breaker per provider name; settings changes on reload take effect in place."""

    def __init__(self) -> None:
        self._by_provider: dict[str, Breaker] = {}
        self._endpoints: dict[str, tuple[str, str]] = {}

    def get(self, provider: str, settings: BreakerSettings) -> Breaker:
        breaker = self._by_provider.get(provider)
        if breaker is None:
            breaker = self._by_provider[provider] = Breaker(settings)
        elif breaker.settings != settings:
            breaker.settings = settings
        return breaker

    def sync(self, providers: Mapping[str, ProviderConfig]) -> None:
        """After a reload: forget removed providers, start afresh for one whose endpoint changed
        (its failures said nothing about the new base_url)."""
        for name in list(self._by_provider):
            provider = providers.get(name)
            if provider is None or self._endpoints.get(name) != _endpoint(provider):
                del self._by_provider[name]
        self._endpoints = {name: _endpoint(p) for name, p in providers.items()}

    def states(self) -> dict[str, str]:
        """Provider name -> ``closed`` / ``open`` / ``half_open`` (for /status and metrics)."""
        return {name: str(b.state) for name, b in self._by_provider.items()}

    def transitions(self) -> dict[tuple[str, str], int]:
        """(provider, state entered) -> how many times, since start (a metrics counter)."""
        return {
            (name, str(state)): count
            for name, breaker in self._by_provider.items()
            for state, count in breaker.transitions_to.items()
        }


def _endpoint(provider: ProviderConfig) -> tuple[str, str]:
    return (provider.type, provider.base_url)
