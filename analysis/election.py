"""The Election contract: one row per polling station, plus the metadata that says what it is.

Every source (Sirekap, any country's CSV, the synthetic generator) produces an ``Election``;
every analysis function consumes one. See ``docs/design.md`` of the shared folder for the contract.
"""

from __future__ import annotations

import hashlib
import html
import json
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pandera.pandas as pa


def _pandera():
    """pandera, imported when a table is first validated: reading an Election (every report kernel
    does) needs none of it, and it costs about half a second to import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandera.pandas as pa
        from pandera.errors import SchemaErrors
    return pa, SchemaErrors

import pyarrow as pa_arrow
import pyarrow.parquet as pq

from .display import frame_html

#: Count columns every Election has (a source that lacks one fills it with <NA>).
CORE_COUNTS: tuple[str, ...] = ("registered", "voters", "valid", "invalid")
#: Count columns an Election may have.
OPTIONAL_COUNTS: tuple[str, ...] = ("ballots",)
#: Key under which the metadata is stored in the Parquet schema.
METADATA_KEY = b"forensik"
#: How many offending rows an error message names before it summarises.
MAX_ROWS_NAMED = 10


class ElectionTableError(ValueError):
    """A table does not satisfy the Election contract; the message names the rows and columns."""

    def __init__(self, message: str, failures: pd.DataFrame | None = None):
        super().__init__(message)
        self.failures = failures if failures is not None else pd.DataFrame()


def code_version() -> str:
    """The installed forensik version (for provenance)."""
    try:
        from importlib.metadata import version

        return version("forensik")
    except Exception:  # not installed: running from a source tree
        return "unknown"


def table_sha256(table: pd.DataFrame) -> str:
    """A SHA-256 of a table's index, columns and values, stable across file formats."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in table.columns]).encode())
    digest.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=32)
def _schema(levels: tuple[str, ...], counts: tuple[str, ...]) -> pa.DataFrameSchema:
    """The contract's pandera schema for these columns (made once per set of columns: ~10 ms each)."""
    pa, _ = _pandera()
    columns = {
        level: pa.Column(str, nullable=False, coerce=False, description="region code")
        for level in levels
    }
    for name in counts:
        columns[name] = pa.Column(
            "Int64",
            checks=pa.Check.ge(0, error="no negative counts"),
            nullable=True,
            coerce=False,
        )
    return pa.DataFrameSchema(
        columns,
        index=pa.Index(str, name="unit_id", unique=True, nullable=False),
        strict=False,
        name="Election",
    )


def _plain_check(check: object) -> str:
    text = str(check)
    if text == "field_uniqueness":
        return "duplicate values"
    if text.startswith("dtype("):
        return "must be str codes (an integer code loses leading zeros)" if "str" in text else f"wrong type, expected {text[6:-1]}"
    return text


def _describe_failures(failures: pd.DataFrame) -> str:
    lines = []
    failures = failures.assign(check=failures["check"].map(_plain_check))
    cols = failures["column"].fillna("<index>") if "column" in failures else pd.Series(dtype=str)
    for (column, check), group in failures.assign(column=cols).groupby(
        ["column", "check"], sort=False, dropna=False
    ):
        rows = group["index"].dropna().astype(str).unique().tolist()
        named = ", ".join(rows[:MAX_ROWS_NAMED])
        more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
        values = [str(v) for v in group["failure_case"].unique().tolist()[:3]]
        where = f" in rows {named}{more}" if rows else ""
        lines.append(f"  column {column!s}: {check}{where} (e.g. {', '.join(values)})")
    return "\n".join(lines)


