"""Next-edit suggestions: edit history, the next-edit models' prompt formats, minimal edits."""
