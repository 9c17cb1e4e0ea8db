"""Provider presets: each backend's default address, key variable and provider class.

A preset name is what `provider` (and each entry of `routes`) names: `lmstudio`, `ollama`,
`llamacpp`, `llamafile`, `vllm`, `openai`, `openai-compatible`, `embedded`. `auto` is not a preset
but a choice made at run time (LM Studio when it answers, else the embedded engine).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aigents_lsp.providers.base import Provider


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    api_base: str
    key_env: tuple[str, ...] = ()
    """Environment variables read for the API key when `api_key` is unset."""


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        Preset("lmstudio", "LM Studio", "http://localhost:1234/v1", ("LM_API_TOKEN",)),
        Preset("ollama", "Ollama", "http://localhost:11434/v1", ("OLLAMA_API_KEY",)),
        Preset("llamacpp", "llama.cpp server", "http://localhost:8080/v1", ("LLAMA_API_KEY",)),
        Preset("llamafile", "llamafile", "http://localhost:8080/v1"),
        Preset("vllm", "vLLM", "http://localhost:8000/v1", ("VLLM_API_KEY",)),
        Preset("openai", "OpenAI", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
        Preset("openai-compatible", "OpenAI-compatible server", "http://localhost:1234/v1"),
        Preset("embedded", "embedded llama.cpp engine", "embedded://"),
    )
}
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def default_base(provider: str) -> str:
    """The preset's address (`auto` looks for LM Studio at its default address)."""
    preset = PRESETS.get(provider) or PRESETS["lmstudio"]
    return preset.api_base


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine."""
    return url.startswith("embedded://") or is_loopback_host(urlsplit(url).hostname or "")


def is_loopback_host(host: str) -> bool:
    """Whether a host name or address is this machine (`localhost`, 127.0.0.0/8, ::1)."""
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
