"""The on-disk index: one SQLite file per workspace under the user state dir (where logs and
metrics live too; tests and users isolate it with `XDG_STATE_HOME`).

Tables: `files` (path, mtime, size, sha1: what was indexed), `chunks` (lines, symbol, text,
term counts, and the vector with the model that made it), `meta`. SQLite is in the standard
library; every call takes a lock, so worker threads may share the connection.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aigents_lsp.paths import state_dir

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, sha1 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    text TEXT NOT NULL,
    terms TEXT NOT NULL,
    vector BLOB,
    model TEXT
);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks (path);
"""


def store_path(roots: Sequence[Path]) -> Path:
    """Where the index of a workspace (its set of folders) lives."""
    resolved = sorted(root.resolve().as_posix() for root in roots)
    digest = hashlib.sha1("\n".join(resolved).encode("utf-8")).hexdigest()[:16]
    name = Path(resolved[0]).name if resolved else "workspace"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
    return state_dir() / "index" / f"{safe}-{digest}" / "index.sqlite3"


@dataclass(frozen=True, slots=True)
class FileRecord:
    path: str
    mtime_ns: int
    size: int
    sha1: str


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: int
    path: str
    start: int
    end: int
    symbol: str
    text: str
    terms: str
    vector: bytes | None
    model: str | None


@dataclass(frozen=True, slots=True)
class NewChunk:
    start: int
    end: int
    symbol: str
    text: str
    terms: str


class IndexStore:
    """The SQLite file (or `:memory:`) behind one workspace's index."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._meta_value("schema")
            if version not in (None, SCHEMA_VERSION):
                self._db.executescript("DROP TABLE IF EXISTS files; DROP TABLE IF EXISTS chunks;")
            self._db.executescript(_SCHEMA)
            self._set_meta("schema", SCHEMA_VERSION)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- meta -------------------------------------------------------------------------------

    def _meta_value(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # no table yet
            return None
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta_value(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._set_meta(key, value)

    # --- files ------------------------------------------------------------------------------

    def files(self) -> dict[str, FileRecord]:
        with self._lock:
            rows = self._db.execute("SELECT path, mtime_ns, size, sha1 FROM files").fetchall()
        return {row[0]: FileRecord(*row) for row in rows}

    def file(self, path: str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT path, mtime_ns, size, sha1 FROM files WHERE path = ?", (path,)
            ).fetchone()
        return None if row is None else FileRecord(*row)

    def touch(self, record: FileRecord) -> None:
        """Same content, new mtime: nothing to re-chunk."""
        with self._lock:
            self._db.execute(
                "UPDATE files SET mtime_ns = ?, size = ? WHERE path = ?",
                (record.mtime_ns, record.size, record.path),
            )

    def replace_file(self, record: FileRecord, chunks: Sequence[NewChunk]) -> list[ChunkRow]:
        """Store a file's new chunks in place of its old ones; returns the rows written."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM chunks WHERE path = ?", (record.path,))
                self._db.execute(
                    "INSERT OR REPLACE INTO files (path, mtime_ns, size, sha1) VALUES (?,?,?,?)",
                    (record.path, record.mtime_ns, record.size, record.sha1),
                )
                rows: list[ChunkRow] = []
                for chunk in chunks:
                    values = (record.path, chunk.start, chunk.end, chunk.symbol, chunk.text)
                    cursor = self._db.execute(
                        "INSERT INTO chunks (path, start_line, end_line, symbol, text, terms) "
                        "VALUES (?,?,?,?,?,?)",
                        (*values, chunk.terms),
                    )
                    ident = int(cursor.lastrowid or 0)
                    rows.append(ChunkRow(ident, *values, chunk.terms, None, None))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows

    def remove_files(self, paths: Iterable[str]) -> list[int]:
        """Forget files; returns the ids of the chunks that went with them."""
        gone: list[int] = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for path in paths:
                    gone += [
                        int(row[0])
                        for row in self._db.execute("SELECT id FROM chunks WHERE path = ?", (path,))
                    ]
                    self._db.execute("DELETE FROM chunks WHERE path = ?", (path,))
                    self._db.execute("DELETE FROM files WHERE path = ?", (path,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone

    # --- chunks -----------------------------------------------------------------------------

    def chunks(self) -> Iterator[ChunkRow]:
        """Every chunk (read in one go: the lock is not held while the caller works)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, start_line, end_line, symbol, text, terms, vector, model "
                "FROM chunks"
            ).fetchall()
        return (ChunkRow(*row) for row in rows)

    def chunk_ids_of(self, path: str) -> list[int]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM chunks WHERE path = ?", (path,)).fetchall()
        return [int(row[0]) for row in rows]

    def text_of(self, ident: int) -> tuple[str, str] | None:
        """(path, text) of one chunk."""
        with self._lock:
            row = self._db.execute(
                "SELECT path, text FROM chunks WHERE id = ?", (ident,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def missing_vectors(self, model: str, limit: int) -> list[ChunkRow]:
        """Chunks without a vector from `model`, in file order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, start_line, end_line, symbol, text, terms, vector, model "
                "FROM chunks WHERE vector IS NULL OR model IS NOT ? ORDER BY path, start_line "
                "LIMIT ?",
                (model, limit),
            ).fetchall()
        return [ChunkRow(*row) for row in rows]

    def count_missing_vectors(self, model: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM chunks WHERE vector IS NULL OR model IS NOT ?", (model,)
            ).fetchone()
        return int(row[0])

    def set_vectors(self, model: str, vectors: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "UPDATE chunks SET vector = ?, model = ? WHERE id = ?",
                    [(blob, model, ident) for ident, blob in vectors],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def counts(self) -> tuple[int, int]:
        """(files, chunks)."""
        with self._lock:
            files = self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(files), int(chunks)
