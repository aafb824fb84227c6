"""The log pipeline: lines formatted where they are logged go to a writer thread in batches,
and nothing pending is lost at exit."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from proxy import logs
from proxy.config.snapshot import LoggingSettings
from tests.conftest import wait_until


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """configure_logging() writing to a StringIO; the root logger restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    logs.configure_logging(LoggingSettings())
    yield out
    logs._stop_writer()
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_records_on_the_loop_travel_in_batches_and_every_line_is_json(stderr, monkeypatch):
    batches: list[int] = []
    handle = logs._BatchWriter.handle

    def counting(self: logs._BatchWriter, batch: list[str]) -> None:
        batches.append(len(batch))
        handle(self, batch)

    monkeypatch.setattr(logs._BatchWriter, "handle", counting)
    total = logs.FLUSH_LINES + 5

    async def burst() -> None:
        # A full batch within one loop turn goes at once: no timer can fire in between, so
        # this holds however loaded the machine is.
        for n in range(logs.FLUSH_LINES):
            logs.access_log.info("request", extra={logs.ACCESS_FIELDS: {"n": n}})
        for n in range(logs.FLUSH_LINES, total):
            logs.access_log.info("request", extra={logs.ACCESS_FIELDS: {"n": n}})
            await asyncio.sleep(0)  # one record per loop turn, as requests end
        await until_written(stderr, total)  # the last 5 go when FLUSH_S has passed

    asyncio.run(burst())
    assert batches[0] == logs.FLUSH_LINES
    assert sum(batches[1:]) == 5  # one timer flush, unless the machine stalled the loop 50 ms
    got = lines(stderr)
    assert [line["n"] for line in got] == list(range(total))
    assert got[0]["logger"] == logs.ACCESS_LOGGER and got[0]["message"] == "request"


async def until_written(out: io.StringIO, count: int) -> None:
    async with asyncio.timeout(5):
        while len(out.getvalue().splitlines()) < count:
            await asyncio.sleep(0.005)


def test_other_threads_and_code_outside_a_loop_log_at_once(stderr):
    logging.getLogger("llm_edge_agent.test").warning("outside", extra={"where": "main"})
    worker = threading.Thread(target=logging.getLogger("llm_edge_agent.test").warning, args=("t",))
    worker.start()
    worker.join()
    wait_until(lambda: len(stderr.getvalue().splitlines()) == 2)
    assert {line["message"] for line in lines(stderr)} == {"outside", "t"}
    assert next(line for line in lines(stderr) if line["message"] == "outside")["where"] == "main"


def test_records_pending_when_the_loop_stops_are_written_at_exit(stderr):
    async def last_words() -> None:
        logging.getLogger("llm_edge_agent.test").warning("bye")  # no loop turn follows

    loop = asyncio.new_event_loop()
    loop.run_until_complete(last_words())
    loop.close()  # the scheduled hand-over never runs
    logs._stop_writer()  # what atexit does
    assert [line["message"] for line in lines(stderr)] == ["bye"]
