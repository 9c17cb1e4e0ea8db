"""Are a next-edit format's special tokens read as single tokens by the serving backend?

A model trained on `<|file_sep|>` reads garbage when the backend's tokenizer splits it into
`<`, `|`, `file`, ... (a GGUF converted without its added tokens, a wrong tokenizer): the
prompt then looks like nothing the model saw in training. Counted with the backend's own
tokenizer when it has one (llama.cpp `/tokenize`), else through `/v1/completions`: the
prompt tokens of a request with the token minus those of the same request without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from aigents_lsp.providers.base import CompletionParams, Provider, ProviderError

_BASE = "x = 1\n"


async def _count(provider: Provider, model: str | None, text: str) -> int | None:
    counted = await provider.count_tokens(text, model)
    if counted:
        return counted
    result = await provider.complete(
        CompletionParams(
            prompt=text, model=model, max_tokens=1, temperature=0.0, include_usage=True
        )
    )
    return result.usage.prompt_tokens if result.usage and result.usage.prompt_tokens else None


async def token_counts(
    provider: Provider, model: str | None, tokens: Sequence[str]
) -> dict[str, int | None]:
    """How many tokens each of `tokens` takes (None: the backend does not say)."""
    found: dict[str, int | None] = {}
    try:
        base = await _count(provider, model, _BASE)
    except ProviderError:
        return dict.fromkeys(tokens)
    for token in tokens:
        try:
            total = await _count(provider, model, _BASE + token)
        except ProviderError:
            total = None
        found[token] = total - base if total is not None and base is not None else None
    return found
