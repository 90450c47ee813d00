"""KawalPemilu 2024 (kawalpemilu.org): crowd-verified presidential totals per desa -> Election.

KawalPemilu volunteers photographed the C1 (C.Hasil) forms and checked the numbers against the
photos. Two files in ``shared/data/kawalpemilu/`` (shared/README.md):

``desa_ppwp_2024.csv.gz`` (scrape by Ishaq101/KawalPemilu2024)
    one row per desa: ``prov_name, prov_id, kab_name, kab_id, kec_name, kec_id, kel_name, kel_id,
    paslon1, paslon1_perc, paslon2, paslon2_perc, paslon3, paslon3_perc,
    tot_tps_foto_approved_kawal_pemilu, tot_tps, tps_coverage_perc``. Quirks: the ``*_id`` are
    ordinals within the parent (Aceh is 1), not KPU codes, so rows are joined on names; overseas
    rows (``LUAR NEGERI``) stop at the country (no kecamatan / desa); a desa without an approved
    photo has empty votes (missing, not zero); the totals cover only the approved TPS
    (``tot_tps_foto_approved_kawal_pemilu`` of ``tot_tps``); the file covers about 33,500 of the
    83,859 desa.
``tps_hierarchy.json.gz`` (kawalpemilu/kp24)
    ``{"id2name": {code: name}, "tps": {desa code: [max TPS number, ...]}}`` with KPU codes
    (2 / 4 / 6 / 10 digits) and the names KawalPemilu shows: the dictionary that turns the CSV's
    names into codes.

Names are matched level by level (province, then kabupaten within it, kecamatan, desa): first as
written (upper case, spaces collapsed), then, if that finds nothing, ignoring every character that
is not a letter or digit ("KEP. SERIBU" = "KEP SERIBU"). A name that fits several regions is
ambiguous and never guessed. Every CSV row ends either in the Election or in ``rejects`` with the
reason; ``match`` counts them.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..election import Election

#: KawalPemilu's CSV columns for the three presidential tickets -> ballot numbers.
CANDIDATE_COLUMNS: Mapping[str, str] = {"paslon1": "01", "paslon2": "02", "paslon3": "03"}
NAME_COLUMNS = (("province", "prov_name"), ("regency", "kab_name"), ("district", "kec_name"), ("village", "kel_name"))
LEVELS = ("province", "regency", "district", "village")
CODE_LENGTH = {"province": 2, "regency": 4, "district": 6, "village": 10}
REQUIRED = ("prov_name", "kab_name", "kec_name", "kel_name", "paslon1", "paslon2", "paslon3",
            "tot_tps_foto_approved_kawal_pemilu", "tot_tps")


class KawalPemiluFileError(ValueError):
    """A KawalPemilu file that cannot be read at all; the message says why."""


def exact_key(name: Any) -> str:
    """A name as written, upper case, surrounding and repeated spaces removed."""
    return re.sub(r"\s+", " ", str(name).upper()).strip()


def loose_key(name: Any) -> str:
    """A name with every character that is not a letter or digit removed ("KEP. SERIBU" -> "KEPSERIBU")."""
    return re.sub(r"[^A-Z0-9]", "", str(name).upper())


def _tps_count(entry: Any) -> float:
    """[max TPS number, first extra, last extra] -> number of TPS (NaN when absent or malformed)."""
    if not isinstance(entry, list) or not entry or not all(isinstance(v, int) for v in entry):
        return np.nan
    extra = entry[2] - entry[1] + 1 if len(entry) >= 3 and entry[2] >= entry[1] else 0
    return float(entry[0] + extra)


def read_hierarchy(path: str | Path) -> pd.DataFrame:
    """KawalPemilu's region names: one row per code with ``code, name, level, parent`` (and
    ``tps``, the desa's TPS: regular ones numbered 1..max plus extra ones 901.., for desa)."""
    path = Path(path)
    if not path.is_file():
        raise KawalPemiluFileError(f"no KawalPemilu hierarchy file at {path}")
    try:
        with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as handle:
            body = json.load(handle)
        id2name = body["id2name"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KawalPemiluFileError(f"{path.name}: not a KawalPemilu hierarchy ({type(err).__name__}: {err})") from None
    tps = body.get("tps") or {}
    by_length = {v: k for k, v in CODE_LENGTH.items()}
    rows = []
    for code, name in id2name.items():
        code = str(code)
        level = by_length.get(len(code))
        if level is None or not code.isdigit():
            continue
        parent = "" if level == "province" else code[: CODE_LENGTH[LEVELS[LEVELS.index(level) - 1]]]
        top = tps.get(code)
        rows.append((code, str(name), level, parent, _tps_count(top)))
    return pd.DataFrame(rows, columns=["code", "name", "level", "parent", "tps"])


def names_from_wilayah(path: str | Path) -> pd.DataFrame:
    """Sirekap's region names (``wilayah_ppwp_all_levels.csv.gz``: ``kode,nama,id,tingkat,parent_kode``)
    in the shape of ``read_hierarchy`` (TPS rows dropped)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("kode", "nama") if c not in table.columns]
    if missing:
        raise KawalPemiluFileError(f"{Path(path).name}: missing columns {', '.join(missing)}")
    by_length = {v: k for k, v in CODE_LENGTH.items()}
    table = table[table["kode"].str.len().isin(list(by_length))]
    level = table["kode"].str.len().map(by_length)
    parent = [("" if lv == "province" else c[: CODE_LENGTH[LEVELS[LEVELS.index(lv) - 1]]]) for c, lv in zip(table["kode"], level)]
    return pd.DataFrame({"code": table["kode"].to_numpy(), "name": table["nama"].to_numpy(), "level": level.to_numpy(),
                         "parent": parent, "tps": np.nan})


@dataclass(frozen=True, eq=False)
class KawalPemiluDesa:
    """KawalPemilu desa totals as an Election (desa matched to KPU codes), with every row accounted for."""

    election: Election
    matches: pd.DataFrame  # one row per CSV row: names, status, code, level where matching stopped
    rejects: pd.DataFrame  # row, reason, names
    names_source: str

    def match_summary(self) -> pd.DataFrame:
        """How many CSV rows matched a code, were ambiguous, were not found (and at which level)."""
        counts = self.matches.groupby("status", sort=False).size().rename("rows").to_frame()
        counts["share"] = counts["rows"] / counts["rows"].sum()
        return counts.sort_values("rows", ascending=False)

    def to_frame(self) -> pd.DataFrame:
        return self.match_summary()

    def _repr_html_(self) -> str:
        matched = int((self.matches["status"] == "matched").sum())
        head = (f"KawalPemilu desa: {len(self.matches):,} rows, {matched:,} matched to a KPU code by name "
                f"({self.names_source}); {len(self.rejects):,} not used.")
        return (f"<p><b>{html.escape(head)}</b></p>" + self.match_summary().to_html(escape=True)
                + self.rejects.head(20).to_html(escape=True, index=False))


def _index(names: pd.DataFrame) -> tuple[dict, dict]:
    exact: dict[tuple[str, str, str], list[str]] = {}
    loose: dict[tuple[str, str, str], list[str]] = {}
    for code, name, level, parent in zip(names["code"], names["name"], names["level"], names["parent"]):
        exact.setdefault((level, parent, exact_key(name)), []).append(code)
        loose.setdefault((level, parent, loose_key(name)), []).append(code)
    return exact, loose


def match_names(frame: pd.DataFrame, names: pd.DataFrame) -> pd.DataFrame:
    """Per row of ``frame`` (columns prov_name, kab_name, kec_name, kel_name): the desa code found by
    matching names level by level, with ``status`` "matched", "ambiguous <level>" or
    "unmatched <level>", and ``how`` ("exact" or "loose", the weakest match used on the way)."""
    exact, loose = _index(names)
    cache: dict[tuple, tuple[str, str, str]] = {}
    out = []
    for path in zip(*(frame[c].to_numpy() for _, c in NAME_COLUMNS)):
        if path in cache:
            out.append(cache[path])
            continue
        parent, status, how = "", "matched", "exact"
        for (level, _), name in zip(NAME_COLUMNS, path):
            if name is None or (isinstance(name, float) and np.isnan(name)) or not str(name).strip():
                status = f"no name at {level}"
                break
            codes = exact.get((level, parent, exact_key(name)), [])
            if not codes:
                codes = loose.get((level, parent, loose_key(name)), [])
                how = "loose" if codes else how
            if len(codes) != 1:
                status = f"{'ambiguous' if codes else 'unmatched'} {level}"
                break
            parent = codes[0]
        result = (parent if status == "matched" else "", status, how)
        cache[path] = result
        out.append(result)
    return pd.DataFrame(out, columns=["code", "status", "how"], index=frame.index)


def _count(column: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(column, errors="coerce")
    bad = numeric.notna() & ((numeric < 0) | (numeric != numeric.round()))
    return numeric.where(~bad).round().astype("Int64"), bad


def read_desa(path: str | Path, *, hierarchy: str | Path | pd.DataFrame | None = None,
              wilayah: str | Path | None = None) -> KawalPemiluDesa:
    """Read KawalPemilu's desa CSV and give each desa its KPU code by name.

    Names come from ``hierarchy`` (KawalPemilu's ``tps_hierarchy.json.gz``, or a table in the
    shape of ``read_hierarchy``) or else from Sirekap's ``wilayah`` tree. The Election has one row
    per matched desa (``unit_id`` = the 10-digit desa code), levels province / regency / district /
    village with names, candidates 01 / 02 / 03, <NA> registered / voters / valid / invalid (the
    file has none), and ``tps_approved``, ``tps_total``, ``coverage`` (approved / total TPS).
    Rejects: overseas rows (country level only), names not found or ambiguous, two rows matching
    the same desa, counts that are not whole non-negative numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise KawalPemiluFileError(f"no KawalPemilu desa file at {path}")
    raw = pd.read_csv(path, dtype={c: str for c in ("prov_name", "kab_name", "kec_name", "kel_name")})
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise KawalPemiluFileError(f"{path.name}: missing columns {', '.join(missing)}")
    if isinstance(hierarchy, pd.DataFrame):
        names, source = hierarchy, "a given name table"
    elif hierarchy is not None:
        names, source = read_hierarchy(hierarchy), f"KawalPemilu's own names ({Path(hierarchy).name})"
    elif wilayah is not None:
        names, source = names_from_wilayah(wilayah), f"Sirekap's region tree ({Path(wilayah).name})"
    else:
        raise ValueError("give hierarchy= (KawalPemilu's tps_hierarchy.json.gz) or wilayah= (Sirekap's region tree)")
    raw = raw.reset_index(drop=True)
    raw.index.name = "row"
    overseas = raw["prov_name"].map(exact_key) == "LUAR NEGERI"
    matches = pd.DataFrame({"code": "", "status": "overseas (country level only)", "how": ""}, index=raw.index)
    domestic = raw[~overseas]
    matches.loc[domestic.index] = match_names(domestic, names)
    counts, bad = {}, pd.Series(False, index=raw.index)
    for column in (*CANDIDATE_COLUMNS, "tot_tps_foto_approved_kawal_pemilu", "tot_tps"):
        counts[column], wrong = _count(raw[column])
        bad |= wrong
    matches.loc[bad & (matches["status"] == "matched"), "status"] = "a count is not a whole non-negative number"
    duplicated = (matches["status"] == "matched") & matches["code"].duplicated(keep=False) & (matches["code"] != "")
    matches.loc[duplicated, "status"] = "two rows match the same desa"
    matches = matches.join(raw[[c for _, c in NAME_COLUMNS]])
    ok = matches["status"] == "matched"
    rejects = matches.loc[~ok].reset_index()[["row", "status", *[c for _, c in NAME_COLUMNS]]].rename(columns={"status": "reason"})

    kept = raw[ok]
    code = matches.loc[ok, "code"]
    table = pd.DataFrame({"unit_id": code.to_numpy()})
    name_of = dict(zip(names["code"], names["name"]))
    for level in LEVELS:
        table[level] = code.str[: CODE_LENGTH[level]].to_numpy()
        table[f"{level}_name"] = table[level].map(name_of).astype("str")
    for column in ("registered", "voters", "valid", "invalid"):
        table[column] = pd.array([pd.NA] * len(table), dtype="Int64")
    for column, candidate in CANDIDATE_COLUMNS.items():
        table[candidate] = counts[column][ok].to_numpy()
    table["tps_approved"] = counts["tot_tps_foto_approved_kawal_pemilu"][ok].to_numpy()
    table["tps_total"] = counts["tot_tps"][ok].to_numpy()
    table["coverage"] = (table["tps_approved"].astype("Float64") / table["tps_total"].astype("Float64").where(table["tps_total"] > 0)).astype(float)
    provenance = {"source": f"KawalPemilu desa totals ({path.name})", "names": source,
                  "rows": int(len(raw)), "matched": int(ok.sum())}
    election = Election.from_frame(table, levels=LEVELS, candidates=tuple(CANDIDATE_COLUMNS.values()),
                                   name="KawalPemilu 2024 presidential, desa totals", provenance=provenance,
                                   profile={"name": "indonesia_aggregate"})
    return KawalPemiluDesa(election=election, matches=matches.reset_index(), rejects=rejects, names_source=source)


def coverage(desa: KawalPemiluDesa, names: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per region at ``level``: TPS with an approved photo in the desa file, all TPS of the region
    (from KawalPemilu's hierarchy, so desa absent from the file count too), and their ratio."""
    if level not in LEVELS:
        raise KeyError(f"{level!r} is not one of {', '.join(LEVELS)}")
    villages = names[(names["level"] == "village")]
    total = villages.groupby(villages["code"].str[: CODE_LENGTH[level]])["tps"].sum(min_count=1)
    table = desa.election.table
    approved = table.groupby(level)["tps_approved"].sum()
    out = pd.DataFrame({"tps_approved": approved}).join(total.rename("tps_total"), how="left")
    out["coverage"] = out["tps_approved"].astype(float) / out["tps_total"].astype(float)
    out.index.name = level
    return out
