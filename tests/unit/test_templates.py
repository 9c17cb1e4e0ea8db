"""FIM templates: exact prompts, stops, picking by model id / arch, user templates, chat fill."""

from __future__ import annotations

import pytest

from aigents_lsp.completion.families import TEMPLATES, normalize_model_id, pick_template
from aigents_lsp.completion.templates import (
    CHAT_SYSTEM_PROMPT,
    FILL_MARKER,
    TemplateError,
    custom_template,
    extract_fill,
    strip_model_output,
)
from aigents_lsp.providers.reasoning import strip_think

PREFIX, SUFFIX = "def f(x):\n    return ", "\n\nprint(f(1))\n"

# --- exact prompts -----------------------------------------------------------------------

RENDERED = {
    "qwen-coder": f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
    "deepseek-coder": f"<｜fim▁begin｜>{PREFIX}<｜fim▁hole｜>{SUFFIX}<｜fim▁end｜>",
    "deepseek-coder-v2": f"<｜fim▁begin｜>{PREFIX}<｜fim▁hole｜>{SUFFIX}<｜fim▁end｜>",
    "starcoder": f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
    "starcoder2": f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
    "codellama": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
    "codestral": f"[SUFFIX]{SUFFIX}[PREFIX]{PREFIX}",
    "codegemma": f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
    "granite-code": f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
    "prefix-only": PREFIX,
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_template_renders_the_exact_prompt(name: str) -> None:
    assert TEMPLATES[name].render(PREFIX, SUFFIX) == RENDERED[name]


def test_every_template_is_tested_and_says_where_its_format_comes_from() -> None:
    assert set(TEMPLATES) == {*RENDERED, "chat", "native"}
    assert all(template.source for template in TEMPLATES.values())


STOPS = {
    "qwen-coder": {
        "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        "<|file_sep|>", "<|repo_name|>", "<|im_start|>", "<|im_end|>",
    },
    "deepseek-coder": {
        "<｜end▁of▁sentence｜>", "<|EOT|>", "<｜EOT｜>",
        "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
    },
    "starcoder": {"<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"},
    "codellama": {"<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>"},
    "codestral": {"[PREFIX]", "[SUFFIX]", "[MIDDLE]", "</s>"},
    "codegemma": {
        "<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
        "<eos>", "<end_of_turn>",
    },
    "granite-code": {"<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
    "prefix-only": set(),
    "chat": set(),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(STOPS))
def test_template_stops(name: str) -> None:
    assert set(TEMPLATES[name].stop) == STOPS[name]


def test_deepseek_v2_uses_the_v1_tokens() -> None:
    assert TEMPLATES["deepseek-coder-v2"].stop == TEMPLATES["deepseek-coder"].stop


def test_fim_templates_scrub_their_stops_from_output() -> None:
    for template in TEMPLATES.values():
        assert set(template.stop) <= set(template.tokens), template.name


# --- repository context --------------------------------------------------------------------

CONTEXT = [("lib/util.py", "def helper():\n    return 1\n"), ("README.md", "# Demo")]


def test_qwen_repo_level_prompt() -> None:
    prompt = TEMPLATES["qwen-coder"].render(
        "x = ", "\n", context=CONTEXT, file_path="app/main.py", repo_name="demo"
    )
    assert prompt == (
        "<|repo_name|>demo\n"
        "<|file_sep|>lib/util.py\ndef helper():\n    return 1\n"
        "<|file_sep|>README.md\n# Demo\n"
        "<|file_sep|>app/main.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    )


def test_starcoder2_repo_level_prompt() -> None:
    prompt = TEMPLATES["starcoder2"].render("x = ", "", context=CONTEXT[:1], file_path="main.py")
    assert prompt == (
        "<repo_name>workspace<file_sep>lib/util.py\ndef helper():\n    return 1\n"
        "<file_sep>main.py\n<fim_prefix>x = <fim_suffix><fim_middle>"
    )


def test_templates_without_repo_tokens_put_context_in_comments_of_the_file_language() -> None:
    snippet = [("lib/util.py", "def helper():\n    return 1\n")]
    prompt = TEMPLATES["deepseek-coder"].render("x = ", "", context=snippet, file_path="a.py")
    assert prompt == (
        "<｜fim▁begin｜># Path: lib/util.py\n# def helper():\n#     return 1\n"
        "x = <｜fim▁hole｜><｜fim▁end｜>"
    )
    ts = TEMPLATES["prefix-only"].render("let x = ", "", context=snippet, file_path="src/a.ts")
    assert ts.startswith("// Path: lib/util.py\n// def helper():\n")
    assert ts.endswith("\nlet x = ")
    lua = TEMPLATES["codestral"].render("x = ", "", context=snippet, file_path="init.lua")
    assert lua.startswith("[SUFFIX][PREFIX]-- Path: lib/util.py\n")


def test_no_context_means_a_plain_prompt() -> None:
    assert TEMPLATES["qwen-coder"].render("a", "b", file_path="x.py") == (
        "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    )
    assert TEMPLATES["prefix-only"].render("a", "b", file_path="x.py") == "a"


# --- picking a template ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "arch", "expected"),
    [
        ("qwen/qwen2.5-coder-7b-instruct", "qwen2", "qwen-coder"),
        ("lmstudio-community/Qwen2.5-Coder-1.5B-Instruct-GGUF", None, "qwen-coder"),
        ("qwen2.5-coder-7b-instruct@q4_k_m", None, "qwen-coder"),
        ("qwen2.5-coder-7b-instruct:2", None, "qwen-coder"),
        ("qwen/qwen3-coder-30b-a3b-instruct", "qwen3moe", "qwen-coder"),
        ("Qwen2.5 Coder 7B Instruct", None, "qwen-coder"),
        ("qwen2.5-coder:1.5b-base", None, "qwen-coder"),  # an Ollama tag
        ("qwen2.5-7b-instruct", "qwen2", "prefix-only"),  # no FIM training
        ("deepseek-r1-distill-qwen-7b", "qwen2", "prefix-only"),
        ("Qwen/CodeQwen1.5-7B-GGUF", "qwen2", "starcoder"),
        ("deepseek-ai/deepseek-coder-6.7b-instruct", "llama", "deepseek-coder"),
        ("deepseek-coder-7b-instruct-v1.5", "llama", "deepseek-coder"),
        ("lmstudio-community/DeepSeek-Coder-V2-Lite-Instruct-GGUF", None, "deepseek-coder-v2"),
        ("deepseek-coder-v2-lite-base@q8_0", None, "deepseek-coder-v2"),
        ("bigcode/starcoder2-3b", None, "starcoder2"),
        ("second-state/StarCoder2-7B-GGUF/starcoder2-7b-Q4_K_M.gguf", None, "starcoder2"),
        ("bigcode/starcoderbase-1b", None, "starcoder"),
        ("bigcode/santacoder", None, "starcoder"),
        ("stabilityai/stable-code-3b", "stablelm", "starcoder"),
        ("stablelm-2-1_6b", "stablelm", "prefix-only"),
        ("TheBloke/CodeLlama-7B-GGUF", "llama", "codellama"),
        ("codellama-13b-instruct", None, "codellama"),
        ("mistralai/Codestral-22B-v0.1", "llama", "codestral"),
        ("codestral-22b-v0.1@q4_k_m", None, "codestral"),
        ("google/codegemma-2b", "gemma", "codegemma"),
        ("codegemma-7b-it:2", "gemma", "codegemma"),
        ("google/gemma-3-270m", "gemma3", "prefix-only"),  # plain gemma has no FIM tokens
        ("gemma-2-9b-it", "gemma2", "prefix-only"),
        ("ibm-granite/granite-3b-code-base-2k", "llama", "granite-code"),
        ("granite-8b-code-instruct-4k", None, "granite-code"),
        ("ibm/granite-3.3-8b-instruct", "granite", "prefix-only"),
        ("HuggingFaceTB/SmolLM2-135M", "llama", "prefix-only"),
        ("meta-llama/Llama-3.2-1B", "llama", "prefix-only"),
        ("my-finetune", "starcoder2", "starcoder2"),  # the arch decides when the id cannot
        ("local-model", "gpt_bigcode", "starcoder"),
        ("mystery", "deepseek2", "deepseek-coder-v2"),
        (None, "starcoder2", "starcoder2"),
        (None, None, "prefix-only"),
        ("", "", "prefix-only"),
    ],
)
def test_pick_template_by_id_and_arch(
    model_id: str | None, arch: str | None, expected: str
) -> None:
    assert pick_template(model_id, arch).name == expected


def test_normalize_model_id() -> None:
    assert normalize_model_id("lmstudio-community/Qwen2.5-Coder-1.5B-Instruct-GGUF") == (
        "qwen2.5-coder-1.5b-instruct-gguf"
    )
    assert normalize_model_id("qwen2.5-coder-7b-instruct@q4_k_m") == "qwen2.5-coder-7b-instruct"
    assert normalize_model_id("publisher/model:2") == "model"
    assert normalize_model_id("C:\\models\\starcoder2-3b.Q4.gguf") == "starcoder2-3b.q4"


def test_chat_only_wins() -> None:
    assert pick_template("qwen2.5-coder-7b", None, chat_only=True).name == "chat"
    assert pick_template("x", None, user_template="{prefix}", chat_only=True).name == "chat"


def test_user_template_may_name_a_builtin() -> None:
    assert pick_template("my-finetune", None, user_template="Qwen-Coder").name == "qwen-coder"


# --- user templates ----------------------------------------------------------------------


def test_user_template_substitutes_without_reading_braces_in_code() -> None:
    template = pick_template(
        "anything", None, user_template="<PRE> {prefix} <SUF>{suffix} <MID>", user_stop=["<EOT>"]
    )
    prefix = 'd = {"a": 1}\nf"{x}" + "{suffix}" + "{0}"'
    suffix = "\n}{prefix}{"
    assert template.render(prefix, suffix) == f"<PRE> {prefix} <SUF>{suffix} <MID>"
    assert template.kind == "fim"
    assert template.stop == ("<EOT>",)
    assert set(template.tokens) == {"<PRE>", "<SUF>", "<MID>", "<EOT>"}


def test_user_template_file_placeholder_and_prefix_only_kind() -> None:
    template = custom_template("// {file}\n{prefix}")
    assert template.render("x = ", "ignored", file_path="src/a.ts") == "// src/a.ts\nx = "
    assert template.kind == "prefix"
    assert template.render("x", "") == "// \nx"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("<fim_suffix>{suffix}<fim_middle>", "must contain {prefix}"),
        ("{prefix}{sufix}", "unknown placeholder {sufix}"),
    ],
)
def test_user_template_errors_say_what_to_fix(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        pick_template(None, None, user_template=template)


# --- chat fill-the-hole ------------------------------------------------------------------


def test_chat_fill_messages() -> None:
    messages = TEMPLATES["chat"].messages(
        "def f():\n    ", "\n", context=[("util.py", "X = 1\n")], file_path="main.py"
    )
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content == CHAT_SYSTEM_PROMPT
    assert "no markdown fences" in CHAT_SYSTEM_PROMPT
    assert messages[1].content == (
        '<file path="util.py">\nX = 1\n</file>\n\n'
        f'<file path="main.py">\ndef f():\n    {FILL_MARKER}\n\n</file>\n\n'
        f"Reply with only the code that replaces {FILL_MARKER}."
    )


def test_raw_prompt_templates_have_no_chat_messages() -> None:
    with pytest.raises(ValueError, match="raw prompt"):
        TEMPLATES["qwen-coder"].messages("a", "b")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("return x + 1", "return x + 1"),
        ("```python\nreturn x + 1\n```", "return x + 1"),
        ("Here is the missing code:\n```py\nreturn x + 1\n```\nThis adds one.", "return x + 1"),
        ("Sure! Here's the code:\nreturn x + 1", "return x + 1"),
        ("```\nreturn x + 1", "return x + 1"),  # a stream cut before the closing fence
        (f"return x + 1{FILL_MARKER}", "return x + 1"),
        ("<think>one more</think>\n\nreturn x + 1", "return x + 1"),
        ("    for i in range(3):\n        yield i\n", "    for i in range(3):\n        yield i"),
    ],
)
def test_extract_fill(answer: str, expected: str) -> None:
    assert extract_fill(answer) == expected


