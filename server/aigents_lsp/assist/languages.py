"""Languages as assist tasks name them: one id per language, its display name, and its conventions
for doc comments, test frameworks and test imports.

`canonical_language` reduces fence info strings and LSP language ids to one id ("py", "python3"
and "python" are all "python"); the prompts and the answer parsing compare those ids.
"""

from __future__ import annotations

import posixpath

_LANGUAGE_ALIASES = {
    "py": "python", "py3": "python", "python3": "python", "pyi": "python",
    "js": "javascript", "jsx": "javascript", "javascriptreact": "javascript",
    "mjs": "javascript", "cjs": "javascript", "node": "javascript",
    "ts": "typescript", "tsx": "typescript", "typescriptreact": "typescript", "mts": "typescript",
    "rs": "rust", "golang": "go", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
    "h": "c", "cs": "csharp", "c#": "csharp", "kt": "kotlin", "kts": "kotlin", "rb": "ruby",
    "sh": "shell", "bash": "shell", "zsh": "shell", "shellscript": "shell", "yml": "yaml",
    "md": "markdown",
}  # fmt: skip
# Display names of the canonical ids (the others are capitalized: "nim" -> "Nim").
_NAMES = {
    "python": "Python", "javascript": "JavaScript", "typescript": "TypeScript", "go": "Go",
    "rust": "Rust", "java": "Java", "c": "C", "cpp": "C++", "csharp": "C#", "kotlin": "Kotlin",
    "swift": "Swift", "ruby": "Ruby", "php": "PHP", "lua": "Lua", "shell": "shell script",
    "scala": "Scala", "haskell": "Haskell", "elixir": "Elixir", "dart": "Dart", "zig": "Zig",
    "sql": "SQL", "html": "HTML", "css": "CSS", "yaml": "YAML", "toml": "TOML", "json": "JSON",
    "markdown": "Markdown", "r": "R", "julia": "Julia", "vue": "Vue", "svelte": "Svelte",
}  # fmt: skip
_EXTENSIONS = {"ex": "elixir", "exs": "elixir", "hs": "haskell", "jl": "julia"}

_DOC_STYLE = {
    "python": "a PEP 257 docstring as the first statement inside the function or class body",
    "javascript": "a JSDoc comment (/** ... */) directly above it, with @param and @returns",
    "typescript": "a TSDoc comment (/** ... */) directly above it, with @param and @returns",
    "rust": "/// doc comments directly above the item (with # Errors / # Panics if relevant)",
    "go": 'a // comment directly above it that starts with the declared name ("// Area ...")',
    "java": "a Javadoc comment (/** ... */) above it, with @param, @return and @throws",
    "kotlin": "a KDoc comment (/** ... */) above it, with @param and @return",
    "csharp": "/// XML documentation comments above it (<summary>, <param>, <returns>)",
    "c": "a Doxygen comment (/** ... */) above it, with @brief, @param and @return",
    "cpp": "a Doxygen comment (/** ... */) above it, with @brief, @param and @return",
    "swift": "/// documentation comments above it (- Parameters:, - Returns:)",
    "ruby": "YARD comments (# with @param and @return) above the method",
    "php": "a PHPDoc comment (/** ... */) above it, with @param and @return",
    "lua": "LuaLS annotations (--- with @param and @return) above the function",
    "shell": "# comments above the function: what it does, its arguments and its output",
}
_TEST_FRAMEWORK = {
    "python": "pytest: plain `def test_...` functions with assert, pytest.mark.parametrize",
    "go": "the standard testing package: table-driven `func TestXxx(t *testing.T)`, same package",
    "rust": "a `#[cfg(test)] mod tests { use super::*; ... }` module with `#[test]` functions",
    "java": "JUnit 5 (org.junit.jupiter.api.Test, Assertions)",
    "kotlin": "JUnit 5 with kotlin.test assertions",
    "csharp": "xUnit ([Fact], [Theory])",
    "cpp": "GoogleTest (TEST and EXPECT_EQ)",
    "c": "a small test program with assert.h",
    "swift": "XCTest",
    "ruby": "RSpec",
    "php": "PHPUnit",
}


def canonical_language(tag: str) -> str:
    """A fence info string or LSP language id reduced to one name: "py" -> "python"."""
    name = tag.strip().lower().split(":", 1)[0].strip("{}.")
    return _LANGUAGE_ALIASES.get(name, name)


def language_name(language: str, file_path: str | None = None) -> tuple[str, str]:
    """(Display name, fence tag) of an LSP language id, guessed from the path when unknown."""
    lang = canonical_language(language) if language and language != "plaintext" else ""
    if not lang and file_path and "." in file_path.rsplit("/", 1)[-1]:
        extension = file_path.rsplit(".", 1)[-1].lower()
        lang = _EXTENSIONS.get(extension) or canonical_language(extension)
    if not lang:
        return "code", ""
    return _NAMES.get(lang, lang.capitalize()), lang


def doc_style(lang: str, name: str) -> str:
    """Where the documentation of a `lang` function or class goes and what it holds (`name`: the
    language's display name, for languages without a known convention)."""
    default = f"the idiomatic {name} documentation comment, placed where its tools expect it"
    return _DOC_STYLE.get(lang, default)


def testing_framework(lang: str, name: str, *samples: str | None) -> str:
    """The framework to write `lang` tests with; JavaScript and TypeScript pick Jest or Vitest
    from `samples` (the existing tests, the code under test)."""
    if lang in ("javascript", "typescript"):
        return _js_framework(*samples)
    return _TEST_FRAMEWORK.get(lang, f"the standard {name} test framework")


def _js_framework(*texts: str | None) -> str:
    joined = "\n".join(text for text in texts if text)
    if "vitest" in joined:
        return "Vitest (import { describe, it, expect } from 'vitest')"
    if "jest" in joined or "@jest/globals" in joined:
        return "Jest (describe, it, expect)"
    return "Jest-style describe/it/expect (works with Jest and Vitest)"


def tests_import_hint(lang: str, file_path: str | None, test_path: str | None) -> str:
    """How the tests import the code under test, from the two workspace-relative paths."""
    if not file_path or file_path.startswith("/") or ":" in file_path:
        return ""
    stem = file_path.rsplit(".", 1)[0]
    if lang == "python":
        module = stem.removeprefix("src/").removesuffix("/__init__").replace("/", ".")
        return f"Import the code under test from `{module}`."
    if lang in ("javascript", "typescript") and test_path:
        relative = posixpath.relpath(stem, posixpath.dirname(test_path) or ".")
        relative = relative if relative.startswith(".") else f"./{relative}"
        return f'Import the code under test from "{relative}".'
    if lang == "rust":
        return "Use `use super::*;` inside the tests module."
    return f"The code under test is in `{file_path}`."
