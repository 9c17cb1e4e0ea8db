"""The foundation's completion engine: line mode, prompt shape, cleaning."""

from __future__ import annotations

from aigents_lsp.completion.engine import (
    CompletionRequest,
    build_prompt,
    clean,
    wants_multiline,
)


def _request(prefix: str, suffix: str = "") -> CompletionRequest:
    return CompletionRequest(uri="file:///x.py", version=1, prefix=prefix, suffix=suffix)


def test_multiline_after_block_opener_on_empty_line() -> None:
    assert wants_multiline("def f(x):\n    ", "\n")
    assert wants_multiline("if (x) {\n  ", "\n}")


def test_single_line_mid_line_or_after_plain_statement() -> None:
    assert not wants_multiline("x = foo(", ")\n")
    assert not wants_multiline("x = 1\n", "")
    assert not wants_multiline("def f(x):\n    return ", "\n")


def test_qwen_coder_gets_fim_tokens_and_stops() -> None:
    prompt = build_prompt("qwen2.5-coder-7b-instruct", "a = ", "\nb = 2")
    assert prompt.prompt == "<|fim_prefix|>a = <|fim_suffix|>\nb = 2<|fim_middle|>"
    assert "<|endoftext|>" in prompt.stop


def test_models_without_fim_get_the_prefix_only() -> None:
    prompt = build_prompt("gemma-3-270m", "x" * 5000, "suffix")
    assert prompt.prompt == "x" * 3000
    assert prompt.stop == ()


def test_clean_single_line_drops_rest_and_doubled_closer() -> None:
    request = _request("print(", ")\n")
    assert clean('"hi")\nmore', request, multiline=False) == '"hi"'


def test_clean_rejects_whitespace_only() -> None:
    assert clean("   \n  ", _request("x = "), multiline=True) == ""


def test_clean_multiline_caps_lines() -> None:
    text = "\n".join(f"    line{i}" for i in range(20))
    assert clean(text, _request("def f():\n"), multiline=True).count("\n") == 7