def test_extract_fill_drops_an_echo_of_the_cursor_line() -> None:
    assert extract_fill("total = price * qty", prefix="def f():\n    total = ") == " price * qty"
    assert extract_fill("return x", prefix="    ret") == "urn x"


# --- cleaning output -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<think>plan</think>\nx = 1", "x = 1"),
        ("<think>a</think>x<think>b</think>y", "xy"),
        ("<think>still thinking", ""),
        ("reasoning from the prompt</think>\n\nx = 1", "x = 1"),
        ("x = 1", "x = 1"),
        ("  indented", "  indented"),
    ],
)
def test_strip_think(raw: str, expected: str) -> None:
    assert strip_think(raw) == expected


def test_strip_model_output_cuts_at_tokens_and_drops_echoes() -> None:
    qwen = TEMPLATES["qwen-coder"]
    assert qwen.clean("<|fim_middle|>x + 1<|endoftext|><|fim_prefix|>junk") == "x + 1"
    assert qwen.clean("<think>hmm</think>\nx<|file_sep|>other.py") == "x"
    deepseek = TEMPLATES["deepseek-coder"]
    assert deepseek.clean("y()<｜end▁of▁sentence｜>") == "y()"
    # Only the template's own tokens count: `</s>` is HTML for a Qwen model.
    assert qwen.clean("<s>old</s> price") == "<s>old</s> price"
    assert strip_model_output("a<EOT>b", ("<EOT>",)) == "a"


def test_native_fim_is_used_unless_chat_only_or_a_user_template() -> None:
    assert pick_template("qwen2.5-coder:1.5b", None, native=True).name == "native"
    assert pick_template("gpt-4.1-mini", None, native=True, chat_only=True).name == "chat"
    assert pick_template("x", None, user_template="qwen-coder", native=True).name == "qwen-coder"
