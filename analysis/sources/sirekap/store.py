"""The snapshot store: every response kept as received, atomically, content-addressed across snapshots.

Layout under the output folder ``DIR``::

    DIR/.blobs/ab/abcdef...          one read-only file per distinct body, named by its SHA-256
    DIR/NAME/manifest.jsonl          one JSON line per fetch outcome (the last line for a URL wins)
    DIR/NAME/snapshot.json           what was scraped (ballot, region, level, base URL) and the summary
    DIR/NAME/pemilu/hhcw/ppwp/...    the API tree, each file a hard link to its blob

A file is written to a temporary name and renamed into place, and its manifest line is appended only
after the rename, so a kill -9 leaves either a complete file with its line, a complete file without
its line (fetched again on resume), or nothing. Unchanged files across hourly snapshots share one
blob, so a snapshot of an unchanged tree adds directory entries, not bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Mapping

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json reads the manifest line by line without it
    _fast_loads = None

#: Value types of a manifest record as the scraper writes it; a record holding anything else (a float,
#: which is how orjson reads an integer beyond 64 bits, or a nested value) is read again by json.
_PLAIN = frozenset((str, int, bool, type(None)))
_STR, _DICT = frozenset((str,)), frozenset((dict,))
#: Line breaks of ``str.splitlines`` in ASCII text besides ``\n``: without them, ``split(b"\n")`` cuts the same lines.
_OTHER_LINE_BREAKS = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")

MANIFEST = "manifest.jsonl"
META = "snapshot.json"
BLOBS = ".blobs"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: Outcomes after which a resumed scrape does not ask again.
SETTLED = ("ok", "not_published", "not_applicable")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_snapshot_name() -> str:
    """A snapshot name from the UTC time, e.g. ``20240215T101421Z``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def check_snapshot_name(name: str) -> str:
    if not isinstance(name, str) or not SNAPSHOT_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"snapshot name must be letters, digits, '.', '_' or '-' (at most 80); got {str(name)[:40]!r}")
    return name


@dataclass(frozen=True)
class Record:
    """One manifest line: what happened to one URL."""

    url: str
    path: str
    outcome: str  # ok | not_published | not_applicable (a tree that does not exist; not requested) | failed
    status: int | None
    fetched_at: str
    file: str | None = None
    size: int | None = None
    sha256: str | None = None
    attempts: int = 1
    reason: str | None = None
    etag: str | None = None


def read_manifest(snapshot: str | Path) -> dict[str, dict[str, Any]]:
    """API path -> its last manifest record; a line cut off by a crash is ignored."""
    records: dict[str, dict[str, Any]] = {}
    path = Path(snapshot) / MANIFEST
    if not path.exists():
        return records
    with open(path, "rb") as handle:
        data = handle.read()
    elements = _manifest_at_once(data)
    if elements is not None:
        paths = list(map(dict.get, elements, repeat("path")))
        if set(map(type, paths)) <= _STR:
            return dict(zip(paths, elements))
        return {p: record for p, record in zip(paths, elements) if type(p) is str}
    text = data.decode("utf-8", errors="replace")
    decode = json.JSONDecoder().decode
    for line in text.splitlines():
        try:
            # orjson for the scraper's plain lines; json, as before, for anything orjson would read
            # differently (integers beyond 64 bits become floats there) or not at all (NaN, cut lines).
            if _fast_loads is not None and line.isascii():
                try:
                    record = _fast_loads(line)
                except ValueError:
                    record = decode(line)
                if type(record) is dict and not set(map(type, record.values())) <= _PLAIN:
                    record = decode(line)
            else:
                record = decode(line)
        except ValueError:
            continue  # the half-written last line of a killed run
        if isinstance(record, dict) and isinstance(record.get("path"), str):
            records[record["path"]] = record
    return records


def _manifest_at_once(data: bytes) -> list[dict[str, Any]] | None:
    """Every line of the manifest decoded by orjson in one pass, if every line gives what the loop keeps as it is.

    That is: ASCII text without a line break but ``\n`` (so that ``split`` cuts the lines ``str.splitlines``
    cuts, but for the empty piece after a last ``\n``), and each line a JSON object of plain values (str,
    int, bool, null). Anything else (a cut or blank line, a float or an integer beyond 64 bits, which
    orjson reads as a float) sends the whole manifest through the loop, line by line.
    """
    if _fast_loads is None or not data.isascii() or any(c in data for c in _OTHER_LINE_BREAKS):
        return None
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    try:
        elements = list(map(_fast_loads, lines))
    except ValueError:
        return None
    if not (set(map(type, elements)) <= _DICT and set(map(type, chain.from_iterable(map(dict.values, elements)))) <= _PLAIN):
        return None
    return elements


