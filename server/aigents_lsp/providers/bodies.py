"""The JSON bodies other than completions, as plain data: model lists (`/v1/models`, LM Studio's
`/api/v0/models` and `/api/v1/models`, llama.cpp's `meta`, vLLM's `max_model_len`) and
embeddings; and the JSON numbers they (and the completion stream) carry."""

from __future__ import annotations

from aigents_lsp.providers.base import ModelInfo, ModelState, ModelType


def json_number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans too)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def json_int(value: object) -> int | None:
    """A JSON integer; None for anything else (booleans too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


_TYPES: dict[str, ModelType] = {
    "llm": "llm",
    "vlm": "vlm",
    "embeddings": "embeddings",
    "embedding": "embeddings",
}
_STATES: dict[str, ModelState] = {
    "loaded": "loaded",
    "not-loaded": "not-loaded",
    "loading": "loading",
}
_CAPABILITY_NAMES = {"trained_for_tool_use": "tool_use"}


def _capabilities(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    if isinstance(value, dict):
        return tuple(_CAPABILITY_NAMES.get(str(key), str(key)) for key, on in value.items() if on)
    return ()


def model_from_wire(entry: object) -> ModelInfo | None:
    """One model entry of `/v1/models`, LM Studio `/api/v0/models` or `/api/v1/models`."""
    if not isinstance(entry, dict):
        return None
    model_id = entry.get("id") or entry.get("key") or entry.get("model")
    if not isinstance(model_id, str) or not model_id:
        return None
    kind = entry.get("type")
    state = entry.get("state")
    loaded = json_int(entry.get("loaded_context_length"))
    instances = entry.get("loaded_instances")
    if isinstance(instances, list):  # LM Studio /api/v1/models
        state = "loaded" if instances else "not-loaded"
        config = instances[0].get("config") if instances and isinstance(instances[0], dict) else {}
        loaded = loaded or (
            json_int(config.get("context_length")) if isinstance(config, dict) else None
        )
    meta = entry.get("meta")
    if isinstance(meta, dict):  # llama.cpp: the context the server really runs with
        loaded = loaded or json_int(meta.get("n_ctx"))
    quant = entry.get("quantization")
    quant = quant.get("name") if isinstance(quant, dict) else quant
    arch = entry.get("arch") or entry.get("architecture")
    publisher = entry.get("publisher")
    return ModelInfo(
        id=model_id,
        type=_TYPES.get(kind, "unknown") if isinstance(kind, str) else "unknown",
        state=_STATES.get(state, "unknown") if isinstance(state, str) else "unknown",
        max_context_length=json_int(entry.get("max_context_length"))
        or json_int(entry.get("max_model_len"))  # vLLM
        or (json_int(meta.get("n_ctx_train")) if isinstance(meta, dict) else None),
        loaded_context_length=loaded,
        arch=arch if isinstance(arch, str) else None,
        quantization=quant if isinstance(quant, str) else None,
        publisher=publisher if isinstance(publisher, str) else None,
        capabilities=_capabilities(entry.get("capabilities")),
    )


def models_from_body(body: object) -> list[ModelInfo] | None:
    """The model list of a models body (`data` or `models` array), None if it is not one."""
    if not isinstance(body, dict):
        return None
    entries = body.get("data") if isinstance(body.get("data"), list) else body.get("models")
    if not isinstance(entries, list):
        return None
    return [model for model in map(model_from_wire, entries) if model is not None]


def embeddings_from_body(body: object, count: int) -> list[list[float]] | str:
    """The vectors of an embeddings body in input order, or a description of what is wrong."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return "the embeddings answer has no data list"
    vectors: list[tuple[int, list[float]]] = []
    for position, item in enumerate(data):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, list) or not all(json_number(x) is not None for x in vector):
            return f"embedding {position} is not a list of numbers"
        index = json_int(item.get("index")) if isinstance(item, dict) else None
        vectors.append((position if index is None else index, [float(x) for x in vector]))
    if len(vectors) != count:
        return f"asked for {count} embeddings, got {len(vectors)}"
    return [vector for _, vector in sorted(vectors, key=lambda pair: pair[0])]
