"""A backend that is there but not answering: the just-in-time model loads the server waits for
(one per model, whoever asks, with `$/progress`), and why a completion missed its typing
deadline; and what the provider says of a model (arch, state, context length), cached for a
while, which both read. `serve` runs a typing request (a completion, a next edit) under all
of it. `ModelLoads` sits between `BackendState` (status and incidents) and
`Backend` (which provider serves each task).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from aigents_lsp.providers.backend_state import BackendState, Status, Task
from aigents_lsp.providers.base import BackendTimeout, ModelInfo, Provider, ProviderError
from aigents_lsp.providers.errors import BackendHung, FirstTokenTimeout, ModelLoading, StreamStalled
from aigents_lsp.providers.jit_thrash import ThrashDetector
from aigents_lsp.providers.waiting import WaitTracker

MODEL_INFO_SECONDS = 30.0
MODEL_INFO_TIMEOUT_SECONDS = 3.0

log = logging.getLogger("aigents_lsp.providers.backend")  # one logger for the whole Backend

LoadingCallback = Callable[[str, str, int | None, bool], None]
"""`(model, message, percent, done)`: a just-in-time model load, for `$/progress`."""
ThrashCallback = Callable[[tuple[str, ...], str], None]
"""`(models, message)`: models LM Studio's JIT auto-evict keeps swapping, seen once."""
DIAGNOSE_SECONDS = 1.5  # the quick look at the backend after a completion missed its deadline


class RequestTarget(Protocol):
    """Where `ModelLoads.serve` sends a request: completion's `Target`, next edit's."""

    @property
    def provider(self) -> Provider: ...
    @property
    def model(self) -> str | None: ...


TargetT = TypeVar("TargetT", bound=RequestTarget)
ResultT = TypeVar("ResultT")


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


class ModelLoads(BackendState):
    """The model loads and missed-deadline diagnoses of a `Backend`."""

    _on_loading: LoadingCallback  # set by Backend.__init__
    _on_thrash: ThrashCallback | None  # set by Backend.__init__
    thrash: ThrashDetector  # just-in-time loads, to tell a JIT auto-evict thrash

    def counters(self) -> dict[str, object]:
        """`BackendState.counters` and the just-in-time loads seen (the thrash detector's)."""
        return {
            **super().counters(),
            "jit_loads": len(self.thrash.loads),
            "jit_swaps": self.thrash.swaps,
            "jit_thrash": list(self.thrash.thrashing),
        }

    _model_info: dict[tuple[str, str], tuple[float, ModelInfo | None]]  # set by Backend

    # --- what the provider says of a model ----------------------------------------------------

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

    async def serve(
        self,
        task: Task,
        choose: Callable[[], Awaitable[TargetT]],
        run: Callable[[TargetT], Awaitable[ResultT]],
        *,
        within: float,  # not a caller's asyncio.timeout: `timed_out` is told the target
        timed_out: Callable[[TargetT | None], None],
        fail_over: bool = False,
    ) -> ResultT | None:
        """`run`'s result on the target `choose` picks, as the editor's typing requests are
        served: the model loaded just in time without waiting, busy while it runs, ready
        after it. None on any backend failure, each reported: a model loading (the status and
        `$/progress` show it), a `ProviderError` (one message per incident; with `fail_over`,
        a routed provider that stopped answering hands over to the next once), no answer
        `within` seconds (`timed_out`, with the target if one was chosen)."""
        where: TargetT | None = None
        try:
            async with asyncio.timeout(within):
                for attempt in (1, 2):
                    where = await choose()
                    await self.ensure_loaded(task, where.provider, where.model, wait=False)
                    try:
                        async with self.busy(where.model):
                            result = await run(where)
                        break
                    except ProviderError as error:
                        self.report_error(error, where.provider)
                        if not fail_over:
                            return None
                        failed_over = (await self.provider(task)) is not where.provider
                        if attempt == 2 or not failed_over:
                            return None
            assert where is not None
            self.mark_ready(where.model, where.provider)
            return result
        except ModelLoading:  # typing requests resume after the load
            return None
        except ProviderError as error:  # choosing the target failed (e.g. nothing answers)
            self.report_error(error, where.provider if where else None)
            return None
        except TimeoutError:
            timed_out(where)
            return None

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
