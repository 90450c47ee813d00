"""The batch's input: the election file read once, hashed as read, and split into one small file per province.

Each province notebook then reads only its own province (about 1/38 of the national table) instead of
parsing the whole national file and selecting from it: at full national scale (~820,000 TPS) that is
the difference between ~6 s and ~1 GB per notebook and a fraction of a second and tens of MB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..election import METADATA_KEY, Election, ElectionTableError, table_sha256
from .folders import folder_name

#: Provenance keys that say when the data was taken, in the order a reader wants them.
TIME_KEYS = ("snapshot", "fetched", "created")


def read_election_bytes(raw: bytes, name: str = "election file", *, verify: bool = True) -> Election:
    """An Election from the bytes of a file written by ``Election.to_parquet`` (same checks as ``read_parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as err:
        raise ElectionTableError(f"{name} is not a readable Parquet file: {err}") from None
    meta = (arrow.schema.metadata or {}).get(METADATA_KEY)
    if meta is None:
        raise ElectionTableError(f"{name} is a Parquet file but not an Election (no forensik metadata)")
    meta = json.loads(meta)
    table = arrow.to_pandas()
    election = Election(table=table, levels=tuple(meta["levels"]), candidates=tuple(meta["candidates"]),
                        name=meta.get("name", ""), provenance=meta.get("provenance", {}),
                        profile=meta.get("profile") or {})
    expected = election.provenance.get("table_sha256")
    if verify and expected and table_sha256(table) != expected:
        raise ElectionTableError(f"{name}: table hash {table_sha256(table)[:12]} differs from the recorded "
                                 f"{expected[:12]}; the file was changed after it was written")
    return election


def read_election(path: str | Path) -> tuple[Election, str]:
    """The Election in ``path`` and the SHA-256 of exactly the bytes it was parsed from."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no election file at {path}")
    raw = path.read_bytes()
    return read_election_bytes(raw, path.name), hashlib.sha256(raw).hexdigest()


def data_times(provenance: Mapping[str, Any]) -> dict[str, str]:
    """The snapshot, fetch and creation times an Election's provenance records (only those it has)."""
    return {key: str(provenance[key]) for key in TIME_KEYS if provenance.get(key) not in (None, "")}


@dataclass(frozen=True)
class SplitData:
    """The national file as read (name, SHA-256, provenance) and one Parquet file per province."""

    data_file: str
    data_sha256: str
    provenance: Mapping[str, Any]
    files: Mapping[str, Path]
    stations: Mapping[str, int]


def split_by(path: str | Path, out_dir: str | Path, level: str, codes: list[str] | None = None) -> SplitData:
    """Write one Election file per region at ``level`` (all, or ``codes``) from one read of ``path``.

    Each file (``out_dir/<folder>.parquet``, ``folders.folder_name``) is an Election whose provenance
    keeps the national one and adds the national file's name and SHA-256 (``data_file``,
    ``data_sha256``), the national table's hash (``source_table_sha256``) and the selection; its own
    ``table_sha256`` is the subset's, so ``Election.read_parquet`` verifies it as usual.
    """
    election, digest = read_election(path)
    if level not in election.levels:
        raise ValueError(f"{Path(path).name} has no level {level!r}; its levels: {', '.join(election.levels)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    national = dict(election.provenance)
    files: dict[str, Path] = {}
    stations: dict[str, int] = {}
    wanted = None if codes is None else set(codes)
    for code, table in election.table.groupby(level, sort=True, observed=True):
        code = str(code)
        if wanted is not None and code not in wanted:
            continue
        provenance = {**national, "data_file": Path(path).name, "data_sha256": digest,
                      "source_table_sha256": national.get("table_sha256", ""), "table_sha256": table_sha256(table),
                      "selection": {level: code}}
        files[code] = out_dir / f"{folder_name(code)}.parquet"
        replace(election, table=table, provenance=provenance).to_parquet(files[code])
        stations[code] = len(table)
    return SplitData(Path(path).name, digest, national, files, stations)


def split_by_province(path: str | Path, out_dir: str | Path, codes: list[str] | None = None) -> SplitData:
    """``split_by`` at the ``province`` level (the Sirekap reports' default)."""
    return split_by(path, out_dir, "province", codes)


def provenance_of(path: str | Path) -> dict[str, Any]:
    """An Election file's provenance from its Parquet footer alone (no table is read)."""
    import pyarrow.parquet as pq

    meta = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return dict(json.loads(meta).get("provenance", {})) if meta else {}
