"""The semantic index: workspace files cut into chunks at function and class boundaries, kept in
a per-workspace SQLite store, searched by keywords (BM25 over identifiers) and, when an
embedding model is available, by vector similarity, the two rankings fused.

No LSP here: `lsp/search.py` wires it to the editor, `assist/tools.py` to the model's tools.
"""
