"""Live config: reload the YAML when it changes, or on SIGHUP, without failing a request.

The config's *directory* is watched, not the file: editors save by renaming a temp file over
the original, and Kubernetes updates a ConfigMap volume by pointing its ``..data`` symlink at a
new timestamped directory. Both replace the file rather than write to it, so a watch on the
file itself would go silent after the first update; a watch on its directory sees every way.

Secret files the config names (``azure_ad_token_file``: a token a refresher rewrites) are watched
the same way, and a change to one reloads the config, so the new token applies to the next
request, as with a config edit.

A reload reads, parses, interpolates and validates the whole file in a worker thread (the event
loop keeps serving); only a complete, valid snapshot is swapped in, on the loop, in one step.
Requests already running keep the snapshot they started with. A bad edit changes nothing: the
old snapshot keeps serving and the problems go to the log, ``/status`` and the reload counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, awatch

from proxy.config.build import load_snapshot
from proxy.config.loader import ConfigError
from proxy.config.snapshot import Snapshot
from proxy.engine.state import GatewayState

log = logging.getLogger("llm_edge_agent.config")

DEBOUNCE_MS = 300
"""The longest a burst of file events is gathered before one reload (keeps reloads < 1 s)."""
STEP_MS = 50
"""A burst ends after this long without a new event."""
POLL_MS = 250
"""Polling interval when the OS cannot notify (e.g. the inotify watch limit is reached)."""
KUBERNETES_DATA = "..data"
"""The symlink a ConfigMap volume swaps atomically to publish a new version of its files."""


def start_reloader(
    state: GatewayState, config_path: str | Path, *, watch: bool = True
) -> asyncio.Task[None]:
    """Reload ``config_path`` into ``state`` on file changes (unless ``watch`` is False) and on
    SIGHUP, until the returned task is cancelled. Call on the serving loop."""
    reloader = Reloader(state, config_path)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # we log each reload ourselves
    loop = asyncio.get_running_loop()
    return loop.create_task(reloader.run(watch=watch), name="config-reloader")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one look at the file found: unchanged, a valid snapshot, or the problems."""

    changed: bool
    digest: str | None = None
    snapshot: Snapshot | None = None
    problems: tuple[str, ...] = ()
    files_digest: str | None = None


def load_if_changed(
    path: Path,
    known_digest: str | None,
    files: tuple[Path, ...] = (),
    known_files: str | None = None,
) -> Outcome:
    """Blocking: the file's snapshot, unless its bytes hash to ``known_digest`` and the secret
    ``files`` it names hash to ``known_files`` (a no-op save, a ConfigMap update that did not
    touch this key, a second event for the same write)."""
    try:
        digest: str | None = _digest(path.read_bytes())
    except OSError:
        digest = None  # missing or unreadable: load_snapshot names the reason
    files_now = _files_digest({str(f): _read_stripped(f) for f in files})
    if digest is not None and digest == known_digest and files_now == (known_files or ""):
        return Outcome(changed=False, digest=digest, files_digest=files_now)
    try:
        snapshot = load_snapshot(path)
    except ConfigError as error:
        problems = tuple(map(str, error.problems))
        return Outcome(changed=True, digest=digest, problems=problems, files_digest=files_now)
    current = snapshot_files_digest(snapshot)
    return Outcome(changed=True, digest=snapshot.version, snapshot=snapshot, files_digest=current)


def secret_files(snapshot: Snapshot) -> tuple[Path, ...]:
    """The secret files ``snapshot`` was built from (watched beside the config)."""
    names = {p.azure_ad_token_file for p in snapshot.providers.values() if p.azure_ad_token_file}
    return tuple(Path(os.path.abspath(name)) for name in sorted(names))


def snapshot_files_digest(snapshot: Snapshot) -> str:
    """The digest of the secret files as ``snapshot`` read them (no I/O)."""
    return _files_digest(
        {
            str(Path(os.path.abspath(p.azure_ad_token_file))): p.azure_ad_token
            for p in snapshot.providers.values()
            if p.azure_ad_token_file
        }
    )


