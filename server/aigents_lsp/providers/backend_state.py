"""How the backend is doing: the `aigents/status` it shows, each incident told to the user once,
recovery watched with health checks, busy while requests last, and the probe at start-up.

`BackendState` is the base of `Backend`: `ModelLoads` (providers/backend_loads.py) adds the
just-in-time model loads and missed deadlines, `Backend` (providers/backend.py) which provider
serves each task. No LSP here: callbacks carry everything out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from aigents_lsp.providers.base import BackendUnavailable, Provider, ProviderError
from aigents_lsp.providers.errors import BackendHung

if TYPE_CHECKING:
    from aigents_lsp.config import Endpoint, Settings
    from aigents_lsp.providers.backend_loads import ModelLoad

log = logging.getLogger("aigents_lsp.providers.backend")  # one logger for both halves

State = Literal["ready", "busy", "error", "offline", "starting"]
Task = Literal["completion", "chat", "embedding"]

BUSY_AFTER_SECONDS = 0.25
RECOVERY_FIRST_SECONDS = 1.0  # health checks while the backend is away: 1 s, 2 s, 4 s ... 30 s
RECOVERY_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Status:
    """The payload of `aigents/status`."""

    state: State
    provider: str
    model: str | None = None
    message: str = ""
    # With `routes`: which provider serves each routed task now ({"chat": "ollama", ...}).
    routes: tuple[tuple[str, str], ...] = ()

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {
            "state": self.state,
            "provider": self.provider,
            "model": self.model,
            "message": self.message,
        }
        if self.routes:
            wire["routes"] = dict(self.routes)
        return wire


ProgressCallback = Callable[[str, int | None], None]
StatusCallback = Callable[[Status], None]
NoticeCallback = Callable[[str, Literal["info", "warning", "error"]], None]


class BackendState:
    """The status, incidents, recovery, busy state and model loads of a `Backend`."""

    # Set by Backend.__init__.
    settings: Settings
    status: Status
    health_checks: int
    _on_status: StatusCallback
    _on_notice: NoticeCallback
    _loads: dict[str, ModelLoad]  # the loads of ModelLoads (providers/backend_loads.py)
    _provider: Provider | None
    _busy: int
    _incident: str | None
    _recovery: asyncio.Task[None] | None
    _diagnosis: asyncio.Task[None] | None
    _down: set[int]
    _watchers: dict[int, asyncio.Task[None]]
    _serving: dict[Task, tuple[Endpoint, Provider]]
    model_overrides: dict[Task, str]

    if TYPE_CHECKING:  # Backend's half: which provider serves each task

        def _fail_over(self, error: ProviderError, provider: Provider | None) -> bool: ...
        def _choose(self, task: Task) -> tuple[Endpoint, Provider]: ...
        async def provider(self, task: Task = "completion") -> Provider: ...

    # --- status ---------------------------------------------------------------------------

    def describe_provider(self) -> str:
        serving = self._serving.get("completion")
        if serving is not None:
            return serving[1].name
        if self._provider is not None:
            return self._provider.name
        return self.settings.provider

    def _routes_now(self) -> tuple[tuple[str, str], ...]:
        return tuple((task, provider.name) for task, (_, provider) in self._serving.items())

    def _set_status(self, status: Status) -> None:
        if self._serving:
            status = replace(status, routes=self._routes_now())
        if status != self.status:
            self.status = status
            self._on_status(status)

    def counters(self) -> dict[str, object]:
        """For `aigents.stats` (and tests that wait for events, not time): health checks run,
        whether one is being watched for, a deadline being looked into, models loading."""
        watching = self._recovery is not None and not self._recovery.done()
        watching = watching or any(not w.done() for w in self._watchers.values())
        return {
            "health_checks": self.health_checks,
            "watching": watching,
            "diagnosing": self._diagnosis is not None and not self._diagnosis.done(),
            "loading": sorted(self._loads),
            "incident": self._incident,
        }

    def _idle_state(self) -> State:
        return "busy" if self._busy or self._loads else "ready"

    def mark_ready(self, model: str | None = None, provider: Provider | None = None) -> None:
        """A request succeeded: the incident (if any) is over. Recovery is news for the
        status and the log only: one incident, one message."""
        self._down.discard(id(provider or self._provider))
        message = ""
        if self._incident is not None:
            where = provider or self._provider
            message = f"{where.name} at {where.base_url} is back" if where else "back"
            log.info("backend recovered: %s", message)
        self._incident = None
        if self._loads:
            message = next(iter(self._loads.values())).describe()
        self._set_status(
            Status(
                self._idle_state(), self.describe_provider(), model or self.status.model, message
            )
        )

    def report_error(self, error: ProviderError, provider: Provider | None = None) -> None:
        """Set the status; tell the user once per incident, whatever else fails before the
        backend answers again (completion, commands, index and health checks alike: a
        different error during the incident goes to the status and the log).
        A routed provider that stopped answering hands its tasks to the next one instead."""
        if error.kind == "server_down" and self._fail_over(error, provider):
            return
        offline = error.kind in ("server_down", "timeout")
        state: State = "offline" if offline else "error"
        self._set_status(Status(state, self.describe_provider(), self.status.model, str(error)))
        if self._incident is None:
            self._incident = error.kind
            self._on_notice(str(error), "error")
        else:
            self._incident = error.kind
            log.warning("backend still failing (%s): %s", error.kind, error)
        # Health checks decide recovery only when nothing answered at all: a backend that is
        # slow to generate, or answers 503, still lists its models, and would be declared back
        # at once (then fail again: "back" and the error, every second). A hung backend did
        # not answer its model list either: that list answering again is recovery.
        down = error.kind == "server_down" and error.status is None
        down = down or isinstance(error, BackendHung)
        if down and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.get_running_loop().create_task(self._watch_for_recovery())

    async def probe(self) -> None:
        """At start-up: pick the provider and check it answers, so the status says `ready`
        (or why not) before the first request. Never starts the embedded engine."""
        try:
            provider = await self.provider()
            report = await provider.health()
        except ProviderError as error:
            self.report_error(error)
            return
        if report.ok:
            model = self.model_overrides.get("completion") or self.settings.model_for("completion")
            if model is None:
                try:
                    model = await provider.resolve_model("completion")
                except ProviderError:
                    model = None
            self.mark_ready(model)
        else:
            self.report_error(
                BackendUnavailable(
                    report.message or "the backend does not answer", base_url=provider.base_url
                )
            )

    async def _watch_for_recovery(self) -> None:
        """While the backend is away, check its health with backoff; the status goes back to
        ready by itself (and the user hears it) when it answers again."""
        delay = RECOVERY_FIRST_SECONDS
        while self._incident is not None and self._provider is not None:
            await asyncio.sleep(delay)
            provider = self._provider
            if provider is None or self._incident is None:
                return
            answered = await _answers(provider)
            self.health_checks += 1
            if answered and self._incident is not None:
                self.mark_ready()  # the status says it is back; no second message
                return
            delay = min(delay * 2, RECOVERY_MAX_SECONDS)

    async def _watch_routed(self, provider: Provider) -> None:
        """Health checks with backoff until a routed provider answers; its tasks then return."""
        delay = RECOVERY_FIRST_SECONDS
        while id(provider) in self._down:
            await asyncio.sleep(delay)
            answered = await _answers(provider)
            self.health_checks += 1
            if answered:
                self._down.discard(id(provider))
                log.info("%s at %s is back", provider.name, provider.base_url)
                for task in list(self._serving):
                    self._choose(task)
                self.mark_ready(provider=provider)
                return
            delay = min(delay * 2, RECOVERY_MAX_SECONDS)

    @contextlib.asynccontextmanager
    async def busy(self, model: str | None = None) -> AsyncIterator[None]:
        """Mark the backend busy while a request runs. Only requests that last are shown:
        a status flickering on every keystroke (cache hits take a millisecond) is noise."""
        self._busy += 1
        loop = asyncio.get_running_loop()
        timer = loop.call_later(BUSY_AFTER_SECONDS, self._show_busy, model)
        try:
            yield
        finally:
            timer.cancel()
            self._busy -= 1
            if self._busy == 0 and not self._loads and self.status.state == "busy":
                self._set_status(replace(self.status, state="ready"))

    def _show_busy(self, model: str | None) -> None:
        if self._busy and self._incident is None:
            self._set_status(Status("busy", self.describe_provider(), model or self.status.model))


async def _answers(provider: Provider) -> bool:
    """One health check; never raises (health must never take the server down)."""
    try:
        report = await provider.health()
    except Exception as exc:
        log.debug("health check of %s failed: %s", provider.name, exc)
        return False
    return report.ok
