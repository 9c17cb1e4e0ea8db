"""Which provider serves each task, and how it is doing.

`Backend` turns settings into live `Provider`s (LM Studio, the embedded engine, a preset such as
Ollama or llama.cpp, or any OpenAI-compatible server), tracks their state for the
`aigents/status` notification, and makes sure the user hears about each incident once.

With `routes`, each task has an ordered list of providers: the first one that is not down
serves. A provider that stops answering is marked down and watched by a health check with
backoff; the task fails over to the next one, and comes back when the first answers again.
A provider on another machine only serves when the user listed it, and the user is told when
it takes over. No LSP here: callbacks carry everything out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from aigents_lsp.providers.base import (
    BackendTimeout,
    BackendUnavailable,
    ModelInfo,
    Provider,
    ProviderError,
)
from aigents_lsp.providers.errors import BackendHung, FirstTokenTimeout, ModelLoading, StreamStalled
from aigents_lsp.providers.jit_thrash import ThrashDetector
from aigents_lsp.providers.presets import PRESETS, build_provider, is_loopback
from aigents_lsp.providers.waiting import WaitTracker

if TYPE_CHECKING:
    from aigents_lsp.config import Endpoint, Settings

log = logging.getLogger(__name__)

State = Literal["ready", "busy", "error", "offline", "starting"]
Task = Literal["completion", "chat", "embedding"]

# How often `auto` looks for LM Studio again while the embedded engine serves.
LMSTUDIO_RECHECK_SECONDS = 30.0
MODEL_INFO_SECONDS = 30.0
MODEL_INFO_TIMEOUT_SECONDS = 3.0
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
ThrashCallback = Callable[[tuple[str, ...], str], None]
"""`(models, message)`: models LM Studio's JIT auto-evict keeps swapping, seen once."""
LoadingCallback = Callable[[str, str, int | None, bool], None]
"""`(model, message, percent, done)`: a just-in-time model load, for `$/progress`."""
DIAGNOSE_SECONDS = 1.5  # the quick look at the backend after a completion missed its deadline


@dataclass
class ModelLoad:
    """A just-in-time load the server waits for (one per model)."""

    model: str
    where: str
    started: float
    fraction: float | None = None
    task: asyncio.Task[float] = field(init=False)

    def describe(self) -> str:
        done = f"{self.fraction * 100:.0f} %, " if self.fraction is not None else ""
        return f"loading model {self.model} in {self.where} ({done}{self.seconds():.0f} s)"

    def seconds(self) -> float:
        return time.monotonic() - self.started


def _connection_key(settings: Settings) -> tuple[object, ...]:
    return (
        settings.provider,
        settings.api_base,
        settings.routes,
        settings.api_key.get_secret_value() if settings.api_key else None,
        settings.connect_timeout,
        settings.read_timeout,
        settings.ttl,
        settings.draft_model,
        settings.embedded_threads,
        settings.embedded_context_length,
    )


