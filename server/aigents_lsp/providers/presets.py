"""Provider presets: the provider class of each preset and its API key from the environment.
The presets' names and default addresses are in `aigents_lsp/addresses.py` (config reads them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aigents_lsp.addresses import PRESETS, default_base

if TYPE_CHECKING:
    from aigents_lsp.providers.base import Provider


def key_from_env(provider: str, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    preset = PRESETS.get(provider)
    for name in preset.key_env if preset else ():
        if env.get(name):
            return env[name]
    return None


def build_provider(
    provider: str,
    api_base: str | None,
    *,
    api_key: str | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 600.0,
    ttl: int | None = None,
    draft_model: str | None = None,
) -> Provider:
    """A provider for a preset (not `auto` or `embedded`, which the Backend builds);
    `draft_model`: LM Studio's speculative decoding (other presets take none)."""
    base = api_base or default_base(provider)
    key = api_key or key_from_env(provider)
    common: dict[str, Any] = {
        "api_key": key,
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
    }
    if provider == "lmstudio":
        from aigents_lsp.providers.lmstudio import LMStudioProvider

        return LMStudioProvider(base, ttl=ttl, draft_model=draft_model, **common)
    if provider == "ollama":
        from aigents_lsp.providers.ollama import OllamaProvider

        return OllamaProvider(base, ttl=ttl, **common)
    if provider in ("llamacpp", "llamafile"):
        from aigents_lsp.providers.llamacpp import LlamaCppProvider

        return LlamaCppProvider(base, name=provider, **common)
    if provider == "vllm":
        from aigents_lsp.providers.cloud import VLLMProvider

        return VLLMProvider(base, **common)
    if provider == "openai":
        from aigents_lsp.providers.cloud import OpenAIProvider

        return OpenAIProvider(base, **common)
    if provider == "openai-compatible":
        from aigents_lsp.providers.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(base, **common)
    raise ValueError(f"unknown provider preset {provider!r}")
