"""aigents-lsp: a language server that turns a local LLM server into editor features."""

__version__ = "0.1.0"