@dataclass(frozen=True, repr=False)
class Election:
    """A polling-station table (one row per station) with its levels, candidates and provenance."""

    table: pd.DataFrame
    levels: tuple[str, ...]
    candidates: tuple[str, ...]
    name: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    #: What the forms promise (``analysis.profiles``): ``{"name": ..., limits...}``; empty: inferred from the columns.
    profile: Mapping[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        table: pd.DataFrame,
        *,
        levels: Iterable[str],
        candidates: Iterable[str],
        name: str = "",
        provenance: Mapping[str, Any] | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> "Election":
        """Validate ``table`` against the contract and wrap it; raise ElectionTableError if not.

        ``profile``: ``{"name": <a profile of analysis.profiles>, limits...}`` (checked here); None: inferred.
        """
        if profile:
            from .profiles import ProfileError, check_fits, get_profile

            spec = dict(profile)
            try:
                index = table["unit_id"] if table.index.name != "unit_id" and "unit_id" in table.columns else table.index
                check_fits(get_profile(str(spec.pop("name", "")), **spec), table.columns, index)
            except ProfileError as err:
                raise ElectionTableError(str(err)) from None
        if not isinstance(table, pd.DataFrame):
            raise ElectionTableError(f"expected a pandas DataFrame, got {type(table).__name__}")
        levels = tuple(str(x) for x in levels)
        candidates = tuple(str(x) for x in candidates)
        if not levels:
            raise ElectionTableError("an Election needs at least one level column")
        table = table.copy()
        if table.index.name != "unit_id":
            if "unit_id" in table.columns:
                table = table.set_index("unit_id")
            else:
                raise ElectionTableError(
                    "the table needs a unit_id index (or a unit_id column); "
                    f"its index is named {table.index.name!r}"
                )
        table.columns = [str(c) for c in table.columns]
        counts = list(CORE_COUNTS) + [c for c in OPTIONAL_COUNTS if c in table.columns]
        counts += list(candidates)
        missing = [c for c in (*levels, *counts) if c not in table.columns]
        clash = sorted(set(levels) & set(counts))
        problems = []
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        if clash:
            problems.append(f"columns both level and count: {', '.join(clash)}")
        if len(set(candidates)) != len(candidates):
            problems.append("candidates are not unique")
        if problems:
            raise ElectionTableError("table does not satisfy the Election contract: " + "; ".join(problems))

        # Codes must be strings: an integer code loses its leading zeros, so we refuse it rather
        # than guess. Object columns holding only strings are normalised to the str dtype.
        # A pandas string column holds only str or missing values: nothing to look at one by one.
        for level in levels:
            if pd.api.types.is_string_dtype(table[level]) or table[level].dtype == object:
                if isinstance(table[level].dtype, pd.StringDtype):
                    ok = True
                else:
                    ok = (table[level].map(lambda v: isinstance(v, str)) | table[level].isna()).all()
                if ok:
                    table[level] = table[level].astype("str").where(table[level].notna(), None)
        if table.index.dtype == object or pd.api.types.is_string_dtype(table.index):
            if (not table.index.hasnans if isinstance(table.index.dtype, pd.StringDtype)
                    else all(isinstance(v, str) for v in table.index)):
                table.index = pd.Index(table.index.astype("str"), name="unit_id")

        # Counts are coerced here rather than by pandera so that a value that is not a whole
        # number is reported with its row, not as a column-wide coercion failure.
        failures = []
        for count_name in counts:
            column = table[count_name]
            if isinstance(column.dtype, pd.Int64Dtype):
                continue
            numeric = pd.to_numeric(column, errors="coerce")
            numeric = numeric.astype("Float64") if not isinstance(numeric.dtype, pd.Float64Dtype) else numeric
            not_number = numeric.isna() & column.notna()
            not_whole = (numeric.notna() & (numeric != numeric.round())).fillna(False)
            for mask, check in ((not_number, "not a number"), (not_whole, "not a whole number")):
                if mask.any():
                    failures.append(pd.DataFrame({
                        "column": count_name, "check": check,
                        "index": table.index[mask.to_numpy()],
                        "failure_case": column[mask.to_numpy()].astype(str).to_numpy(),
                    }))
            table[count_name] = numeric.where(~(not_number | not_whole)).round().astype("Int64")
        _, SchemaErrors = _pandera()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = _schema(levels, tuple(counts)).validate(table, lazy=True)
        except SchemaErrors as err:
            failures.append(err.failure_cases)
        if failures:
            failures = pd.concat(failures, ignore_index=True)
            raise ElectionTableError(
                "table does not satisfy the Election contract:\n" + _describe_failures(failures),
                failures,
            ) from None

        prov = dict(provenance or {})
        prov.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        prov.setdefault("code_version", code_version())
        prov["table_sha256"] = table_sha256(table)
        prov.setdefault("input_sha256", prov["table_sha256"])
        return cls(table=table, levels=levels, candidates=candidates, name=str(name), provenance=prov,
                   profile=dict(profile or {}))

    # ---------------------------------------------------------------- persistence
    def metadata(self) -> dict[str, Any]:
        return {
            "levels": list(self.levels),
            "candidates": list(self.candidates),
            "name": self.name,
            "provenance": dict(self.provenance),
            "profile": dict(self.profile),
        }

    def to_parquet(self, path: str | Path) -> Path:
        """Write the table and its metadata to one Parquet file (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrow = pa_arrow.Table.from_pandas(self.table, preserve_index=True)
        meta = dict(arrow.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(self.metadata(), default=str).encode()
        arrow = arrow.replace_schema_metadata(meta)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(arrow, tmp, compression="zstd")
        tmp.replace(path)
        return path

    @classmethod
    def read_parquet(cls, path: str | Path, *, verify: bool = True) -> "Election":
        """Read an Election written by ``to_parquet``; check its table hash unless told not to."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no election file at {path}")
        arrow = pq.read_table(path)
        raw = (arrow.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise ElectionTableError(f"{path} is a Parquet file but not an Election (no forensik metadata)")
        meta = json.loads(raw)
        table = arrow.to_pandas()
        election = cls(
            table=table,
            levels=tuple(meta["levels"]),
            candidates=tuple(meta["candidates"]),
            name=meta.get("name", ""),
            provenance=meta.get("provenance", {}),
            profile=meta.get("profile") or {},
        )
        expected = election.provenance.get("table_sha256")
        if verify and expected and table_sha256(table) != expected:
            raise ElectionTableError(
                f"{path}: table hash {table_sha256(table)[:12]} differs from the recorded "
                f"{expected[:12]}; the file was changed after it was written"
            )
        return election

    # ---------------------------------------------------------------- views
    @property
    def counts(self) -> tuple[str, ...]:
        """The count columns present: core counts, optional counts, candidates."""
        optional = tuple(c for c in OPTIONAL_COUNTS if c in self.table.columns)
        return CORE_COUNTS + optional + self.candidates

    def __len__(self) -> int:
        return len(self.table)

    def column(self, name: str) -> np.ndarray:
        """A count column as float64 with NaN for missing (what numeric kernels take)."""
        return self.table[name].astype("Float64").to_numpy(dtype=float, na_value=np.nan)

    def select(self, **codes: str | Iterable[str]) -> "Election":
        """The stations in the given regions, e.g. ``select(province="31")``."""
        mask = pd.Series(True, index=self.table.index)
        for level, wanted in codes.items():
            if level not in self.levels:
                raise KeyError(f"{level!r} is not a level of this election ({', '.join(self.levels)})")
            wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]
            mask &= self.table[level].isin(wanted)
        prov = dict(self.provenance)
        prov["selection"] = {k: v if isinstance(v, str) else list(v) for k, v in codes.items()}
        table = self.table[mask.to_numpy()]
        if len(table) != len(self.table):
            # The selection's own hash, so that it can be written and read back; the whole table's stays beside it.
            if "table_sha256" in prov:
                prov.setdefault("source_table_sha256", prov["table_sha256"])
            prov["table_sha256"] = table_sha256(table)
        return replace(self, table=table, provenance=prov)

    def regions(self, level: str) -> pd.DataFrame:
        """One row per region at ``level``: its code, name when known, and station count."""
        if level not in self.levels:
            raise KeyError(f"{level!r} is not a level of this election ({', '.join(self.levels)})")
        cols = [level] + ([f"{level}_name"] if f"{level}_name" in self.table.columns else [])
        out = self.table.groupby(cols, sort=True, observed=True).size().rename("stations").reset_index()
        return out.set_index(level)

    def totals(self, level: str | None = None) -> pd.DataFrame:
        """Sums of every count column (missing counts skipped), nationally or per region."""
        counts = list(self.counts)
        if level is None:
            return self.table[counts].sum(min_count=1).to_frame("total").T
        return self.table.groupby(level, sort=True, observed=True)[counts].sum(min_count=1)

    def shares(self) -> pd.Series:
        """Each candidate's share of all candidate votes (stations with missing votes skipped)."""
        votes = self.table[list(self.candidates)].sum()
        return (votes / votes.sum()).astype(float)

    def summary(self) -> pd.DataFrame:
        """A one-table overview: stations, totals and shares."""
        rows = {"stations": len(self)}
        totals = self.totals().iloc[0]
        rows.update({k: totals[k] for k in totals.index})
        shares = self.shares() if self.candidates else pd.Series(dtype=float)
        rows.update({f"share {c}": round(100 * v, 2) for c, v in shares.items()})
        return pd.Series(rows, name=self.name or "election").to_frame()

    def __repr__(self) -> str:
        return (
            f"Election({self.name!r}, {len(self):,} stations, levels={list(self.levels)}, "
            f"candidates={list(self.candidates)})"
        )

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        return f"<p>{head}</p>" + frame_html(self.summary())
