"""Which provider serves each task, and how it is doing.

`Backend` turns settings into live `Provider`s (LM Studio, the embedded engine, a preset such as
Ollama or llama.cpp, or any OpenAI-compatible server). How they are doing (the `aigents/status`
notification, each incident told once, the start-up probe) is kept by its base `BackendState`
(providers/backend_state.py), model information, loads and missed deadlines by `ModelLoads`
(providers/backend_loads.py).

With `routes`, each task has an ordered list of providers: the first one that is not down
serves. A provider that stops answering is marked down and watched by a health check with
backoff; the task fails over to the next one, and comes back when the first answers again.
A provider on another machine only serves when the user listed it, and the user is told when
it takes over. No LSP here: callbacks carry everything out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aigents_lsp.addresses import PRESETS, is_loopback
from aigents_lsp.providers.backend_loads import (
    LoadingCallback,
    ModelLoad,
    ModelLoads,
    ThrashCallback,
)
from aigents_lsp.providers.backend_state import (
    NoticeCallback,
    ProgressCallback,
    Status,
    StatusCallback,
    Task,
)
from aigents_lsp.providers.base import ModelInfo, Provider, ProviderError
from aigents_lsp.providers.jit_thrash import ThrashDetector
from aigents_lsp.providers.presets import build_provider

if TYPE_CHECKING:
    from aigents_lsp.config import Endpoint, Settings

log = logging.getLogger(__name__)

# How often `auto` looks for LM Studio again while the embedded engine serves.
LMSTUDIO_RECHECK_SECONDS = 30.0


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


def _http_options(s: Settings) -> dict[str, Any]:
    """What every HTTP provider is built with, from the settings."""
    return {
        "connect_timeout": s.connect_timeout,
        "read_timeout": s.read_timeout,
        "ttl": s.ttl,
        "draft_model": s.draft_model,
    }


class Backend(ModelLoads):
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
        self.thrash = ThrashDetector()
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
        # Routing: providers by endpoint, which are down (watched), who serves each task.
        self._routed: dict[tuple[str, str], Provider] = {}
        self._down: set[int] = set()
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._serving: dict[Task, tuple[Endpoint, Provider]] = {}
        self.status = Status(state="starting", provider=self.describe_provider())

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
                **_http_options(s),
            )
        return self._routed[key]

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
                **_http_options(s),
            )
        return self._lmstudio

    def _preset_provider(self) -> Provider:
        s = self.settings
        return build_provider(
            s.provider,
            s.base_url,
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            **_http_options(s),
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
