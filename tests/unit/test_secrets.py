"""Secret redaction: each kind redacted, ordinary code left alone, lines kept, fast on 1 MB."""

from __future__ import annotations

import dataclasses
import random
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigents_lsp.workspace import secrets
from aigents_lsp.workspace.secrets import contains_secret, redact

GHP = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"  # 36 characters after the prefix
OPENAI_LEGACY = "sk-" + "T3BlbkFJ" * 6
OPENAI_PROJECT = "sk-proj-" + "Ab1_-Cd2" * 10
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
RSA_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAvx1f0mBZmJmR1pXsN6hcVYVzQhZ2pGgJmRHbVEpRmOqBG2xC
1xBQqTKXoZqhc3mPcQvYLm0vJ3iZvUu6m8VqK9Wq0n2ZsJm2E5aPzX7oT8vHbQ==
-----END RSA PRIVATE KEY-----"""

# (text, redacted text): one row per kind of secret.
REDACTED = [
    ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID=<redacted:aws-access-key>"),
    ("id = 'ASIAY34FZKBOKMUTVV7A'", "id = '<redacted:aws-access-key>'"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = <redacted:aws-secret-key>",
    ),
    (
        '"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",',
        '"AWS_SECRET_ACCESS_KEY": "<redacted:aws-secret-key>",',
    ),
    (f'headers = {{"token": "{GHP}"}}', 'headers = {"token": "<redacted:github-token>"}'),
    (f"GH={GHP.replace('ghp_', 'gho_')}", "GH=<redacted:github-token>"),
    (f"x = '{GHP.replace('ghp_', 'ghs_')}'", "x = '<redacted:github-token>'"),
    ("t = github_pat_11AAAAAAA0abcdefghijkl_MNOPQRSTUV", "t = <redacted:github-token>"),
    ("GITLAB_TOKEN=glpat-xYz12345678901234567", "GITLAB_TOKEN=<redacted:gitlab-token>"),
    ('slack("xoxb-1234567890-abcdefghij")', 'slack("<redacted:slack-token>")'),
    (
        "url: https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
        "url: <redacted:slack-webhook>",
    ),
    (
        "stripe.api_key = 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'",
        "stripe.api_key = '<redacted:stripe-key>'",
    ),
    ("key: rk_live_51H8abcdefghijklmnop", "key: <redacted:stripe-key>"),
    (
        f"client = OpenAI(api_key='{OPENAI_LEGACY}')",
        "client = OpenAI(api_key='<redacted:openai-key>')",
    ),
    (f"OPENAI_API_KEY={OPENAI_PROJECT}", "OPENAI_API_KEY=<redacted:openai-key>"),
    (
        "ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuv",
        "ANTHROPIC_API_KEY=<redacted:anthropic-key>",
    ),
    (
        "Authorization: Bearer sk-lm-Ab3dEf7h:Zy9xWv8uTs7rQp6oNm5l",
        "Authorization: Bearer <redacted:lmstudio-token>",
    ),
    (
        "const maps = 'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY'",
        "const maps = '<redacted:google-api-key>'",
    ),
    ("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "HF_TOKEN=<redacted:huggingface-token>"),
    (f"cookie = {JWT}", "cookie = <redacted:jwt>"),
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer <redacted:jwt>"),
    (
        "curl -H 'Authorization: Bearer 4f9a8b7c6d5e4f3a2b1c0d9e'",
        "curl -H 'Authorization: Bearer <redacted:bearer-token>'",
    ),
    (
        "DATABASE_URL=postgres://admin:s3cr3t-pa55@db.internal:5432/app",
        "DATABASE_URL=postgres://admin:<redacted:url-password>@db.internal:5432/app",
    ),
    (
        "git clone https://bob:hunter2@github.com/x/y",
        "git clone https://bob:<redacted:url-password>@github.com/x/y",
    ),
    # generic assignments: the key and quotes stay, the value goes
    ('password = "hunter2hunter2"', 'password = "<redacted:password>"'),
    ("DB_PASSWORD=correcthorse", "DB_PASSWORD=<redacted:password>"),
    ("export API_TOKEN=abcd1234efgh5678", "export API_TOKEN=<redacted:token>"),
    ("db:\n  password: s3cr3tvalue\n", "db:\n  password: <redacted:password>\n"),
    ('  "clientSecret": "9f8e7d6c5b4a3210",', '  "clientSecret": "<redacted:secret>",'),
    ("$config['api_key'] = 'abcdef1234567890';", "$config['api_key'] = '<redacted:api-key>';"),
    ("'password' => 'Tr0ub4dor&3',", "'password' => '<redacted:password>',"),
    ('password: str = "hunter2hunter2"', 'password: str = "<redacted:password>"'),
    ('token := "abc123def456ghi789"', 'token := "<redacted:token>"'),
    (
        'connect(host="db", password=b"hunter2hunter2")',
        'connect(host="db", password=b"<redacted:password>")',
    ),
    ("const apiKey = `k3y-live-000111222`;", "const apiKey = `<redacted:api-key>`;"),
    ("SECRET_KEY = 'django-insecure-7x!k2'", "SECRET_KEY = '<redacted:secret>'"),
    ('password = "unterminated-s3cret', 'password = "<redacted:password>'),  # cursor inside
    ("if password == 'letmein123':", "if password == '<redacted:password>':"),
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_each_kind_is_redacted(text: str, expected: str) -> None:
    assert redact(text) == (expected, 1)
    assert contains_secret(text)


NOT_SECRETS = [
    "token = get_token()",
    "password = input()",
    "password = getpass.getpass('Password: ')",
    'password = os.environ["DB_PASSWORD"]',
    "api_key = os.getenv('API_KEY')",
    "const apiKey = process.env.API_KEY;",
    "SECRET_KEY = settings.SECRET_KEY",
    "token: ${GITHUB_TOKEN}",
    "TOKEN=$GITHUB_TOKEN",
    "password: ${{ secrets.DB_PASSWORD }}",
    'secret: "{{ vault_secret }}"',
    'password = "<your-password>"',
    'api_key = "your-api-key-here"',
    'password = "********"',
    'password = ""',
    "password = None",
    "token = null",
    'secret = "short"',
    "password = user_password",
    "self.token = token",
    "password=password,",
    "f(password=password)",
    "token: self.token",
    "password: string;",
    "api_key: Optional[str] = None",
    "def check_password(password: str) -> bool:",
    "if token == expected_token:",
    'password = "Enter your password"',
    'fields = {"password": "new_password", "token": "access_token"}',
    'tokenizer = "bert-base-uncased"',
    'token_type = "refresh_token"',
    "max_tokens = 2048",
    'password_hash = "pbkdf2_sha256$260000$salt$hash"',
    'url = "https://example.com:8080/path"',
    "git@github.com:org/repo.git",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host",
    "task-abcdefghijklmnopqrstuvwxyzabcdefgh",
    "sklearn-compatible-estimator-wrapper-name",
    "Use the Bearer authentication scheme for all requests.",
    "hash = 'AKIAIOSFODNN7EXAMPLEX'",  # glued to more characters: not an access key id
    "# the password must be at least 8 characters long",
    'token = r"[-!#$%&\'*+.^_`|~0-9a-zA-Z]+"',  # a regex
    "e.g. `pass` in `https://user:pass@host:port/path`",  # a documentation example
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCg\n-----END PUBLIC KEY-----",
]


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_ordinary_code_is_left_alone(text: str) -> None:
    assert redact(text) == (text, 0)
    assert not contains_secret(text)


def test_private_key_blocks_keep_their_markers_and_lines() -> None:
    text = f"before\n{RSA_KEY}\nafter"
    redacted, count = redact(text)
    assert count == 1
    assert redacted == (
        "before\n-----BEGIN RSA PRIVATE KEY-----\n<redacted:private-key>\n\n"
        "-----END RSA PRIVATE KEY-----\nafter"
    )


@pytest.mark.parametrize("kind", ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED ", "PGP "])
def test_every_private_key_flavour(kind: str) -> None:
    block = " BLOCK" if kind == "PGP " else ""
    text = (
        f"-----BEGIN {kind}PRIVATE KEY{block}-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
        f"-----END {kind}PRIVATE KEY{block}-----\n"
    )
    redacted, count = redact(text)
    assert count == 1
    assert "b3Blbn" not in redacted
    assert redacted.count("\n") == text.count("\n")


def test_key_in_a_json_string_is_redacted() -> None:
    text = (
        '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n"}'
    )
    redacted, count = redact(text)
    assert count == 1
    assert "MIIEvQ" not in redacted
    assert "-----BEGIN PRIVATE KEY-----<redacted:private-key>-----END PRIVATE KEY-----" in redacted


def test_key_cut_off_by_a_context_window() -> None:
    head = RSA_KEY.rsplit("\n", 1)[0] + "\n"  # no END line: redact to the end of the text
    assert redact("x = 1\n" + head) == (
        "x = 1\n-----BEGIN RSA PRIVATE KEY-----\n<redacted:private-key>\n\n",
        1,
    )
    tail = "\n".join(RSA_KEY.split("\n")[1:]) + "\nnext = 2\n"  # no BEGIN line
    assert redact(tail) == (
        "<redacted:private-key>\n\n-----END RSA PRIVATE KEY-----\nnext = 2\n",
        1,
    )
    assert contains_secret(tail)


def test_several_secrets_are_counted() -> None:
    text = f"a = '{GHP}'\nb = 'AKIAIOSFODNN7EXAMPLE'\npassword = 'hunter2hunter2'\n{RSA_KEY}\n"
    redacted, count = redact(text)
    assert count == 4
    assert "<redacted:github-token>" in redacted
    assert "<redacted:aws-access-key>" in redacted
    assert "<redacted:password>" in redacted
    assert "<redacted:private-key>" in redacted


def test_lines_and_unaffected_columns_are_preserved() -> None:
    text = f"line one\ntoken = '{GHP}'  # trailing\n{RSA_KEY}\n    indented = True\n"
    redacted, _ = redact(text)
    before, after = text.split("\n"), redacted.split("\n")
    assert len(after) == len(before)
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == [1, 3, 4]  # the token's line and the key's body lines only
    assert after[1].endswith("'  # trailing")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*(text for text, _ in REDACTED), *NOT_SECRETS, RSA_KEY, "\n", "\r\n", " ", "x"]
        ),
        max_size=12,
    )
)
def test_redaction_never_changes_the_number_of_lines(pieces: list[str]) -> None:
    text = "".join(pieces)
    redacted, count = redact(text)
    assert redacted.count("\n") == text.count("\n")
    assert (count > 0) == contains_secret(text) == (redacted != text)
    assert redact(redacted) == (redacted, 0)  # placeholders are never redacted again


class CountingPattern:
    """A compiled pattern that adds up the text it is run over: each `finditer` pass counts
    the whole text, each `match` one attempt, a `search` what it read, a match its length."""

    def __init__(self, pattern: re.Pattern[str], work: list[int]) -> None:
        self._pattern = pattern
        self._work = work

    def finditer(self, text: str, *args: Any) -> Iterator[re.Match[str]]:
        self._work[0] += len(text)
        for match in self._pattern.finditer(text, *args):
            self._work[0] += match.end() - match.start()
            yield match

    def _counted(self, match: re.Match[str] | None) -> re.Match[str] | None:
        self._work[0] += 1 + (match.end() - match.start() if match else 0)
        return match

    def match(self, text: str, *args: Any) -> re.Match[str] | None:
        return self._counted(self._pattern.match(text, *args))

    def search(self, text: str, pos: int = 0, *args: Any) -> re.Match[str] | None:
        match = self._pattern.search(text, pos, *args)
        self._work[0] += 1 + (match.end() if match else len(text)) - pos  # what it read
        return match

    def fullmatch(self, text: str, *args: Any) -> re.Match[str] | None:
        return self._counted(self._pattern.fullmatch(text, *args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern, name)


def _work_of(text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """How much text `redact` runs its patterns over (a count, not a time)."""
    work = [0]
    counted: dict[int, CountingPattern] = {}

    def count(pattern: Any) -> Any:
        if not isinstance(pattern, re.Pattern):
            return pattern
        return counted.setdefault(id(pattern), CountingPattern(pattern, work))

    with monkeypatch.context() as patch:
        for name, value in vars(secrets).items():
            if isinstance(value, re.Pattern):
                patch.setattr(secrets, name, count(value))
        rules = tuple(
            dataclasses.replace(rule, pattern=count(rule.pattern), starts=count(rule.starts))
            for rule in secrets._RULES
        )
        patch.setattr(secrets, "_RULES", rules)
        secrets.redact(text)
    return work[0]


def _grows_linearly(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice the text is at most about twice the work (quadratic rescans would be four)."""
    half = text[: len(text) // 2]
    small, large = _work_of(half, monkeypatch), _work_of(text, monkeypatch)
    assert large <= 2.2 * small + 10_000, (small, large)
    assert large <= 200 * len(text)  # a few dozen passes over the text, whatever it holds


def test_a_megabyte_of_code_is_scanned_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sources = sorted((Path(__file__).parents[2] / "server" / "aigents_lsp").rglob("*.py"))
    code = "\n".join(path.read_text("utf-8") for path in sources)
    text = (code * (1_000_000 // len(code) + 1))[:1_000_000]
    _grows_linearly(text, monkeypatch)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        " " * 1_000_000,
        "password=" * 110_000,
        ('password = "' + "x" * 60) * 14_000,
        "password:\n" * 100_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" * 30_000,
        "-----END RSA PRIVATE KEY-----\n" * 30_000,
        ("sk-" + "a" * 30 + " ") * 30_000,
        ("http://" + "u" * 20 + ":") * 40_000,
        "\n".join(
            "".join(random.Random(n).choices(string.ascii_letters + "+/", k=76))
            for n in range(13_000)
        ),
    ],
    ids=["letters", "spaces", "keys", "quotes", "lines", "begins", "ends", "sk", "urls", "b64"],
)
def test_adversarial_megabytes_stay_linear(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _grows_linearly(text, monkeypatch)
