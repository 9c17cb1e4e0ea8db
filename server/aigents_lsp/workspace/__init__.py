"""Which workspace files may reach a model or a tool, and what is redacted from the ones that do."""
