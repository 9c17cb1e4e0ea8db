"""Chat commands and AI code actions: prompts, edits as minimal diffs and the tool loop (no LSP)."""
