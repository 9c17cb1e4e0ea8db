"""The built-in FIM templates: the tokens each code model family was trained with, and which
family a model gets from its id and LM Studio's `arch` field. Models without FIM tokens get the
prefix-only template, chat-only backends the chat "fill the hole" template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from aigents_lsp.completion.templates import (
    DEFAULT_FILE_PATH,
    DEFAULT_REPO_NAME,
    FILL_MARKER,
    FimInput,
    FimTemplate,
    Snippet,
    custom_template,
)

# --- repository context as comments, for templates without repo-level tokens -----------------

_HASH_COMMENT = "py pyi sh bash zsh fish rb pl pm r yaml yml toml nim jl ex exs ps1 cmake mk nix tf"
_DASH_COMMENT = "lua sql hs elm ada adb ads"
_SEMI_COMMENT = "lisp clj cljs cljc el scm rkt asm ini"
_BLOCK_COMMENT = {"css": ("/*", " */"), "html": ("<!--", " -->"), "xml": ("<!--", " -->")}
_COMMENT_BY_EXT: dict[str, tuple[str, str]] = {
    **{ext: ("#", "") for ext in _HASH_COMMENT.split()},
    **{ext: ("--", "") for ext in _DASH_COMMENT.split()},
    **{ext: (";", "") for ext in _SEMI_COMMENT.split()},
    **_BLOCK_COMMENT,
    **{ext: ("<!--", " -->") for ext in ("htm", "md", "svg", "vue", "svelte")},
}
_HASH_FILES = {"makefile", "dockerfile", "containerfile", "gemfile", "rakefile"}


def _comment_style(path: str | None) -> tuple[str, str]:
    name = (path or "").replace("\\", "/").rsplit("/", 1)[-1].lower()
    if name in _HASH_FILES:
        return ("#", "")
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    return _COMMENT_BY_EXT.get(ext, ("//", ""))


def context_as_comments(context: Sequence[Snippet], file_path: str | None) -> str:
    """Snippets from other files as line comments in the current file's syntax (or "")."""
    if not context:
        return ""
    start, end = _comment_style(file_path or context[0][0])
    lines: list[str] = []
    for path, text in context:
        lines.append(f"{start} Path: {path}{end}")
        lines.extend(f"{start} {line}".rstrip() + end for line in text.rstrip("\n").split("\n"))
        lines.append("")
    return "\n".join(lines)


# --- renderers ---------------------------------------------------------------------------------


def _repo_files(inp: FimInput, sep: str) -> str:
    """`{sep}{path}\n{text}\n` per snippet: the file-level packing of repo-level pretraining."""
    files = []
    for path, text in inp.context:
        body = text.rstrip("\n")
        files.append(f"{sep}{path}\n{body}\n")
    return "".join(files)


def _render_qwen(inp: FimInput) -> str:
    fim = f"<|fim_prefix|>{inp.prefix}<|fim_suffix|>{inp.suffix}<|fim_middle|>"
    if not inp.context:
        return fim
    files = _repo_files(inp, "<|file_sep|>")
    repo, path = inp.repo_name or DEFAULT_REPO_NAME, inp.file_path or DEFAULT_FILE_PATH
    return f"<|repo_name|>{repo}\n{files}<|file_sep|>{path}\n{fim}"


def _render_starcoder2(inp: FimInput) -> str:
    fim = f"<fim_prefix>{inp.prefix}<fim_suffix>{inp.suffix}<fim_middle>"
    if not inp.context:
        return fim
    files = _repo_files(inp, "<file_sep>")
    repo, path = inp.repo_name or DEFAULT_REPO_NAME, inp.file_path or DEFAULT_FILE_PATH
    return f"<repo_name>{repo}{files}<file_sep>{path}\n{fim}"


