"""Where each backend listens: the presets' names, labels, default addresses and key variables,
and which addresses are this machine. It sits below `config.py` (a setting's default address)
and `providers/` (the preset classes, the loopback checks), which both read it.

A preset name is what `provider` (and each entry of `routes`) names: `lmstudio`, `ollama`,
`llamacpp`, `llamafile`, `vllm`, `openai`, `openai-compatible`, `embedded`. `auto` is not a preset
but a choice made at run time (LM Studio when it answers, else the embedded engine).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


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
