"""Any country's polling-station table (CSV or Parquet) plus a small TOML mapping -> an Election.

A mapping names the level columns (coarse to fine), how a station's ``unit_id`` is formed, which
columns (or sums of columns) are ``registered``, ``voters``, ``valid``, ``invalid``, optional
``ballots``, and the candidate columns; plus file options and filters. Shipped mappings for the
reference elections live in ``analysis/sources/mappings/`` (``load_mapping("russia_2011")``).

Example::

    name = "Russia 2011 State Duma"
    [file]
    sep = ","
    [levels]                      # level name = source column (or columns, joined by "/"), coarse to fine
    region = "region"
    tik = ["region", "tik"]
    [names]                       # optional display names of a level's regions
    region = "region"
    [profile]                     # optional: what the forms promise (analysis.profiles)
    name = "polling_station"      # or sirekap_tps_2024, indonesia_aggregate
    max_registered = 3000         # optional: the largest roll of one station
    [unit_id]
    columns = ["region", "tik", "uik"]   # joined with "/"
    [counts]
    registered = "Число избирателей, внесенных в список избирателей"
    voters = ["issued early", "issued in station", "issued outside"]   # a sum
    valid = "sum_of_candidates"   # or a column; omitted -> <NA>
    dpt = "DPT"                   # any count of the contract: dpt, dpt_voters, dptb (_voters), dpk (_voters),
                                  # ballots, stations (of an aggregate unit)
    [extras]                      # further columns kept as text (e.g. a reading's timestamp)
    ts = "ts"
    [candidates]                  # short code = source column
    UR = "6. Всероссийская политическая партия \"ЕДИНАЯ РОССИЯ\""
    [[filters]]                   # drop rows where a column equals one of these values
    column = "region"
    equals = ["Total"]
"""

from __future__ import annotations

import hashlib
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..election import Election

#: The contract's counts: core, optional, and the source extras a polling-station table may carry.
COUNT_KEYS = ("registered", "voters", "valid", "invalid", "ballots", "dpt", "dpt_voters", "dptb_voters",
              "dpk_voters", "stations")
#: Short names a mapping may use for the contract's counts (the Sirekap TPS table says dptb and dpk).
COUNT_ALIASES = {"dptb": "dptb_voters", "dpk": "dpk_voters"}
#: Counts a mapping must name: none (a table of candidate votes alone is an Election too; its pages
#: say which sections need registered or voters).
REQUIRED_COUNTS: tuple[str, ...] = ()
#: Counts every Election has (missing ones are filled with <NA>).
CORE_KEYS = ("registered", "voters", "valid", "invalid")
SUM_OF_CANDIDATES = "sum_of_candidates"
TOP_KEYS = {"name", "file", "levels", "names", "unit_id", "counts", "candidates", "filters", "profile", "extras"}
FILE_KEYS = {"sep", "encoding", "decimal", "thousands", "skiprows", "zero_if_empty"}


class MappingError(ValueError):
    """A mapping that does not fit its table; the message names the key and what is available."""