def _read_stripped(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _files_digest(contents: dict[str, str | None]) -> str:
    """'' without files; never logged (it is derived from a secret)."""
    if not contents:
        return ""
    text = "\0".join(f"{name}\0{contents[name]}" for name in sorted(contents))
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(raw: bytes) -> str:
    """The same hash the snapshot's ``version`` is, so the startup snapshot needs no re-read."""
    return hashlib.sha256(raw).hexdigest()[:12]


class Reloader:
    """Runs one reload at a time; triggers arriving during one coalesce into one more."""

    def __init__(self, state: GatewayState, config_path: str | Path) -> None:
        self.state = state
        # Absolute but not resolved: the path may be a symlink whose target changes.
        self.path = Path(os.path.abspath(config_path))
        self._digest: str | None = state.snapshot.version  # of the bytes last loaded or rejected
        self._files = secret_files(state.snapshot)
        self._files_digest: str | None = snapshot_files_digest(state.snapshot)
        self._trigger = "watch"
        self._force = False
        self._wanted = asyncio.Event()

    def request(self, trigger: str, *, force: bool = False) -> None:
        """Ask for a reload; ``force`` (SIGHUP) reloads even when the bytes did not change."""
        if force or not self._wanted.is_set():
            self._trigger = trigger
        self._force = self._force or force
        self._wanted.set()

    async def run(self, *, watch: bool) -> None:
        """Serve reload requests until cancelled; then stop the watcher and SIGHUP handling."""
        stop = asyncio.Event()
        watcher = asyncio.get_running_loop().create_task(self._watch(stop)) if watch else None
        hup = _handle_sighup(lambda: self.request("sighup", force=True))
        if watch:
            self.request("watch")  # an edit made between the startup load and the watch
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                trigger, force = self._trigger, self._force
                self._trigger, self._force = "watch", False
                await self.reload(trigger, force=force)
        finally:
            if hup:
                _ignore_sighup()
            stop.set()
            if watcher is not None:
                await _finish(watcher)

    async def reload(self, trigger: str = "reload", *, force: bool = False) -> bool:
        """Load the file off the loop, then swap it in if valid. True if a snapshot was swapped."""
        known = None if force else self._digest
        try:
            outcome = await asyncio.to_thread(
                load_if_changed, self.path, known, self._files, self._files_digest
            )
        except Exception as exc:  # a bug, not a bad file: report it like one, keep serving
            problem = f"{self.path}: internal error while loading ({type(exc).__name__})"
            outcome = Outcome(changed=True, problems=(problem,))
        if not outcome.changed:
            log.debug("config unchanged (%s), version %s", trigger, outcome.digest)
            return False
        self._digest, self._files_digest = outcome.digest, outcome.files_digest
        if outcome.snapshot is None:
            self._reject(outcome.problems, trigger)
            return False
        self._files = secret_files(outcome.snapshot)
        self._apply(outcome.snapshot, trigger)
        return True

    def _apply(self, snapshot: Snapshot, trigger: str) -> None:
        old = self.state.snapshot
        self.state.swap(snapshot, source=trigger)
        added = sorted(set(snapshot.models) - set(old.models))
        removed = sorted(set(old.models) - set(snapshot.models))
        log.info(
            "config reloaded (%s): version %s -> %s, %d models (+%d -%d)",
            trigger,
            old.version,
            snapshot.version,
            len(snapshot.models),
            len(added),
            len(removed),
            extra={"models_added": added, "models_removed": removed},
        )
        for warning in snapshot.warnings:
            log.warning("%s", warning)
        if snapshot.server.logging != old.server.logging:
            log.warning("config reload: server.logging changes take effect at the next restart")

    def _reject(self, problems: tuple[str, ...], trigger: str) -> None:
        """Each problem names file, line and YAML path, never a value (it may be a key)."""
        version = self.state.snapshot.version
        for problem in problems:
            log.error("config reload rejected (%s), serving %s: %s", trigger, version, problem)
        self.state.reload_failed("\n".join(problems), source=trigger)

    def _directories(self) -> tuple[Path, ...]:
        """The config's directory and each secret file's, the config's first."""
        return tuple(dict.fromkeys([self.path.parent, *(f.parent for f in self._files)]))

    async def _watch(self, stop: asyncio.Event) -> None:
        """Request a reload after each burst of relevant events in the watched directories;
        start over when a reload changes which directories those are."""
        polling = False
        while not stop.is_set():
            watched = self._directories()
            until = _Until(stop, lambda seen=watched: self._directories() != seen)
            try:
                async for _ in awatch(
                    *watched,
                    watch_filter=self._relevant,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=until,
                    recursive=False,
                    force_polling=polling or None,
                    poll_delay_ms=POLL_MS,
                ):
                    self.request("watch")
            except Exception as exc:  # e.g. the OS file watch limit: fall back to polling
                how = "polling failed" if polling else "file notifications failed"
                log.error("config watcher: %s (%s); SIGHUP still reloads", how, exc)
                if polling:
                    return
                polling = True

    def _relevant(self, change: Change, path: str) -> bool:
        """A watched file itself, the ConfigMap's ``..data`` swap, or anything when a watched
        file is a symlink (its target may live in a sibling that just changed)."""
        name = os.path.basename(path)
        names = {self.path.name, KUBERNETES_DATA, *(f.name for f in self._files)}
        return name in names or any(f.is_symlink() for f in (self.path, *self._files))


@dataclass(frozen=True, slots=True)
class _Until:
    """A watch's stop event: the reloader stopping, or the watched directories changing."""

    stop: asyncio.Event
    moved: Callable[[], bool]

    def is_set(self) -> bool:
        return self.stop.is_set() or self.moved()


def _handle_sighup(callback: Callable[[], None]) -> bool:
    """SIGHUP -> ``callback`` on the loop; False where impossible (not the main thread,
    or a platform without SIGHUP)."""
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:
        return False
    try:
        asyncio.get_running_loop().add_signal_handler(sighup, callback)
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True


def _ignore_sighup() -> None:
    """Once reloading has stopped (shutting down), SIGHUP must not kill a draining process."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(
            signal.SIGHUP, lambda: log.info("SIGHUP ignored: shutting down, not reloading")
        )


async def _finish(watcher: asyncio.Task[None]) -> None:
    """The watcher stops within a step of ``stop`` being set; cancel it if it does not."""
    done, _ = await asyncio.wait({watcher}, timeout=2)
    if not done:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