class Backend:
    """Owns the provider(s) for the server's lifetime."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_status: StatusCallback | None = None,
        on_notice: NoticeCallback | None = None,
        on_progress: ProgressCallback | None = None,
        on_loading: LoadingCallback | None = None,
        on_thrash: ThrashCallback | None = None,
    ) -> None:
        self.settings = settings
        self._on_thrash = on_thrash
        self._on_status = on_status or (lambda status: None)
        self._on_notice = on_notice or (lambda message, level: None)
        self._on_progress = on_progress
        self._on_loading = on_loading or (lambda model, message, percent, done: None)
        self._loads: dict[str, ModelLoad] = {}
        self._provider: Provider | None = None
        self._embedded: Provider | None = None
        self._lmstudio: Provider | None = None
        self._lock = asyncio.Lock()
        self._busy = 0
        self._last_probe = 0.0
        self._incident: str | None = None  # the error kind the user was already told about
        self._told_embedded = False
        self._warned_hosts: set[str] = set()
        self._recovery: asyncio.Task[None] | None = None
        self._diagnosis: asyncio.Task[None] | None = None
        self.health_checks = 0  # run by the recovery watchers
        self._model_info: dict[tuple[str, str], tuple[float, ModelInfo | None]] = {}
        # Session choices (`aigents.selectModel`) over the settings, until the setting changes.
        self.model_overrides: dict[Task, str] = {}
        self.thrash = ThrashDetector()  # just-in-time loads, to tell a JIT auto-evict thrash
        # Routing: providers by endpoint, which are down (watched), who serves each task.
        self._routed: dict[tuple[str, str], Provider] = {}
        self._down: set[int] = set()
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._serving: dict[Task, tuple[Endpoint, Provider]] = {}
        self.status = Status(state="starting", provider=self.describe_provider())

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
            "jit_loads": len(self.thrash.loads),
            "jit_swaps": self.thrash.swaps,
            "jit_thrash": list(self.thrash.thrashing),
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

    # --- routing --------------------------------------------------------------------------

    def _fail_over(self, error: ProviderError, provider: Provider | None) -> bool:
        """Mark a routed provider down; True when its tasks have another provider to go to."""
        if provider is None or not any(p is provider for _, p in self._serving.values()):
            return False
        newly = id(provider) not in self._down
        self._down.add(id(provider))
        watcher = self._watchers.get(id(provider))
        if watcher is None or watcher.done():
            loop = asyncio.get_running_loop()
            self._watchers[id(provider)] = loop.create_task(self._watch_routed(provider))
        moved = [task for task in self.settings.routes if self._alternative(task, provider)]
        if not moved:
            return False
        if newly:
            self._on_notice(
                f"aigents: {provider.name} at {provider.base_url} is not answering "
                f"({error.message}); {', '.join(moved)} will use the next provider in "
                "aigents.routes until it is back.",
                "warning",
            )
        return True

    def _alternative(self, task: Task, provider: Provider) -> bool:
        serving = self._serving.get(task)
        if serving is None or serving[1] is not provider:
            return False
        return any(id(p) not in self._down for _, p in self._candidates(task))

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

    def _candidates(self, task: Task) -> list[tuple[Endpoint, Provider]]:
        return [(e, self._endpoint_provider(e)) for e in self.settings.routes.get(task, ())]

    def _choose(self, task: Task) -> tuple[Endpoint, Provider]:
        """The first provider of the task's route that is not down (the first if all are)."""
        candidates = self._candidates(task)
        chosen = next((c for c in candidates if id(c[1]) not in self._down), candidates[0])
        previous = self._serving.get(task)
        self._serving[task] = chosen
        if previous is None or previous[1] is not chosen[1]:
            provider = chosen[1]
            if not provider.local:
                self._on_notice(
                    f"aigents: {task} now goes to {provider.name} at {provider.base_url} "
                    "(aigents.routes): your code leaves this machine.",
                    "warning",
                )
            elif previous is not None:  # the status shows who serves: no second message
                log.info("%s now served by %s", task, provider.name)
            self._set_status(replace(self.status, provider=self.describe_provider()))
        return chosen

    def _endpoint_provider(self, endpoint: Endpoint) -> Provider:
        if endpoint.provider == "embedded":
            return self._embedded_provider()
        base = endpoint.api_base or PRESETS[endpoint.provider].api_base
        key = (endpoint.provider, base)
        if key not in self._routed:
            self._warn_if_exposed(base)
            s = self.settings
            api_key = None
            if endpoint.api_key_env:
                api_key = os.environ.get(endpoint.api_key_env) or None
            elif endpoint.provider == s.provider and s.api_key is not None:
                api_key = s.api_key.get_secret_value()
            self._routed[key] = build_provider(
                endpoint.provider,
                base,
                api_key=api_key,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                ttl=s.ttl,
                draft_model=s.draft_model,
            )
        return self._routed[key]

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

    # --- a backend that is there but not answering ------------------------------------------

    async def ensure_loaded(
        self,
        task: Task,
        provider: Provider,
        model: str | None,
        *,
        wait: bool,
        on_wait: Callable[[str], None] | None = None,
        state: str | None = None,
    ) -> None:
        """Make sure `model` is loaded before a request is sent to it. A model LM Studio says is
        not loaded is loaded once (one load per model, whoever asks, with `$/progress`): a
        completion does not wait (`ModelLoading` at once: its answer would come far too late),
        a command waits, told how far the load is. The load's time is never counted against the
        first-token deadline."""
        if model is None or not callable(getattr(provider, "load_just_in_time", None)):
            return
        load = self._loads.get(model)
        if load is None:
            if state is None:  # what was last heard (cached); `state`: just asked
                info = await self.model_info(model, task)
                state = info.state if info is not None else None
            if state not in ("not-loaded", "loading"):
                return
            load = self._start_load(provider, model)
        if not wait:
            raise ModelLoading(
                load.describe(),
                hint="completions start when the model is loaded",
                base_url=provider.base_url,
            )
        while not load.task.done():
            if on_wait is not None:
                on_wait(load.describe())
            await asyncio.wait({load.task}, timeout=1.0)  # never cancels the load itself
        if not load.task.cancelled() and (failure := load.task.exception()) is not None:
            raise failure

    def _start_load(self, provider: Provider, model: str) -> ModelLoad:
        where = getattr(provider, "backend_label", provider.name)
        loop = asyncio.get_running_loop()
        load = ModelLoad(model, where, time.monotonic())
        load.task = loop.create_task(self._load(provider, load), name=f"load {model}")
        load.task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        self._loads[model] = load
        log.info("%s", load.describe())
        self._on_loading(model, load.describe(), 0, False)
        self._set_status(
            Status("busy", self.describe_provider(), self.status.model, load.describe())
        )
        return load

    async def _load(self, provider: Provider, load: ModelLoad) -> float:
        shown = [-1.0]

        def progress(fraction: float | None) -> None:
            load.fraction = fraction if fraction is not None else load.fraction
            percent = int(load.fraction * 100) if load.fraction is not None else None
            now = load.seconds()
            if now - shown[0] < 0.5:  # a report every half second at most
                return
            shown[0] = now
            self._on_loading(load.model, load.describe(), percent, False)
            if self._incident is None:
                self._set_status(replace(self.status, state="busy", message=load.describe()))

        loader = getattr(provider, "load_just_in_time")  # noqa: B009 - checked by the caller
        try:
            async with asyncio.timeout(self.settings.load_timeout):
                seconds: float = await loader(load.model, progress)
        except TimeoutError:
            error: ProviderError = BackendTimeout(
                f"the model {load.model} was still loading after {load.seconds():.0f} s",
                hint=f"{load.where} at {provider.base_url} takes longer than load_timeout to "
                "load it — load it there first (`lms load`), pick a smaller model, or raise "
                "aigents.loadTimeout",
                base_url=provider.base_url,
            )
            self._end_load(load, f"{load.model}: not loaded in time")
            self.report_error(error, provider)
            raise error from None
        except ProviderError as failure:
            self._end_load(load, f"{load.model}: loading failed")
            self.report_error(failure, provider)
            raise
        except BaseException:
            self._end_load(load, f"{load.model}: loading stopped")
            raise
        log.info("model %s loaded in %.1f s", load.model, seconds)
        self._end_load(load, f"{load.model} loaded in {load.seconds():.0f} s")
        # A load that found the model loaded (0 s) is no swap.
        if seconds > 0 and (thrash := self.thrash.loaded(load.model)):  # JIT auto-evict
            if self._on_thrash is not None:  # the editor is offered the fix
                self._on_thrash(self.thrash.thrashing, thrash)
            else:
                self._on_notice(thrash, "warning")
        return seconds

    def _end_load(self, load: ModelLoad, message: str) -> None:
        self._loads.pop(load.model, None)
        self.forget_model_info()  # the state and the loaded context length changed
        self._on_loading(load.model, message, 100, True)
        if self._incident is None:
            self._set_status(
                Status(self._idle_state(), self.describe_provider(), self.status.model, message)
            )

    def explain_missed_deadline(
        self,
        provider: Provider,
        model: str | None,
        tracker: WaitTracker,
        deadline: float,
        setting: str = "completionDeadline",
    ) -> None:
        """Look (in the background, once at a time) at why a completion missed its deadline,
        and report it as an incident (or as a model load)."""
        if self._diagnosis is not None and not self._diagnosis.done():
            return

        async def diagnose() -> None:
            try:
                error = await self.missed_deadline(provider, model, tracker, deadline, setting)
            except Exception:  # a look at the backend must never take the server down
                log.exception("diagnosing a missed completion deadline failed")
                return
            if error is not None:
                self.report_error(error, provider)

        self._diagnosis = asyncio.get_running_loop().create_task(diagnose(), name="diagnosis")

    async def missed_deadline(
        self,
        provider: Provider,
        model: str | None,
        tracker: WaitTracker,
        deadline: float,
        setting: str = "completionDeadline",
    ) -> ProviderError | None:
        """Why a completion missed its typing deadline, as the error the user is told (None:
        the model is loading, which the status and `$/progress` show instead)."""
        where = f"{getattr(provider, 'backend_label', provider.name)} at {provider.base_url}"
        within = f"no completion within {deadline:g} s ({setting})"
        if tracker.phase == "receiving":
            if not tracker.tokens:
                return StreamStalled(
                    f"{within}: only {tracker.bytes} bytes came, no complete token",
                    hint=f"{where} is sending its answer a few bytes at a time — the network or "
                    "the server is very slow; check it, or use a server closer to you",
                    base_url=provider.base_url,
                )
            return FirstTokenTimeout(
                f"{within}: the answer was still coming ({tracker.tokens} tokens)",
                hint=f"{where} generates more slowly than you type — use a smaller or faster "
                "model, lower aigents.completionMaxTokens, or raise aigents.completionDeadline",
                base_url=provider.base_url,
            )
        if tracker.phase == "loading" and model is not None:  # seen loading by the stream
            with contextlib.suppress(ModelLoading):
                await self.ensure_loaded("completion", provider, model, wait=False, state="loading")
            return None
        state: str | None = None
        check = getattr(provider, "model_state", None)
        if callable(check) and model is not None:
            try:
                async with asyncio.timeout(DIAGNOSE_SECONDS):
                    state = await check(model)
            except (ProviderError, TimeoutError):
                return BackendHung(
                    f"{within}, and the model list does not answer either",
                    hint=f"{where} accepted the request but is not answering at all — it may be "
                    "hung or overloaded; restart it (or the model) and try again",
                    base_url=provider.base_url,
                )
        if state in ("loading", "not-loaded") and model is not None:
            try:
                await self.ensure_loaded("completion", provider, model, wait=False, state=state)
            except ModelLoading:
                return None
        waited = "the first token" if tracker.phase in ("first-token", "idle") else "an answer"
        loaded = f" (model {model} loaded)" if state == "loaded" else ""
        return FirstTokenTimeout(
            f"{within}: waited for {waited}{loaded}",
            hint=f"{where} answers but did not start the completion in time — it may be busy "
            "with another request or a long prompt; completions are empty until it is faster "
            f"(or raise aigents.{setting})",
            base_url=provider.base_url,
        )

    # --- provider selection ---------------------------------------------------------------

    async def update_settings(self, settings: Settings) -> None:
        """Apply new settings; connections are rebuilt only when connection settings changed."""
        changed = _connection_key(settings) != _connection_key(self.settings)
        for task in list(self.model_overrides):
            if settings.model_for(task) != self.settings.model_for(task):
                del self.model_overrides[task]  # the user chose again, in the settings
        self.settings = settings
        if changed:
            async with self._lock:
                await self._close_providers()
            self._incident = None
            self._model_info.clear()
            self._set_status(Status("starting", settings.provider))

    async def provider(self, task: Task = "completion") -> Provider:
        """The provider that serves `task` now (created on first need)."""
        if self.settings.routes.get(task):
            return self._choose(task)[1]
        return await self._main_provider()

    async def _main_provider(self) -> Provider:
        """The provider named by `provider` (for `auto`: LM Studio or the embedded engine)."""
        if self._provider is not None and not self._should_recheck_lmstudio():
            return self._provider
        async with self._lock:
            if self._provider is None or self._should_recheck_lmstudio():
                self._provider = await self._select()
            return self._provider

    async def model_for(self, task: Task) -> str | None:
        """The model id for a task: the session's choice, the configured one, else what the
        provider picks."""
        override = self.model_overrides.get(task)
        if override:
            return override
        configured = self.settings.model_for(task)
        provider = await self.provider(task)
        serving = self._serving.get(task)
        if serving is not None and serving[1] is provider:
            # A routed provider: its own model, else the configured one only if it is the
            # main provider (a model id of LM Studio means nothing to OpenAI).
            if serving[0].model:
                return serving[0].model
            if serving[0].provider != self.settings.provider:
                return await provider.resolve_model(task)
        if configured:
            return configured
        return await provider.resolve_model(task)

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

    async def model_info(self, model: str | None, task: Task = "completion") -> ModelInfo | None:
        """What the provider says of a model (arch, context length), cached for a while;
        None when unknown or when the provider cannot list models."""
        if model is None:
            return None
        provider = await self.provider(task)
        now = time.monotonic()
        cached = self._model_info.get((provider.name, model))
        if cached is not None and now - cached[0] < MODEL_INFO_SECONDS:
            return cached[1]
        describe = getattr(provider, "model_info", None)
        found: ModelInfo | None = None
        try:
            # Metadata only: never let a stuck model list hold up a request.
            async with asyncio.timeout(MODEL_INFO_TIMEOUT_SECONDS):
                if callable(describe):
                    found = await describe(model)
                else:
                    models = await provider.list_models()
                    found = next((m for m in models if m.id == model), None)
        except (ProviderError, TimeoutError) as error:
            log.debug("model list unavailable: %s", error)
        self._model_info[(provider.name, model)] = (now, found)
        return found

    def forget_model_info(self) -> None:
        """Drop what is cached of models (after a load, the loaded context length changes)."""
        self._model_info.clear()

    def _should_recheck_lmstudio(self) -> bool:
        return (
            self.settings.provider == "auto"
            and self._provider is not None
            and self._provider is self._embedded
            and time.monotonic() - self._last_probe > LMSTUDIO_RECHECK_SECONDS
        )

    async def _select(self) -> Provider:
        choice = self.settings.provider
        if choice == "embedded":
            return self._embedded_provider()
        self._warn_if_exposed(self.settings.base_url)
        if choice not in ("auto", "lmstudio"):
            provider = self._preset_provider()
            if not provider.local:
                self._on_notice(
                    f"aigents: code goes to {provider.name} at {provider.base_url} "
                    "(aigents.provider): it leaves this machine.",
                    "info",
                )
            return provider
        lmstudio = self._lmstudio_provider()
        if choice == "lmstudio":
            return lmstudio
        # auto: LM Studio when it answers, otherwise the embedded engine.
        self._last_probe = time.monotonic()
        if await lmstudio.detect():  # type: ignore[attr-defined]
            if self._provider is self._embedded and self._embedded is not None:
                self._on_notice(
                    f"aigents: LM Studio is answering at {lmstudio.base_url}; using it now.",
                    "info",
                )
            return lmstudio
        embedded = self._embedded_provider()
        if not self._told_embedded:
            self._told_embedded = True
            description = getattr(embedded, "description", "the embedded llama.cpp engine")
            self._on_notice(
                f"aigents: LM Studio is not answering at {lmstudio.base_url}; {description}",
                "info",
            )
        return embedded

    def _warn_if_exposed(self, base: str) -> None:
        """Code sent over plain http to another machine can be read on the way: say so once."""
        parts = urlsplit(base)
        host = (parts.hostname or "").lower()
        if parts.scheme != "http" or is_loopback(base) or host in self._warned_hosts:
            return
        self._warned_hosts.add(host)
        self._on_notice(
            f"aigents: your code goes to {host} over plain http (unencrypted). Use https, an "
            "SSH tunnel, or a server on this machine (aigents.apiBase).",
            "warning",
        )

    def _lmstudio_provider(self) -> Provider:
        if self._lmstudio is None:
            from aigents_lsp.providers.lmstudio import LMStudioProvider

            s = self.settings
            self._lmstudio = LMStudioProvider(
                s.base_url,
                api_key=s.api_key.get_secret_value() if s.api_key else None,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                ttl=s.ttl,
                draft_model=s.draft_model,
            )
        return self._lmstudio

    def _preset_provider(self) -> Provider:
        s = self.settings
        return build_provider(
            s.provider,
            s.base_url,
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            ttl=s.ttl,
            draft_model=s.draft_model,
        )

    def _embedded_provider(self) -> Provider:
        if self._embedded is None:
            from aigents_lsp.providers.embedded import EmbeddedProvider

            s = self.settings
            self._embedded = EmbeddedProvider(
                threads=s.embedded_threads,
                context_length=s.embedded_context_length,
                on_progress=self._on_progress,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
            )
        return self._embedded

    async def _close_providers(self) -> None:
        everything = (self._provider, self._lmstudio, self._embedded, *self._routed.values())
        providers = {id(p): p for p in everything if p}
        self._provider = self._lmstudio = self._embedded = None
        self._routed.clear()
        self._serving.clear()
        self._down.clear()
        for watcher in self._watchers.values():
            watcher.cancel()
        self._watchers.clear()
        for provider in providers.values():
            try:
                await provider.aclose()
            except Exception:  # closing must never take the server down
                log.exception("closing provider %s failed", provider.name)

    async def aclose(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        for load in list(self._loads.values()):
            load.task.cancel()
        if self._diagnosis is not None:
            self._diagnosis.cancel()
        for watcher in self._watchers.values():
            watcher.cancel()
        async with self._lock:
            await self._close_providers()

    def stop_sync(self) -> None:
        """Stop child engines when no event loop is left (process exit)."""
        stop = getattr(self._embedded, "stop_sync", None)
        if callable(stop):
            stop()


async def _answers(provider: Provider) -> bool:
    """One health check; never raises (health must never take the server down)."""
    try:
        report = await provider.health()
    except Exception as exc:
        log.debug("health check of %s failed: %s", provider.name, exc)
        return False
    return report.ok