def _psm(before_prefix: str, before_suffix: str, after_suffix: str) -> Callable[[FimInput], str]:
    """Prefix-suffix-middle order; snippets from other files go into the prefix as comments."""

    def render(inp: FimInput) -> str:
        prefix = context_as_comments(inp.context, inp.file_path) + inp.prefix
        return f"{before_prefix}{prefix}{before_suffix}{inp.suffix}{after_suffix}"

    return render


def _render_codestral(inp: FimInput) -> str:
    prefix = context_as_comments(inp.context, inp.file_path) + inp.prefix
    return f"[SUFFIX]{inp.suffix}[PREFIX]{prefix}"


def _render_prefix_only(inp: FimInput) -> str:
    return context_as_comments(inp.context, inp.file_path) + inp.prefix


def _render_chat(inp: FimInput) -> str:
    parts = [f'<file path="{path}">\n{text.rstrip()}\n</file>' for path, text in inp.context]
    path = inp.file_path or DEFAULT_FILE_PATH
    parts.append(f'<file path="{path}">\n{inp.prefix}{FILL_MARKER}{inp.suffix}\n</file>')
    parts.append(f"Reply with only the code that replaces {FILL_MARKER}.")
    return "\n\n".join(parts)


# --- the registry ------------------------------------------------------------------------------

_QWEN_STOP = (
    "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
    "<|file_sep|>", "<|repo_name|>", "<|im_start|>", "<|im_end|>",
)  # fmt: skip
_DEEPSEEK_FIM = ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
# The instruct models' EOT is spelled with ASCII bars (`<|EOT|>`); the full-width spelling is a
# harmless guard for GGUF conversions that normalised it.
_DEEPSEEK_STOP = ("<｜end▁of▁sentence｜>", "<|EOT|>", "<｜EOT｜>", *_DEEPSEEK_FIM)
_STARCODER_FIM = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
_STARCODER_STOP = ("<|endoftext|>", *_STARCODER_FIM, "<file_sep>")
_CODELLAMA_STOP = ("<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>")
_CODESTRAL_STOP = ("[PREFIX]", "[SUFFIX]", "[MIDDLE]", "</s>")
_CODEGEMMA_STOP = (
    "<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
    "<eos>", "<end_of_turn>",
)  # fmt: skip
_GRANITE_STOP = ("<|endoftext|>", *_STARCODER_FIM)


def _fim(
    name: str,
    render: Callable[[FimInput], str],
    stop: tuple[str, ...],
    source: str,
    *,
    extra: tuple[str, ...] = (),
) -> FimTemplate:
    """A FIM template whose scrubbed tokens are its stops plus `extra`."""
    return FimTemplate(name, "fim", render, stop, (*stop, *extra), source)


