"""The public list of Sirekap TPS whose candidates did not add up to their valid votes -> an Election.

The files ``Sirekap_<prov>.csv.gz`` (Pandawa8888/sirekap-2024, scraped 18-19 Feb 2024; 11,018
TPS in 24 provinces) have one row per TPS with the region names, ``Suara Sah`` (valid, Sirekap's
``suara_sah``), ``Total Suara`` (all ballots counted, ``suara_total``: it exceeds the valid votes
by the invalid ones, 4 at the median, and equals ``suara_total`` on all 33 TPS that are also in
the Jakarta body sample), ``Paslon 1..3`` (the chart) and ``Link Dokumen``, the
C.Hasil photo URL whose file name carries the 13-character TPS code and the upload time. The
code comes from the link, never from the names (overseas TPS numbers in the names do not match
their codes). Every row ends in the table or in the rejects, with a reason.

The set is biased by construction (only TPS already found inconsistent), so it says how such
forms break, never how often forms break.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ...election import CORE_COUNTS, Election

#: Source column -> Election column.
COLUMNS = {
    "Prov": "province_name", "Kota": "regency_name", "Kec": "district_name", "Kel": "village_name",
    "TPS": "tps_name", "Suara Sah": "valid", "Total Suara": "ballots",
    "Paslon 1": "01", "Paslon 2": "02", "Paslon 3": "03", "Link Dokumen": "photo_url",
}
COUNTS = ("valid", "ballots", "01", "02", "03")
CANDIDATES = ("01", "02", "03")
LEVELS = ("province", "regency", "district", "village")
#: Domestic TPS codes are 13 digits; overseas ones (province 99) carry letters ("99AE010001001").
TPS_CODE = re.compile(r"^(?:[0-9]{13}|99[0-9A-Z]{11})$")
PHOTO = re.compile(r"/([0-9A-Z]{13})-([0-9]{8})-([0-9]{6})--[^/]*$")
COUNT_TEXT = re.compile(r"^[0-9]{1,9}$")


def _counts(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(Int64 counts with <NA> for blanks, mask of cells that are neither blank nor a count)."""
    text = raw.fillna("").astype(str).str.strip()
    good = text.str.fullmatch(COUNT_TEXT.pattern)
    blank = text == ""
    values = pd.to_numeric(text.where(good), errors="coerce").astype("Int64")
    return values, ~(good | blank)


def parse_flagged(frame: pd.DataFrame, *, source: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """One flagged-TPS table (source columns, as text) -> (Election-shaped rows, rejects with reasons)."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source or 'table'}: not a flagged-TPS file, missing columns {', '.join(missing)}")
    data = frame[list(COLUMNS)].rename(columns=COLUMNS).copy()
    data["source"] = source
    data["source_row"] = np.arange(len(data)) + 2  # the header is line 1
    link = data["photo_url"].fillna("").astype(str)
    match = link.str.extract(PHOTO)
    data["unit_id"] = match[0]
    reasons = pd.Series("", index=data.index, dtype=object)
    reasons[data["unit_id"].isna()] = "the photo link carries no TPS code"
    bad_code = data["unit_id"].notna() & ~data["unit_id"].fillna("").str.fullmatch(TPS_CODE.pattern)
    reasons[bad_code & (reasons == "")] = "the TPS code in the photo link is malformed"
    for name in COUNTS:
        values, bad = _counts(data[name])
        data[name] = values
        reasons[bad & (reasons == "")] = f"{name} is not a count"
    data["photo_time"] = pd.to_datetime(match[1] + match[2], format="%Y%m%d%H%M%S", errors="coerce")
    rejected = reasons != ""
    rejects = pd.DataFrame({"unit_id": data["unit_id"].fillna("").astype(str), "source": source,
                            "source_row": data["source_row"], "reason": reasons})[rejected.to_numpy()]
    return data[~rejected.to_numpy()], rejects


def _frame(rows: pd.DataFrame) -> pd.DataFrame:
    code = rows["unit_id"].astype(str)
    table = pd.DataFrame(index=pd.Index(code.to_numpy(), name="unit_id", dtype="str"))
    for level, width in zip(LEVELS, (2, 4, 6, 10)):
        table[level] = pd.array(code.str[:width].to_numpy(), dtype="str")
    for name in ("province_name", "regency_name", "district_name", "village_name", "tps_name"):
        table[name] = pd.array(rows[name].fillna("").astype(str).str.strip().to_numpy(), dtype="str")
    for name in CORE_COUNTS:  # registered, voters, invalid: not in these files
        table[name] = pd.array([pd.NA] * len(rows), dtype="Int64")
    for name in COUNTS:
        table[name] = pd.array(rows[name].to_numpy(), dtype="Int64")
    table["photo_time"] = rows["photo_time"].dt.tz_localize("Asia/Jakarta").to_numpy()
    table["photo_url"] = pd.array(rows["photo_url"].astype(str).to_numpy(), dtype="str")
    table["source"] = pd.array(rows["source"].to_numpy(), dtype="str")
    return table


def read_flagged(paths: str | Path | Iterable[str | Path]) -> tuple[Election, pd.DataFrame]:
    """A folder of ``Sirekap_<prov>.csv.gz`` files (or the files) -> (Election, rejects).

    Counts that are blank in the file are <NA>; ``registered``, ``voters`` and ``invalid`` are not
    in these files and are <NA> throughout. A TPS listed twice keeps its first row; the second is a
    reject. Rejects have ``unit_id, source, source_row, reason``.
    """
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        files = sorted(Path(paths).glob("Sirekap_*.csv*"))
        if not files:
            raise FileNotFoundError(f"no Sirekap_<prov>.csv.gz files in {paths}")
    elif isinstance(paths, (str, Path)):
        files = [Path(paths)]
    else:
        files = [Path(p) for p in paths]
    digest = hashlib.sha256()
    kept, rejects = [], []
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"no flagged-TPS file at {path}")
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows, bad = parse_flagged(frame, source=path.name)
        kept.append(rows)
        rejects.append(bad)
    rows = pd.concat(kept, ignore_index=True)
    twice = rows["unit_id"].duplicated(keep="first")
    if twice.any():
        rejects.append(pd.DataFrame({"unit_id": rows.loc[twice, "unit_id"], "source": rows.loc[twice, "source"],
                                     "source_row": rows.loc[twice, "source_row"],
                                     "reason": "a second row for the same TPS code"}))
    rows = rows[~twice.to_numpy()]
    rejects_frame = pd.concat(rejects, ignore_index=True)
    election = Election.from_frame(
        _frame(rows), levels=LEVELS, candidates=CANDIDATES, name="Sirekap flagged TPS (sum of candidates != suara_sah)",
        provenance={"source": "Pandawa8888/sirekap-2024 flagged_tps, " + ", ".join(p.name for p in files),
                    "input_sha256": digest.hexdigest(), "snapshot": "2024-02-18/19",
                    "rows_read": int(len(rows) + len(rejects_frame)), "rejected": int(len(rejects_frame))},
    )
    return election, rejects_frame