def load_mapping(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped mapping by name (``russia_2011``) or a TOML file by path, checked for its keys."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise MappingError(f"no mapping file at {path}")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        shipped = files("analysis.sources.mappings") / f"{name_or_path}.toml"
        if not shipped.is_file():
            names = sorted(p.name[:-5] for p in files("analysis.sources.mappings").iterdir() if p.name.endswith(".toml"))
            raise MappingError(f"no shipped mapping {str(name_or_path)!r}; shipped: {', '.join(names)}")
        text, source = shipped.read_text(encoding="utf-8"), f"shipped:{name_or_path}"
    try:
        mapping = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"{source}: not valid TOML ({err})") from None
    unknown = sorted(set(mapping) - TOP_KEYS)
    if unknown:
        raise MappingError(f"{source}: unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("levels", "counts", "candidates"):
        if not isinstance(mapping.get(key), dict) or not mapping[key]:
            raise MappingError(f"{source}: [{key}] is missing or empty")
    mapping["counts"] = {COUNT_ALIASES.get(k, k): v for k, v in mapping["counts"].items()}
    bad_counts = sorted(set(mapping["counts"]) - set(COUNT_KEYS))
    if bad_counts:
        raise MappingError(f"{source}: unknown count keys {', '.join(bad_counts)}; allowed: "
                           f"{', '.join([*COUNT_KEYS, *COUNT_ALIASES])}")
    for key in ("names", "extras", "profile"):
        if key in mapping and not isinstance(mapping[key], dict):
            raise MappingError(f"{source}: [{key}] must be a table of keys")
    unnamed = sorted(set(mapping.get("names", {})) - set(mapping["levels"]))
    if unnamed:
        raise MappingError(f"{source}: [names] keys must be levels ({', '.join(mapping['levels'])}); got {', '.join(unnamed)}")
    if "profile" in mapping:
        from ..profiles import ProfileError, get_profile

        spec = dict(mapping["profile"])
        try:
            get_profile(str(spec.pop("name", "polling_station")), **spec)
        except ProfileError as err:
            raise MappingError(f"{source}: [profile] {err}") from None
    missing = [k for k in REQUIRED_COUNTS if k not in mapping["counts"]]
    if missing:
        raise MappingError(f"{source}: [counts] needs {', '.join(missing)}")
    bad_file = sorted(set(mapping.get("file", {})) - FILE_KEYS)
    if bad_file:
        raise MappingError(f"{source}: unknown [file] keys {', '.join(bad_file)}; allowed: {', '.join(sorted(FILE_KEYS))}")
    mapping["_source"] = source
    mapping["_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return mapping


def _referenced(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(mapping key, source column) for every column the mapping names."""
    refs = [(f"levels.{k}", c) for k, v in mapping["levels"].items() for c in ([v] if isinstance(v, str) else v)]
    refs += [(f"unit_id.columns", c) for c in mapping.get("unit_id", {}).get("columns", [])]
    for key, spec in mapping["counts"].items():
        if spec == SUM_OF_CANDIDATES:
            continue
        refs += [(f"counts.{key}", c) for c in ([spec] if isinstance(spec, str) else spec)]
    refs += [(f"candidates.{k}", v) for k, v in mapping["candidates"].items()]
    refs += [(f"names.{k}", v) for k, v in mapping.get("names", {}).items()]
    refs += [(f"extras.{k}", v) for k, v in mapping.get("extras", {}).items()]
    refs += [(f"filters[{i}].column", f["column"]) for i, f in enumerate(mapping.get("filters", []))]
    refs += [("file.zero_if_empty", c) for c in mapping.get("file", {}).get("zero_if_empty", [])]
    return refs


def _read(path: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path).astype(str).where(lambda d: d != "nan", "")
    try:
        return pd.read_csv(
            path, sep=options.get("sep", ","), encoding=options.get("encoding", "utf-8-sig"), dtype=str,
            keep_default_na=False, skiprows=options.get("skiprows"), compression="infer",
        )
    except (UnicodeDecodeError, pd.errors.ParserError, EOFError, OSError) as err:
        raise MappingError(f"{path.name} cannot be read as a {options.get('sep', ',')!r}-separated table: "
                           f"{type(err).__name__}: {err}") from None


#: Cells that mean "not published".
EMPTY_CELLS = ("", "-", "NA", "nan", "None")


def _numbers(raw: pd.Series, thousands: str | None, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Parse counts from text: (numbers as Float64, a reason per row where parsing failed, "" elsewhere).

    In Arrow's compute kernels (pyarrow.compute): trimming, separators and the cast to float run
    without a Python object per cell; only a column holding text that is not a number takes pandas'
    slower ``to_numeric`` to find which cells.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # pandas' Arrow-backed strings go over without a copy
        cells = pa.array(raw)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        cells = pa.array(raw.astype(str).to_numpy(dtype=object), type=pa.string())
    if not pa.types.is_string(cells.type) and not pa.types.is_large_string(cells.type):
        cells = pa.array(raw.astype(str).to_numpy(dtype=object), type=pa.string())
    text = pc.utf8_trim_whitespace(cells)
    if thousands:
        text = pc.replace_substring(text, thousands, "")
    if decimal != ".":
        text = pc.replace_substring(text, decimal, ".")
    empty = pc.is_in(text, value_set=pa.array(EMPTY_CELLS)).to_numpy(zero_copy_only=False)
    valued = pc.if_else(pa.array(empty), pa.scalar(None, text.type), text)
    try:
        values = pc.cast(valued, pa.float64()).to_numpy(zero_copy_only=False)
        not_number = np.zeros(len(raw), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = pd.to_numeric(pd.Series(valued.to_pandas(), dtype=object), errors="coerce")
        values = parsed.to_numpy(dtype=float, na_value=np.nan)
        not_number = np.isnan(values) & ~empty
    values = np.where(empty, np.nan, values)
    numbers = pd.Series(pd.array(values, dtype="Float64"), index=raw.index)
    reason = np.full(len(raw), "", dtype=object)
    with np.errstate(invalid="ignore"):
        reason[not_number | ~np.isfinite(np.where(empty, 0.0, values))] = "not a number"
        reason[values < 0] = "negative"
        reason[np.isfinite(values) & (values != np.round(values))] = "not a whole number"
    return numbers, reason


#: Column pairs a names file may use: (code, name).
NAME_COLUMNS = (("code", "name"), ("kode", "nama"))


def read_names(path: str | Path) -> pd.Series:
    """Region names from a CSV of ``code,name`` (or Sirekap's ``kode,nama``), indexed by code, for any level.

    Sirekap's region tree ``wilayah_ppwp_all_levels.csv.gz`` is such a file: one row per region of
    every level, its code as the data carries it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no names file at {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for code, name in NAME_COLUMNS:
        if code in table.columns and name in table.columns:
            names = table[[code, name]].astype(str)
            names = names[names[code].str.strip() != ""]
            return pd.Series(names[name].str.strip().to_numpy(), index=names[code].str.strip().to_numpy(),
                             name="name").groupby(level=0).first()
    raise MappingError(f"{path.name}: a names file needs the columns code,name (or kode,nama); "
                       f"it has {', '.join(map(repr, table.columns[:20]))}")


def read_table(path: str | Path, mapping: Mapping[str, Any] | str | Path, *,
               name: str | None = None, names: str | Path | None = None) -> tuple[Election, pd.DataFrame]:
    """Read a polling-station table with its mapping; unusable rows go to the rejects with a reason.

    ``names``: a CSV of region codes and names (``read_names``) for the levels the mapping gives no
    ``[names]`` column; a code the file does not hold keeps its code as its name.
    """
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no table at {path}")
    options = mapping.get("file", {})
    raw = _read(path, options)
    raw.columns = [str(c).strip() for c in raw.columns]
    unknown = [(key, column) for key, column in _referenced(mapping) if column not in raw.columns]
    if unknown:
        listed = "; ".join(f"{key} = {column!r}" for key, column in unknown[:5])
        raise MappingError(f"{mapping.get('_source', 'mapping')}: columns not in {path.name}: {listed}. "
                           f"Available: {', '.join(map(repr, raw.columns[:60]))}")
    rows_read = len(raw)
    raw["_row"] = np.arange(rows_read) + 1

    keep = pd.Series(True, index=raw.index)
    for rule in mapping.get("filters", []):
        values = rule.get("equals", [])
        keep &= ~raw[rule["column"]].isin([values] if isinstance(values, str) else values)
    filtered = int((~keep).sum())
    raw = raw[keep]

    reasons: dict[int, list[str]] = {}

    def reject(mask: pd.Series, reason: str) -> None:
        for index in raw.index[mask.to_numpy()]:
            reasons.setdefault(index, []).append(reason)

    table = pd.DataFrame(index=raw.index)
    for level, spec in mapping["levels"].items():
        # A level may be several columns, joined with "/": codes that repeat under each parent
        # (KawalPemilu numbers each kabupaten from 1 within its province) become unique.
        columns = [spec] if isinstance(spec, str) else list(spec)
        parts = [raw[c].astype(str).str.strip() for c in columns]
        codes = parts[0]
        for part in parts[1:]:
            codes = codes + "/" + part
        empty = pd.concat([part == "" for part in parts], axis=1).any(axis=1)
        reject(empty, f"level {level} ({', '.join(map(repr, columns))}) is empty")
        table[level] = codes
    for level, column in mapping.get("names", {}).items():
        table[f"{level}_name"] = raw[column].astype(str).str.strip()
    region_names = read_names(names) if names is not None else None
    if region_names is not None:
        for level in mapping["levels"]:
            if level not in mapping.get("names", {}):
                table[f"{level}_name"] = table[level].map(region_names).fillna(table[level])
    id_columns = mapping.get("unit_id", {}).get("columns") or list(dict.fromkeys(
        c for v in mapping["levels"].values() for c in ([v] if isinstance(v, str) else v)))
    # Column by column, not row by row (a row-wise join took most of the import's time).
    unit_id = raw[id_columns[0]].astype(str).str.strip()
    for column in id_columns[1:]:
        unit_id = unit_id + "/" + raw[column].astype(str).str.strip()
    if mapping.get("unit_id", {}).get("deduplicate") == "suffix":
        unit_id = unit_id + unit_id.groupby(unit_id).cumcount().map(lambda n: "" if n == 0 else f"#{n + 1}")
    reject(unit_id.duplicated(keep="first"), "duplicate unit_id (a second row for the same station)")
    table["unit_id"] = unit_id

    thousands, decimal = options.get("thousands"), options.get("decimal", ".")

    # Columns whose empty cells mean 0 (a party not on this district's ballot), not "not published".
    zero_if_empty = set(options.get("zero_if_empty", []))

    def counted(spec: str | list[str], key: str) -> pd.Series:
        columns = [spec] if isinstance(spec, str) else list(spec)
        total = pd.Series(0, index=raw.index, dtype="Float64")
        for column in columns:
            text = raw[column]
            if column in zero_if_empty:
                text = text.where(text.astype(str).str.strip() != "", "0")
            numbers, why = _numbers(text, thousands, decimal)
            for problem in ("not a number", "negative", "not a whole number"):
                hit = why == problem
                if hit.any():
                    reject(pd.Series(hit, index=raw.index), f"{key} ({column!r}) is {problem}")
            total = total + numbers
        return total

    for code, column in mapping["candidates"].items():
        table[str(code)] = counted(column, f"candidate {code}")
    candidates = [str(c) for c in mapping["candidates"]]
    for key in COUNT_KEYS:
        spec = mapping["counts"].get(key)
        if spec is None:
            if key in CORE_KEYS:
                table[key] = pd.array([pd.NA] * len(raw), dtype="Float64")
        elif spec == SUM_OF_CANDIDATES:
            table[key] = table[candidates].sum(axis=1, skipna=False)
        else:
            table[key] = counted(spec, key)

    bad = pd.Series(raw.index.isin(list(reasons)), index=raw.index)
    rejects = pd.DataFrame({
        "row": raw.loc[bad, "_row"].to_numpy(),
        "unit_id": table.loc[bad, "unit_id"].to_numpy(),
        "reason": ["; ".join(dict.fromkeys(reasons[i])) for i in raw.index[bad.to_numpy()]],
    })
    good = table[~bad.to_numpy()].set_index("unit_id")
    for column in [*candidates, *[k for k in COUNT_KEYS if k in good.columns]]:
        good[column] = good[column].round().astype("Int64")
    for key, column in mapping.get("extras", {}).items():
        good[str(key)] = raw.loc[~bad.to_numpy(), column].astype(str).str.strip().replace("", None).to_numpy()
    with open(path, "rb") as handle:
        input_sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    provenance = {
        "source": f"{path.name} with mapping {mapping.get('_source', '')}",
        "input_sha256": input_sha256,
        "mapping_sha256": mapping.get("_sha256", ""),
        "rows_read": rows_read, "rows_filtered": filtered, "rows_rejected": len(rejects), "rows_kept": len(good),
    }
    if names is not None:
        with open(names, "rb") as handle:
            provenance["names"] = f"{Path(names).name} (sha256 {hashlib.file_digest(handle, 'sha256').hexdigest()})"
    profile = dict(mapping.get("profile", {}))
    if profile:
        profile.setdefault("name", "polling_station")
    else:
        from ..profiles import infer_profile, profile_spec

        profile = profile_spec(infer_profile(good.columns, good.index))
    election = Election.from_frame(
        good, levels=list(mapping["levels"]), candidates=candidates,
        name=name or mapping.get("name", path.stem), provenance=provenance, profile=profile,
    )
    return election, rejects