_ALL: tuple[FimTemplate, ...] = (
    _fim("qwen-coder", _render_qwen, _QWEN_STOP, "Qwen2.5-Coder README: FIM and repo-level "
         "completion; Qwen3-Coder keeps the tokens", extra=("<|fim_pad|>",)),
    _fim("deepseek-coder", _psm(*_DEEPSEEK_FIM), _DEEPSEEK_STOP,
         "deepseek-ai/DeepSeek-Coder README, 'Code Insertion'"),
    _fim("deepseek-coder-v2", _psm(*_DEEPSEEK_FIM), _DEEPSEEK_STOP,
         "deepseek-ai/DeepSeek-Coder-V2 README, 'Code Insertion': the v1 tokens"),
    _fim("starcoder", _psm(*_STARCODER_FIM), _STARCODER_STOP,
         "bigcode/starcoder model card; SantaCoder, stable-code and CodeQwen1.5 share it"),
    _fim("starcoder2", _render_starcoder2, _STARCODER_STOP,
         "StarCoder2 paper: repository context with <repo_name>/<file_sep>",
         extra=("<repo_name>",)),
    _fim("codellama", _psm("<PRE> ", " <SUF>", " <MID>"), _CODELLAMA_STOP,
         "facebookresearch/codellama generation.py, infilling prompt"),
    _fim("codestral", _render_codestral, _CODESTRAL_STOP,
         "mistral-common FIM request encoding: [SUFFIX]suffix[PREFIX]prefix"),
    _fim("codegemma", _psm("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
         _CODEGEMMA_STOP, "Google CodeGemma model card, FIM prompt"),
    _fim("granite-code", _psm(*_STARCODER_FIM), _GRANITE_STOP,
         "ibm-granite/granite-code-models README: the StarCoder tokenizer"),
    FimTemplate("chat", "chat", _render_chat, (), (FILL_MARKER,),
                "ours: a fill-the-hole instruction for chat-only models"),
    FimTemplate("prefix-only", "prefix", _render_prefix_only, (), (),
                "ours: plain continuation for base models without FIM tokens"),
    FimTemplate("native", "fim", _render_prefix_only, (), (),
                "the server's own FIM (llama.cpp /infill, Ollama suffix): it applies the tokens"),
)  # fmt: skip

TEMPLATES: Mapping[str, FimTemplate] = MappingProxyType({t.name: t for t in _ALL})
"""Every built-in template by name."""

# Matched in order against the normalised model name (the first that matches wins).
_ID_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("codegemma", r"code-?gemma"),
        ("qwen-coder", r"qwen[\w.-]*?coder"),
        ("starcoder", r"codeqwen"),  # CodeQwen1.5 kept StarCoder's FIM tokens
        ("deepseek-coder-v2", r"deepseek[\w.-]*?coder[\w.-]*?v2"),
        ("deepseek-coder", r"deepseek[\w.-]*?coder"),
        ("starcoder2", r"starcoder-?2"),
        ("starcoder", r"starcoder|santacoder|stable-?code"),
        ("codellama", r"code-?llama"),
        ("codestral", r"codestral"),
        ("granite-code", r"granite[\w.-]*?code"),
    )
)
# LM Studio `arch` (GGUF general.architecture or the MLX model type) when the id says nothing.
# Most code models share a generic arch (qwen2, llama, gemma), so only distinctive ones count.
_ARCH_RULES: Mapping[str, str] = MappingProxyType(
    {
        "starcoder2": "starcoder2",
        "starcoder": "starcoder",
        "gpt_bigcode": "starcoder",
        "deepseek2": "deepseek-coder-v2",
    }
)


def normalize_model_id(model_id: str) -> str:
    """The model's own name: lower case, no publisher, `@quant`, `:instance` or `.gguf`."""
    name = model_id.strip().lower().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = name.split("@", 1)[0].split(":", 1)[0].removesuffix(".gguf")
    return re.sub(r"[\s_]+", "-", name)


def template_for_model(model_id: str | None, arch: str | None) -> FimTemplate:
    """The built-in template for a model: by id first, then by arch, else prefix-only."""
    if model_id:
        name = normalize_model_id(model_id)
        for template_name, pattern in _ID_RULES:
            if pattern.search(name):
                return TEMPLATES[template_name]
    arch_name = _ARCH_RULES.get((arch or "").strip().lower().replace("-", "_"))
    return TEMPLATES[arch_name or "prefix-only"]


def pick_template(
    model_id: str | None,
    arch: str | None,
    *,
    user_template: str | None = None,
    user_stop: Sequence[str] = (),
    chat_only: bool = False,
    native: bool = False,
) -> FimTemplate:
    """The template for a completion request.

    `chat_only` wins (a raw prompt cannot be sent to a backend that only chats), then the user's
    template (a built-in name such as "qwen-coder", or a string with {prefix}/{suffix}/{file}),
    then the backend's native FIM (`native`), then the model id, then LM Studio's `arch`;
    models without FIM tokens get "prefix-only".
    Raises TemplateError for an unusable user template.
    """
    if chat_only:
        return TEMPLATES["chat"]
    if user_template and user_template.strip():
        builtin = TEMPLATES.get(user_template.strip().lower())
        return builtin if builtin else custom_template(user_template, user_stop)
    if native:
        return TEMPLATES["native"]
    return template_for_model(model_id, arch)
