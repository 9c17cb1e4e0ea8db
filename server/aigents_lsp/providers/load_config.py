"""Loading a model in LM Studio with a configuration, and reading back what it runs with.

`POST /api/v1/models/load` (LM Studio 0.4+) takes `context_length`, `flash_attention` and
`offload_kv_cache_to_gpu`; `GET /api/v1/models` says what each loaded instance runs with
(`loaded_instances[].config`). An idle TTL is not part of the load API: LM Studio takes one
only with the request that loads a model just in time (`ttl`), and such a load takes no other
configuration. So a load with a TTL is a just-in-time load, and asking for both is an error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aigents_lsp.providers.base import InvalidRequest, ProviderError, WrongRoute
from aigents_lsp.providers.lmstudio import LMStudioProvider, LoadOutcome, no_load_route
from aigents_lsp.providers.models import Selection, find

# The argument names editors send (camelCase) and the CLI takes (snake_case) -> field.
_NAMES = {
    "contextLength": "context_length",
    "context_length": "context_length",
    "flashAttention": "flash_attention",
    "flash_attention": "flash_attention",
    "gpuOffload": "offload_kv_cache_to_gpu",
    "gpu_offload": "offload_kv_cache_to_gpu",
    "offload_kv_cache_to_gpu": "offload_kv_cache_to_gpu",
    "ttl": "ttl",
}
_WIRE = {
    "context_length": "contextLength",
    "flash_attention": "flashAttention",
    "offload_kv_cache_to_gpu": "gpuOffload",
    "ttl": "ttl",
}


@dataclass(frozen=True)
class LoadConfig:
    """How to load a model; None fields are left to LM Studio."""

    context_length: int | None = None
    flash_attention: bool | None = None
    offload_kv_cache_to_gpu: bool | None = None
    ttl: int | None = None

    def body(self) -> dict[str, Any]:
        """The fields of LM Studio's load request that are set (the TTL is not one)."""
        values = {
            "context_length": self.context_length,
            "flash_attention": self.flash_attention,
            "offload_kv_cache_to_gpu": self.offload_kv_cache_to_gpu,
        }
        return {k: v for k, v in values.items() if v is not None}

    @property
    def empty(self) -> bool:
        return not self.body() and self.ttl is None

    def over(self, base: LoadConfig) -> LoadConfig:
        """These values where set, else `base`'s."""
        return LoadConfig(
            **{
                f.name: getattr(self, f.name)
                if getattr(self, f.name) is not None
                else getattr(base, f.name)
                for f in fields(self)
            }
        )

    def to_wire(self) -> dict[str, Any]:
        return {_WIRE[f.name]: getattr(self, f.name) for f in fields(self)}

    def differs_from(self, loaded: Mapping[str, Any]) -> bool:
        """Whether a model loaded with `loaded` (LM Studio's config) runs otherwise."""
        return any(loaded.get(k) != v for k, v in self.body().items())


def parse_load_config(arg: Mapping[str, Any]) -> LoadConfig:
    """The load configuration among a command's arguments (other keys are ignored); raises
    `InvalidRequest` naming the bad one."""
    values: dict[str, Any] = {}
    for key, value in arg.items():
        name = _NAMES.get(key)
        if name is None or value is None:
            continue
        if name in ("context_length", "ttl"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(f"`{key}` is a whole number (got {value!r})")
            low = 256 if name == "context_length" else 1
            if value < low:
                raise InvalidRequest(f"`{key}` is at least {low} (got {value})")
        elif not isinstance(value, bool):
            raise InvalidRequest(f"`{key}` is true or false (got {value!r})")
        values[name] = value
    config = LoadConfig(**values)
    if config.ttl is not None and config.body():
        raise _ttl_with_config()
    return config


def _ttl_with_config() -> InvalidRequest:
    return InvalidRequest(
        "LM Studio takes a TTL only when it loads a model just in time, and such a load "
        "takes no context length, flash attention or GPU offload",
        hint="give either `ttl` or the load configuration; `lms load <model> --ttl N "
        "--context-length N` sets both from a terminal",
    )


def settings_config(values: Mapping[str, Any], ttl: int | None = None) -> LoadConfig:
    """`load_settings.load_values(settings, task)` as a `LoadConfig`."""
    return LoadConfig(
        context_length=values.get("context_length"),
        flash_attention=values.get("flash_attention"),
        offload_kv_cache_to_gpu=values.get("offload_kv_cache_to_gpu"),
        ttl=ttl,
    )


def _instances(body: object) -> dict[str, dict[str, Any]]:
    """`GET /api/v1/models` -> {instance id and model key: the instance's config}."""
    found: dict[str, dict[str, Any]] = {}
    models = body.get("models") if isinstance(body, dict) else None
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, dict):
            continue
        for instance in model.get("loaded_instances") or []:
            config = instance.get("config") if isinstance(instance, dict) else None
            if not isinstance(config, dict):
                continue
            ident = instance.get("id")
            if isinstance(ident, str):
                found[ident] = config
            key = model.get("key")
            if isinstance(key, str):
                found.setdefault(key, config)
    return found