def manifest_sha256(snapshot: str | Path) -> str | None:
    path = Path(snapshot) / MANIFEST
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_snapshot(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


class SnapshotStore:
    """Write side of one snapshot ``DIR/NAME``; see the module docstring for the layout."""

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root)
        self.name = check_snapshot_name(name) if name else new_snapshot_name()
        self.path = self.root / self.name
        self.blobs = self.root / BLOBS
        self.path.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)
        # Compact state per path (outcome, size): a national scrape knows ~1,000,000 paths.
        self.state: dict[str, tuple[str, int | None]] = {
            path: (r.get("outcome"), r.get("size")) for path, r in read_manifest(self.path).items()}
        if self.state:
            self._remove_stale_temp_files()
        self.previous_name, self.previous = self._previous_snapshot()
        self.new_blob_bytes = 0
        self._manifest = open(self.path / MANIFEST, "ab")

    def _remove_stale_temp_files(self) -> None:
        """A resumed snapshot: temp files of a killed run (never renamed into place) are removed.

        One process writes a snapshot at a time; blobs are shared, so only temp files of dead processes go there.
        """
        for temp in self.path.rglob(".*.tmp"):
            temp.unlink(missing_ok=True)
        for temp in self.blobs.glob("*/.*.tmp"):
            pid = temp.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _alive(int(pid)):
                temp.unlink(missing_ok=True)

    def _previous_snapshot(self) -> tuple[str | None, dict[str, tuple[bytes, str | None]]]:
        """The latest other snapshot in DIR (by name, which sorts by time), as path -> (sha256, ETag)."""
        others = sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != self.name and is_snapshot(p))
        earlier = [p for p in others if p.name < self.name] or others
        if not earlier:
            return None, {}
        latest = earlier[-1]
        return latest.name, {k: (bytes.fromhex(r["sha256"]), r.get("etag")) for k, r in read_manifest(latest).items()
                             if r.get("outcome") == "ok" and r.get("sha256")}

    def previous_etag(self, path: str) -> str | None:
        """The ETag the previous snapshot got for this path, to ask the server whether it changed."""
        return self.previous.get(path, (None, None))[1]

    # ------------------------------------------------------------------ reading
    def settled(self, path: str) -> bool:
        """Whether a resumed scrape can skip this path: stored intact, or recorded as not published."""
        outcome, size = self.state.get(path, (None, None))
        if outcome not in SETTLED:
            return False
        if outcome == "ok":
            file = self.path / path
            return file.is_file() and file.stat().st_size == size
        return True

    def outcome(self, path: str) -> str | None:
        return self.state.get(path, (None, None))[0]

    def read(self, path: str) -> bytes:
        return (self.path / path).read_bytes()

    # ------------------------------------------------------------------ writing
    def _append(self, record: Record) -> None:
        data = asdict(record)
        self._manifest.write(json.dumps(data, separators=(",", ":")).encode() + b"\n")
        # A flush puts the line in the kernel: it survives kill -9 (not a power cut, which fsync would need).
        self._manifest.flush()
        self.state[record.path] = (record.outcome, record.size)

    def _blob(self, body: bytes, sha: str) -> Path:
        blob = self.blobs / sha[:2] / sha
        if blob.exists() and blob.stat().st_size == len(body):
            return blob
        blob.parent.mkdir(exist_ok=True)
        temp = blob.with_name(f".{sha}.{os.getpid()}.tmp")
        with open(temp, "wb") as handle:
            handle.write(body)
        os.chmod(temp, 0o444)
        os.replace(temp, blob)
        self.new_blob_bytes += len(body)
        return blob

    def put(self, path: str, url: str, body: bytes, *, status: int, attempts: int, fetched_at: str | None = None,
            etag: str | None = None) -> tuple[Record, str]:
        """Store a good body; returns its record and ``fetched`` or ``unchanged`` (same bytes as the previous snapshot)."""
        sha = hashlib.sha256(body).hexdigest()
        blob = self._blob(body, sha)
        self._link(blob, path)
        record = Record(url=url, path=path, outcome="ok", status=status, fetched_at=fetched_at or utc_now(),
                        file=path, size=len(body), sha256=sha, attempts=attempts, etag=etag)
        self._append(record)
        return record, ("unchanged" if self.previous.get(path, (None,))[0] == bytes.fromhex(sha) else "fetched")

    def put_not_modified(self, path: str, url: str, *, attempts: int) -> Record | None:
        """The server answered 304 to the previous ETag: the previous body, linked again; None if its blob is gone."""
        sha_bytes, etag = self.previous.get(path, (None, None))
        if sha_bytes is None:
            return None
        sha = sha_bytes.hex()
        blob = self.blobs / sha[:2] / sha
        if not blob.is_file():
            return None
        self._link(blob, path)
        record = Record(url=url, path=path, outcome="ok", status=304, fetched_at=utc_now(), file=path,
                        size=blob.stat().st_size, sha256=sha, attempts=attempts, etag=etag)
        self._append(record)
        return record

    def _link(self, blob: Path, path: str) -> None:
        dest = self.path / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        if temp.exists() or temp.is_symlink():
            temp.unlink()
        try:
            os.link(blob, temp)
        except OSError:  # a file system without hard links: a copy, still renamed atomically
            shutil.copyfile(blob, temp)
        os.replace(temp, dest)

    def miss(self, path: str, url: str, *, outcome: str, status: int | None, reason: str, attempts: int) -> Record:
        """Record a URL that gave no good body: ``not_published`` (404) or ``failed`` with the reason."""
        record = Record(url=url, path=path, outcome=outcome, status=status, fetched_at=utc_now(), attempts=attempts, reason=reason)
        self._append(record)
        return record

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        target = self.path / META
        temp = target.with_name(f".{META}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(dict(meta), indent=1, default=str))
        os.replace(temp, target)

    def close(self) -> None:
        self._manifest.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_meta(snapshot: str | Path) -> dict[str, Any]:
    path = Path(snapshot) / META
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
