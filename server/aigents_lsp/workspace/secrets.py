"""Obvious secrets in text bound for a model, replaced by `<redacted:KIND>` placeholders.

Each rule is a precompiled regex plus a judge that can decline a match (a value that is code, a
placeholder, or too short). Rules run in order, token formats before the generic
`password = "..."` rule, so a token is named by its kind. Speed: every token pattern starts with
a literal (the regex engine then skips ahead with a fast substring search), and the generic rule
is only tried where one of its keywords starts. A redaction never removes a newline, so line
numbers, and the columns of every line without a secret, are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_Judge = Callable[[re.Match[str]], str | None]  # the replacement text, or None to keep the match
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _placeholder(kind: str, original: str = "") -> str:
    """`<redacted:kind>`, followed by as many newlines as `original` had."""
    return f"<redacted:{kind}>" + "\n" * original.count("\n")


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    judge: _Judge
    # Where a match can start, found in the lower-cased text: a case-sensitive search for words
    # is many times faster than a case-insensitive one.
    starts: re.Pattern[str] | None = None


def _replace_group(match: re.Match[str], group: str, kind: str) -> str:
    """The match with only `group` redacted: keys, quotes and user names stay readable."""
    start, end = match.start(group) - match.start(), match.end(group) - match.start()
    whole = match.group(0)
    return whole[:start] + _placeholder(kind, whole[start:end]) + whole[end:]


def _token(kind: str, body: str) -> _Rule:
    """A token with a known prefix, not glued to a longer name on either side."""
    pattern = re.compile(f"{body}(?![A-Za-z0-9_-])")

    def judge(match: re.Match[str]) -> str | None:
        glued = match.start() > 0 and match.string[match.start() - 1] in _NAME_CHARS
        return None if glued else _placeholder(kind, match.group(0))

    return _Rule(kind, pattern, judge)


# -- private keys ------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"(?P<begin>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)(?P<value>.*?)"
    r"(?P<end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",  # cut off: to the end
    re.DOTALL,
)
_END_MARKER = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_KEY_DATA = re.compile(r"[A-Za-z0-9+/=]{16}")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\\ \t")
_KEY_LINE = re.compile(
    r"[ \t]*(?:[A-Za-z0-9+/=]{16,}|=[A-Za-z0-9+/]{4}|(?:Proc-Type|DEK-Info|Version|Comment"
    r"|Hash|Charset): [^\n]*|)[ \t]*\r?"
)


def _key_body(match: re.Match[str]) -> str | None:
    """Keep the BEGIN and END lines (they tell the model what was there), blank the body."""
    body = match["value"]
    if not _KEY_DATA.search(body):
        return None  # already redacted, or an empty example
    lead = "\n" if body.startswith("\n") else ""
    return match["begin"] + lead + _placeholder("private-key", body[len(lead) :]) + match["end"]


def _redact_key_tails(text: str) -> tuple[str, int]:
    """Redact the key data right above an END marker whose BEGIN is not in the text, as when a
    context window starts inside a key. Runs after whole blocks are redacted."""
    pieces: list[str] = []
    done = count = 0
    for end in _END_MARKER.finditer(text):
        newline = text.rfind("\n", done, end.start())
        line_start, body_start = (newline + 1 if newline >= 0 else done), end.start()
        while body_start > line_start and text[body_start - 1] in _KEY_CHARS:
            body_start -= 1  # on the marker's own line, e.g. a JSON string "...\\n-----END"
        while body_start == line_start and body_start > done:  # whole lines above the marker
            newline = text.rfind("\n", done, body_start - 1)
            line_start = newline + 1 if newline >= 0 else done
            if not _KEY_LINE.fullmatch(text, line_start, body_start - 1):
                break
            body_start = line_start
        body = text[body_start : end.start()]
        if not _KEY_DATA.search(body):
            continue  # e.g. the END of a block redacted whole: only a placeholder above it
        pieces += [text[done:body_start], _placeholder("private-key", body), end[0]]
        done, count = end.end(), count + 1
    return "".join(pieces) + text[done:], count


# -- key = "value" assignments -----------------------------------------------------------------

# Values that name, reference or template a secret rather than being one.
_NOT_A_VALUE = re.compile(
    r"""\$\{|\$\(|\{\{|\{[\w.]*\}|<[^>]*>|%\(?\w*\)?[sd]|^\$[A-Za-z_]\w*$|^[*xX.•#-]+$|^your[_-]
    |changeme|change[_-]me|placeholder|replace[_-]?me|dummy|redacted
    |^(?:pass|passw(?:or)?d|pwd|secret|token|foo|bar|baz|test|user)$""",
    re.IGNORECASE | re.VERBOSE,
)
_CODE_LIKE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")  # a name or attribute chain
_FIELD_NAME = re.compile(r"[A-Za-z_.-]*(?:password|passwd|secret|token|key)", re.IGNORECASE)
_MIN_SECRET = 8

# `<key><sep><value>` where the key ends in a secret-ish word: `DB_PASSWORD=…`, `"apiKey": "…"`,
# `client_secret: …`, `password: str = "…"`, `'token' => '…'`. Quoted values (a missing closing
# quote is fine: the cursor may be inside), or bare values that end their line (config files).
_SECRET_WORD = (
    r"(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|client[_-]?secret"
    r"|private[_-]?key|auth[_-]?key)"
)
_ASSIGNMENT = re.compile(
    "(?P<key>"
    + _SECRET_WORD
    + r"""(?:[_-]?(?:key|value|str|string))?\d*)
    (?![\w-])
    (?P<sep>["']?\]?(?:[ \t]*:[ \t]*[A-Za-z_][\w.\[\]|, ]{0,40}?(?=[ \t]*=))?
        [ \t]*(?P<op>===?|:=|=>|=|:)[ \t]*)
    (?:(?P<prefix>[bBrRuU]{0,2})(?:"(?P<dq>[^"\\\n]*+(?:\\.[^"\\\n]*+)*+)
                    |'(?P<sq>[^'\\\n]*+(?:\\.[^'\\\n]*+)*+)
                    |`(?P<bq>[^`\\\n]*+(?:\\.[^`\\\n]*+)*+))
       |(?P<bare>[^\s'"`,;()\[\]{}<>]{8,}+)(?=[ \t]*(?:\#[^\n]*)?$))""",
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)


def _assignment_kind(match: re.Match[str]) -> str:
    start = match.start()  # back to the start of the whole name: `aws_secret_access_key`
    while start > 0 and match.string[start - 1] in _NAME_CHARS:
        start -= 1
    name = match.string[start : match.end("key")].lower()
    if "aws" in name and ("secret" in name or "access" in name):
        return "aws-secret-key"
    words = (("pass", "password"), ("token", "token"), ("api", "api-key"))
    return next((kind for word, kind in words if word in name), "secret")


def _judge_assignment(match: re.Match[str]) -> str | None:
    group = next(name for name in ("dq", "sq", "bq", "bare") if match[name] is not None)
    value = match[group]
    if len(value) < _MIN_SECRET or any(c.isspace() for c in value) or _NOT_A_VALUE.search(value):
        return None
    if _FIELD_NAME.fullmatch(value):
        return None  # "access_token", "new_password": a field's name, not its value
    if "r" in (match["prefix"] or "").lower() or ("[" in value and "]" in value):
        return None  # a raw string or a character class: a regex, not a secret
    if group == "bare" and match["op"].startswith("=="):
        return None  # `if token == expected:` compares with code, not with a literal
    if group == "bare" and _CODE_LIKE.fullmatch(value):
        env_style = match["sep"] == "="  # KEY=value with no spaces: a .env or shell line
        if not env_style and ("." in value or not any(c.isdigit() for c in value)):
            return None  # `password = user_password`, `token: self.token`
    return _replace_group(match, group, _assignment_kind(match))


# -- credentials in URLs and headers -----------------------------------------------------------

_URL_PASSWORD = re.compile(r"://(?P<user>[^\s:/?#@\"'<>]{1,256}):(?P<value>[^\s/?#@\"'<>]{1,256})@")
_BEARER = re.compile(r"Bearer[ \t]+(?P<value>[A-Za-z0-9._~+/-]{20,}+=*)")


def _judge_url(match: re.Match[str]) -> str | None:
    if _NOT_A_VALUE.search(match["value"]):
        return None
    return _replace_group(match, "value", "url-password")


def _judge_bearer(match: re.Match[str]) -> str | None:
    if not any(c.isdigit() for c in match["value"]):
        return None  # prose like "Bearer authentication", not a token
    return _replace_group(match, "value", "bearer-token")


_RULES: tuple[_Rule, ...] = (
    _Rule("private-key", _PRIVATE_KEY, _key_body),
    _token("aws-access-key", r"A(?:KIA|SIA)[A-Z0-9]{16}"),
    _token("github-token", r"gh[pousr]_[A-Za-z0-9]{36,255}"),
    _token("github-token", r"github_pat_[A-Za-z0-9_]{22,255}"),
    _token("gitlab-token", r"glpat-[A-Za-z0-9_-]{20,}"),
    _token("slack-token", r"xox[baprs]-[A-Za-z0-9-]{10,}"),
    _token("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    _token("stripe-key", r"sk_(?:live|test)_[A-Za-z0-9]{16,}"),
    _token("stripe-key", r"rk_(?:live|test)_[A-Za-z0-9]{16,}"),
    _token("anthropic-key", r"sk-ant-[A-Za-z0-9_-]{20,}"),
    _token("lmstudio-token", r"sk-lm-[A-Za-z0-9_-]{6,}:[A-Za-z0-9_-]{12,}"),
    _token("openai-key", r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{32,}|[A-Za-z0-9]{32,})"),
    _token("huggingface-token", r"hf_[A-Za-z0-9]{30,}"),
    _token("npm-token", r"npm_[A-Za-z0-9]{36}"),
    _token("pypi-token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    _token("google-api-key", r"AIza[0-9A-Za-z_-]{35}"),
    _token("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),
    _Rule("url-password", _URL_PASSWORD, _judge_url),
    _Rule("bearer-token", _BEARER, _judge_bearer),
    _Rule("secret", _ASSIGNMENT, _judge_assignment, re.compile(_SECRET_WORD)),
)


def _matches(rule: _Rule, text: str) -> Iterator[re.Match[str]]:
    if rule.starts is None:
        yield from rule.pattern.finditer(text)
        return
    lowered = text.lower()
    if len(lowered) != len(text):  # lowering changed offsets (rare letters): the slow scan
        yield from rule.pattern.finditer(text)
        return
    done = 0
    for start in rule.starts.finditer(lowered):
        if start.start() >= done and (match := rule.pattern.match(text, start.start())):
            done = match.end()
            yield match


def _apply(rule: _Rule, text: str) -> tuple[str, int]:
    pieces: list[str] = []
    done = count = 0
    for match in _matches(rule, text):
        if (new := rule.judge(match)) is not None:
            pieces += [text[done : match.start()], new]
            done, count = match.end(), count + 1
    return "".join(pieces) + text[done:], count


def redact(text: str) -> tuple[str, int]:
    """`text` with obvious secrets replaced by `<redacted:KIND>`, and how many were replaced."""
    total = 0
    for rule in _RULES:
        text, count = _apply(rule, text)
        total += count
        if rule.pattern is _PRIVATE_KEY and "PRIVATE KEY" in text:
            text, count = _redact_key_tails(text)
            total += count
    return text, total


def contains_secret(text: str) -> bool:
    """Whether `redact` would change `text` (stops at the first secret)."""
    for rule in _RULES:
        if any(rule.judge(match) is not None for match in _matches(rule, text)):
            return True
    return "PRIVATE KEY" in text and _redact_key_tails(text)[1] > 0