async def loaded_configs(provider: LMStudioProvider) -> dict[str, dict[str, Any]]:
    """What every loaded instance runs with ({} before LM Studio 0.4, which does not say)."""
    try:
        body = await provider._request_json("GET", f"{provider.root}/api/v1/models")
    except WrongRoute:
        return {}
    return _instances(body)


@dataclass(frozen=True)
class ConfiguredLoad:
    """A load done with a configuration, and what LM Studio says the model runs with."""

    outcome: LoadOutcome
    config: dict[str, Any] | None  # LM Studio's `load_config`, None when it did not say


async def load_configured(
    provider: LMStudioProvider, model_id: str, config: LoadConfig, *, embedding: bool = False
) -> ConfiguredLoad:
    """Load `model_id` as `config` says. A TTL makes it a just-in-time load; otherwise the load
    API (LM Studio 0.4+). An older LM Studio loads just in time, and then only without a
    configuration (it could not apply one: an error, with the fix)."""
    started = time.perf_counter()
    provider._models = None  # whatever happens, the cached states are stale
    if config.ttl is not None:
        if config.body():
            raise _ttl_with_config()
        await _load_just_in_time(provider, model_id, config.ttl, embedding=embedding)
        outcome = LoadOutcome(model_id, "just-in-time", time.perf_counter() - started)
        return ConfiguredLoad(outcome, None)
    try:
        body = await provider._request_json(
            "POST",
            f"{provider.root}/api/v1/models/load",
            {"model": model_id, **config.body(), "echo_load_config": True},
        )
    except ProviderError as error:
        if not no_load_route(error):
            raise
        if config.body():
            raise InvalidRequest(
                f"LM Studio at {provider.root} has no load API (it came with 0.4): it cannot "
                f"load {model_id} with {', '.join(config.body())}",
                hint=f"update LM Studio, or load it yourself: `lms load {model_id} "
                "--context-length N` (then aigents uses it as loaded)",
            ) from None
        await provider.warm_up(model_id, embedding=embedding)
        outcome = LoadOutcome(model_id, "just-in-time", time.perf_counter() - started)
        return ConfiguredLoad(outcome, None)
    instance = body.get("instance_id") if isinstance(body, dict) else None
    echoed = body.get("load_config") if isinstance(body, dict) else None
    outcome = LoadOutcome(
        model_id,
        "loaded",
        time.perf_counter() - started,
        instance if isinstance(instance, str) else None,
    )
    return ConfiguredLoad(outcome, echoed if isinstance(echoed, dict) else None)


async def unload(provider: LMStudioProvider, instance_id: str) -> None:
    """`POST /api/v1/models/unload` (to load a model again with another configuration)."""
    provider._models = None
    await provider._request_json(
        "POST", f"{provider.root}/api/v1/models/unload", {"instance_id": instance_id}
    )


async def _load_just_in_time(
    provider: LMStudioProvider, model_id: str, ttl: int, *, embedding: bool
) -> None:
    """The smallest request that makes LM Studio load `model_id`, with its idle TTL."""
    if embedding:
        body: dict[str, Any] = {"model": model_id, "input": ["load"], "ttl": ttl}
        path = "embeddings"
    else:
        body = {
            "model": model_id,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 1,
            "temperature": 0.0,
            "ttl": ttl,
        }
        path = "chat/completions"
    await provider._request_json("POST", f"{provider.base_url}/{path}", body)


async def load_selection(
    provider: LMStudioProvider, selection: Selection, config: LoadConfig, *, explicit: bool
) -> ConfiguredLoad | None:
    """Load the chosen model when it is not loaded; when it is, and a configuration was asked
    for (`explicit`) that it does not run with, load it again with it (LM Studio's load is not
    idempotent: loading a loaded model adds an instance, so the old one is unloaded first).
    None: nothing to do."""
    embedding = selection.tasks == ("embedding",)
    current = find(await provider.list_models(), selection.model)
    if current is not None and current.state == "loaded":
        if not explicit or not config.body():
            return None
        running = (await loaded_configs(provider)).get(current.id)
        if running is None or not config.differs_from(running):
            return None
        await unload(provider, current.id)
    elif not selection.needs_load and current is None:
        return None
    return await load_configured(provider, selection.model, config, embedding=embedding)
