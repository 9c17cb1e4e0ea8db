"""Which provider serves, and how it is doing.

`Backend` turns settings into a live `Provider` (LM Studio, the embedded engine, or any
OpenAI-compatible server), tracks its state for the `aigents/status` notification, and makes
sure the user hears about each incident once. No LSP here: callbacks carry everything out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from aigents_lsp.providers.base import BackendUnavailable, ModelInfo, Provider, ProviderError

if TYPE_CHECKING:
    from aigents_lsp.config import Settings

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
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class Status:
    """The payload of `aigents/status`."""

    state: State
    provider: str
    model: str | None = None
    message: str = ""

    def to_wire(self) -> dict[str, str | None]:
        return {
            "state": self.state,
            "provider": self.provider,
            "model": self.model,
            "message": self.message,
        }


ProgressCallback = Callable[[str, int | None], None]
StatusCallback = Callable[[Status], None]
NoticeCallback = Callable[[str, Literal["info", "warning", "error"]], None]


def _connection_key(settings: Settings) -> tuple[object, ...]:
    return (
        settings.provider,
        settings.api_base,
        settings.api_key.get_secret_value() if settings.api_key else None,
        settings.connect_timeout,
        settings.read_timeout,
        settings.ttl,
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
    ) -> None:
        self.settings = settings
        self._on_status = on_status or (lambda status: None)
        self._on_notice = on_notice or (lambda message, level: None)
        self._on_progress = on_progress
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
        self._model_info: dict[tuple[str, str], tuple[float, ModelInfo | None]] = {}
        # Session choices (`aigents.setModel`) over the settings, until the setting changes.
        self.model_overrides: dict[Task, str] = {}
        self.status = Status(state="starting", provider=self.describe_provider())

    # --- status ---------------------------------------------------------------------------

    def describe_provider(self) -> str:
        if self._provider is not None:
            return self._provider.name
        return self.settings.provider

    def _set_status(self, status: Status) -> None:
        if status != self.status:
            self.status = status
            self._on_status(status)

    def mark_ready(self, model: str | None = None) -> None:
        """A request succeeded: the incident (if any) is over."""
        if self._incident is not None:
            log.info("backend recovered: %s", self.describe_provider())
        self._incident = None
        state: State = "busy" if self._busy else "ready"
        self._set_status(Status(state, self.describe_provider(), model or self.status.model))

    def report_error(self, error: ProviderError) -> None:
        """Set the status; tell the user once per incident (a change of error kind is news)."""
        offline = error.kind in ("server_down", "timeout")
        state: State = "offline" if offline else "error"
        self._set_status(Status(state, self.describe_provider(), self.status.model, str(error)))
        if self._incident != error.kind:
            self._incident = error.kind
            self._on_notice(str(error), "error")
        else:
            log.info("backend still failing (%s): %s", error.kind, error.message)
        # Health checks decide recovery only when nothing answered at all: a backend that is
        # slow to generate still answers them, and would be declared back at once.
        down = error.kind == "server_down"
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
            try:
                report = await provider.health()
            except Exception as exc:  # health must never take the server down
                log.debug("health check failed: %s", exc)
                report = None
            if report is not None and report.ok and self._incident is not None:
                self._on_notice(f"aigents: {provider.name} at {provider.base_url} is back.", "info")
                self.mark_ready()
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
            if self._busy == 0 and self.status.state == "busy":
                self._set_status(replace(self.status, state="ready"))

    def _show_busy(self, model: str | None) -> None:
        if self._busy and self._incident is None:
            self._set_status(Status("busy", self.describe_provider(), model or self.status.model))

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

    async def provider(self) -> Provider:
        """The provider that serves now (created on first need)."""
        if self._provider is not None and not self._should_recheck_lmstudio():
            return self._provider
        async with self._lock:
            if self._provider is None or self._should_recheck_lmstudio():
                self._provider = await self._select()
            return self._provider

    async def model_for(self, task: Task) -> str | None:
        """The model id for a task: the session's choice, the configured one, else what the
        provider picks."""
        configured = self.model_overrides.get(task) or self.settings.model_for(task)
        if configured:
            return configured
        provider = await self.provider()
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

    async def model_info(self, model: str | None) -> ModelInfo | None:
        """What the provider says of a model (arch, context length), cached for a while;
        None when unknown or when the provider cannot list models."""
        if model is None:
            return None
        provider = await self.provider()
        now = time.monotonic()
        cached = self._model_info.get((provider.name, model))
        if cached is not None and now - cached[0] < MODEL_INFO_SECONDS:
            return cached[1]
        try:
            # Metadata only: never let a stuck model list hold up a request.
            async with asyncio.timeout(MODEL_INFO_TIMEOUT_SECONDS):
                models = await provider.list_models()
        except (ProviderError, TimeoutError) as error:
            log.debug("model list unavailable: %s", error)
            models = []
        found = next((m for m in models if m.id == model), None)
        self._model_info[(provider.name, model)] = (now, found)
        return found

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
        self._warn_if_exposed(self.settings.api_base)
        if choice == "openai-compatible":
            return self._openai_provider()
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
        if parts.scheme != "http" or host in _LOOPBACK_NAMES or host in self._warned_hosts:
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
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
                s.api_base,
                api_key=s.api_key.get_secret_value() if s.api_key else None,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                ttl=s.ttl,
            )
        return self._lmstudio

    def _openai_provider(self) -> Provider:
        from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

        s = self.settings
        return OpenAICompatibleProvider(
            s.api_base,
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
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
        providers = {id(p): p for p in (self._provider, self._lmstudio, self._embedded) if p}
        self._provider = self._lmstudio = self._embedded = None
        for provider in providers.values():
            try:
                await provider.aclose()
            except Exception:  # closing must never take the server down
                log.exception("closing provider %s failed", provider.name)

    async def aclose(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        async with self._lock:
            await self._close_providers()

    def stop_sync(self) -> None:
        """Stop child engines when no event loop is left (process exit)."""
        stop = getattr(self._embedded, "stop_sync", None)
        if callable(stop):
            stop()
