"""Series of Sirekap aggregate snapshots (national and per-province totals over time) as tidy tables.

Readers for the three aggregate sources described in ``shared/README.md`` (from public 2024
scrapes, pararang/pemilu2024 and ridwaanhall/pemilu2024.kpu.go.id):

``ppwp_national_hourly_history.jsonl.gz``
    one line per poll of the national ``pemilu/hhcw/ppwp.json``: ``{"raw_data": body,
    "local_timestamp": fetch time (UTC), "_commit": ..., "_commit_time": ...}``. Quirks: the
    scraper polled every hour (sometimes twice) but Sirekap republished only now and then, so
    1,771 polls hold 649 distinct bodies (``ts``; the last one, 3 Apr, was polled 728 times until
    3 May); the first body (17 Feb 19:30 WIB) is followed by
    a gap to 19 Feb 07:00; a province without data has no candidate keys (missing, not zero: in
    the first body Papua Pegunungan, 95, has only ``persen`` 0.05); ``persen`` is the share of TPS
    reported (rounded to 0.01 %), not a vote share; ``progres`` gives the exact national TPS count.
``province_hourly/votes_0_<slug>.csv.gz`` and ``votes_dpr_0_<slug>.csv.gz``
    one row per poll of a province's row in the national table: ``ts`` (the body's publication
    time, WIB, the same for every province), the votes, and ``created_at`` (fetch time, UTC).
    Quirks: files are named by a slug of the province *name* (``p_a_p_u_a`` is Papua, 91;
    ``luar_negeri`` is overseas, 99), not by code; rows repeat while ``ts`` stands still and kept
    being appended for a month after the last change (the last presidential ``ts``, 3 Apr, has
    728 rows, fetched until 3 May; the last DPR ``ts``, 30 Mar, 803); presidential columns are ``amin`` (01), ``pagi``
    (02), ``gama`` (03); DPR columns are party short names in ballot order (PKB = 1 ... PPP =
    17, Partai Ummat = 24; the six Aceh local parties, 18-23, are absent); there is no TPS count.
``ppwp_aggregates_all_levels.csv``
    142 cached aggregate bodies, one row each (``level,kode,ts,psu,mode,v01,v02,v03,persen,
    tps_total,tps_progres``); ``level`` is 0 for national and 2/3/4 for kabupaten/kecamatan/desa
    (the level follows the code length: 4, 6 and 10 digits); one row has no ``mode``.

Every reader returns an ``AggregateSeries``: a long ``votes`` table (time, region, level,
contestant, votes), a ``progress`` table (time, region, TPS share / total / reported where
known), and ``rejects`` (source, row, reason) for every row it could not use. Repeated polls of
one ``ts`` are kept once (the first fetch); a repeat whose numbers differ is a reject.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .parse import PPWP_CANDIDATES

#: Publication times (``ts``) are WIB (UTC+7) without a zone.
WIB = "Asia/Jakarta"

#: The 2024 DPR ballot: party number (as on the ballot and in ``pemilu/partai.json``), the short
#: name used as column header by the province_hourly DPR files, and the party's name.
PARTIES_2024 = pd.DataFrame(
    [
        ("01", "PKB", "Partai Kebangkitan Bangsa"),
        ("02", "Gerindra", "Partai Gerakan Indonesia Raya"),
        ("03", "PDI-P", "Partai Demokrasi Indonesia Perjuangan"),
        ("04", "Golkar", "Partai Golongan Karya"),
        ("05", "Nasdem", "Partai NasDem"),
        ("06", "Partai Buruh", "Partai Buruh"),
        ("07", "Gelora", "Partai Gelombang Rakyat Indonesia"),
        ("08", "PKS", "Partai Keadilan Sejahtera"),
        ("09", "PKN", "Partai Kebangkitan Nusantara"),
        ("10", "Hanura", "Partai Hati Nurani Rakyat"),
        ("11", "Garuda", "Partai Garda Republik Indonesia"),
        ("12", "PAN", "Partai Amanat Nasional"),
        ("13", "PBB", "Partai Bulan Bintang"),
        ("14", "Demokrat", "Partai Demokrat"),
        ("15", "PSI", "Partai Solidaritas Indonesia"),
        ("16", "Perindo", "Partai Persatuan Indonesia"),
        ("17", "PPP", "Partai Persatuan Pembangunan"),
        ("24", "Partai Ummat", "Partai Ummat"),
    ],
    columns=["number", "short", "name"],
).set_index("number")
#: Presidential columns of the province_hourly files -> ballot numbers.
PPWP_COLUMNS: Mapping[str, str] = {"amin": "01", "pagi": "02", "gama": "03"}
PPWP_LABELS: Mapping[str, str] = {"01": "01 Anies-Muhaimin", "02": "02 Prabowo-Gibran", "03": "03 Ganjar-Mahfud"}
#: TPS of the overseas "province" 99 in the region tree of 8 Mar 2024 (wilayah_ppwp_all_levels).
OVERSEAS_TPS = 1955
LEVEL_BY_CODE_LENGTH = {1: "national", 2: "province", 4: "regency", 6: "district", 10: "village"}

REJECT_COLUMNS = ["source", "row", "reason"]
VOTE_COLUMNS = ["time", "fetched", "region", "level", "contestant", "votes"]
PROGRESS_COLUMNS = ["time", "region", "level", "tps_share", "tps_total", "tps_reported", "tps_exact"]


class AggregateFileError(ValueError):
    """An aggregate file (or folder) that cannot be read at all; the message says why."""


def slug(name: str) -> str:
    """The province_hourly file slug of a province name: ``"P A P U A"`` -> ``"p_a_p_u_a"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def province_table() -> pd.DataFrame:
    """Province code -> name, slug and TPS count (38 provinces + 99 overseas)."""
    path = files("analysis") / "data" / "provinces.csv"
    with path.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"code": str, "name": str})[["code", "name", "tps"]]
    table = pd.concat([table, pd.DataFrame([{"code": "99", "name": "Luar Negeri", "tps": OVERSEAS_TPS}])])
    table["slug"] = table["name"].map(slug)
    return table.set_index("code")


@dataclass(frozen=True, repr=False)
class AggregateSeries:
    """Aggregate vote totals of one ballot over time, long format, with reporting progress and rejects."""

    ballot: str                    # "ppwp" (president) or "pdpr" (DPR RI)
    votes: pd.DataFrame            # time (WIB), fetched (UTC), region, level, contestant, votes
    progress: pd.DataFrame         # time, region, level, tps_share (%), tps_total, tps_reported, tps_exact
    rejects: pd.DataFrame          # source, row, reason
    contestants: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def regions(self) -> list[str]:
        """Region codes present ("0" is national), sorted."""
        return sorted(self.votes["region"].unique().tolist(), key=lambda c: (len(c), c))

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(sorted(self.votes["time"].unique()))

    def wide(self, region: str = "0") -> pd.DataFrame:
        """Votes of one region: one row per snapshot time, one column per contestant (Int64)."""
        part = self.votes[self.votes["region"] == str(region)]
        if part.empty:
            raise KeyError(f"region {region!r} is not in this series (regions: {', '.join(self.regions[:12])} ...)")
        table = part.pivot_table(index="time", columns="contestant", values="votes", aggfunc="first")
        return table.reindex(columns=[c for c in self.contestants if c in table.columns]).astype("Int64")

    def label(self, contestant: str) -> str:
        return self.labels.get(contestant, contestant)

    def to_frame(self) -> pd.DataFrame:
        """One row per region: snapshots, first and last time, last totals per contestant."""
        last = self.votes.sort_values("time").groupby(["region", "contestant"])["votes"].last().unstack()
        span = self.votes.groupby("region")["time"].agg(snapshots="nunique", first="min", last="max")
        out = span.join(last.reindex(columns=[c for c in self.contestants if c in last.columns]))
        return out.loc[sorted(out.index, key=lambda c: (len(c), c))]

    def __repr__(self) -> str:
        return (f"AggregateSeries({self.ballot!r}, {len(self.regions)} regions, {len(self.times)} snapshots, "
                f"{len(self.contestants)} contestants, {len(self.rejects)} rejects)")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.to_frame().to_html(escape=True, max_rows=40)


# ------------------------------------------------------------------------------------ helpers
def _count(value: Any) -> int | None:
    """A vote count: a non-negative whole number; None when absent; ValueError otherwise."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a count")
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,10}\s*", value):
        number = int(value)
    else:
        raise ValueError(f"{str(value)[:40]!r} is not a count")
    if number < 0:
        raise ValueError(f"negative count {number}")
    return number


def _wib(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"ts {text!r} is not a string")
    try:
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"ts {text[:40]!r} is not YYYY-MM-DD HH:MM:SS") from None
    return text


def _wib_column(texts: pd.Series) -> pd.Series:
    """Validated ``ts`` strings -> WIB timestamps, in one vectorised parse."""
    return pd.to_datetime(texts, format="%Y-%m-%d %H:%M:%S").dt.tz_localize(WIB)


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if "votes" in frame:
        frame["votes"] = frame["votes"].astype("Int64")
    for name in ("tps_total", "tps_reported"):
        if name in frame:
            frame[name] = frame[name].astype("Int64")
    if "tps_share" in frame:
        frame["tps_share"] = frame["tps_share"].astype(float)
    for name in ("region", "level", "contestant"):
        if name in frame:
            frame[name] = frame[name].astype(str)
    return frame


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["votes"] = frame["votes"].astype("Int64")
    for name in ("region", "level", "contestant"):
        frame[name] = frame[name].astype(str)
    return frame


def _counts_column(column: pd.Series) -> pd.Series:
    """Non-negative whole numbers as float (NaN where a cell is not a count)."""
    if pd.api.types.is_integer_dtype(column):
        return column.where(column >= 0).astype(float)
    text = column.astype(str)
    return pd.to_numeric(text.where(text.str.fullmatch(r"\s*[0-9]{1,10}\s*")), errors="coerce")


def _dedupe_wide(frame: pd.DataFrame, contestants: list[str], rejects: list[dict], source: str,
                 region: str) -> pd.DataFrame:
    """One row per ``time`` (the first fetch); a repeat whose numbers differ is a reject."""
    frame = frame.sort_values(["time", "fetched"], kind="stable")
    first = frame.drop_duplicates("time", keep="first")
    repeats = frame[frame.duplicated("time", keep="first")]
    if len(repeats):
        base = first.set_index("time")[contestants].loc[repeats["time"]].to_numpy()
        differ = (repeats[contestants].to_numpy() != base).any(axis=1)
        for time in repeats["time"][differ]:
            rejects.append({"source": source, "row": f"ts {time:%Y-%m-%d %H:%M:%S}, region {region}",
                            "reason": "a repeat of this ts has other numbers than its first fetch; the first is kept"})
    return first.reset_index(drop=True)


def _dedupe(votes: pd.DataFrame, rejects: list[dict], source: str) -> pd.DataFrame:
    """Keep the first fetch of each (time, region, contestant); a later fetch that disagrees is a reject."""
    if votes.empty:
        return votes
    votes = votes.sort_values(["time", "fetched"], kind="stable")
    key = ["time", "region", "contestant"]
    first = votes.drop_duplicates(key, keep="first")
    repeats = votes[votes.duplicated(key, keep="first")]
    if len(repeats):
        merged = repeats.merge(first[key + ["votes"]], on=key, suffixes=("", "_first"))
        differ = merged[merged["votes"].ne(merged["votes_first"]).fillna(True)]
        for row in differ.itertuples():
            rejects.append({"source": source, "row": f"ts {row.time:%Y-%m-%d %H:%M:%S}, region {row.region}",
                            "reason": f"a repeat of this ts gives {row.contestant} = {row.votes}, the first fetch "
                                      f"{row.votes_first}; the first is kept"})
    return first.reset_index(drop=True)


# ------------------------------------------------------------------------------------ readers
def read_national_history(path: str | Path) -> AggregateSeries:
    """The hourly polls of the national ``hhcw/ppwp.json`` (JSON lines, gzip or plain) as a series.

    Regions: ``"0"`` (the body's ``chart``) and each province of its ``table``. Progress: the
    national TPS count is exact (``progres``); a province's is ``persen`` x its TPS count from the
    region tree, rounded (``tps_exact`` False): ``persen`` has two decimals, so the estimate is
    good to about 0.005 % of the province's TPS (7 TPS in Jawa Barat).
    """
    path = Path(path)
    if not path.is_file():
        raise AggregateFileError(f"no national history file at {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    province_tps = province_table()["tps"].astype(int).to_dict()
    votes, progress, rejects = [], [], []
    source = path.name
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = list(handle)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise AggregateFileError(f"{path} cannot be read: {err}") from None
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"not JSON ({err.msg} at character {err.pos})") from None
            body = record.get("raw_data") if isinstance(record, dict) else None
            if not isinstance(body, dict):
                raise ValueError("no raw_data body")
            time = _wib(body.get("ts"))
            fetched = record.get("local_timestamp")
            chart, table = body.get("chart"), body.get("table")
            if not isinstance(chart, dict) or not isinstance(table, dict):
                raise ValueError("chart or table is not an object")
            parts = [("0", chart)] + [(str(code), child) for code, child in table.items()]
            line_votes, line_progress = [], []
            for region, node in parts:
                if not isinstance(node, dict):
                    raise ValueError(f"region {region[:20]!r} is not an object")
                level = "national" if region == "0" else "province"
                if level == "province" and region not in province_tps:
                    raise ValueError(f"unknown province code {region[:20]!r}")
                for sirekap_id, ballot_number in PPWP_CANDIDATES.items():
                    count = _count(node.get(sirekap_id))
                    if count is not None:  # a child without data has no keys: missing, not zero
                        line_votes.append({"time": time, "fetched": fetched, "region": region, "level": level,
                                           "contestant": ballot_number, "votes": count})
                share = node.get("persen")
                share = float(share) if isinstance(share, (int, float)) and not isinstance(share, bool) else np.nan
                if region == "0":
                    prog = body.get("progres") or {}
                    total, reported, exact = _count(prog.get("total")), _count(prog.get("progres")), True
                else:
                    total, exact = province_tps[region], False
                    reported = None if np.isnan(share) else int(round(share / 100 * total))
                line_progress.append({"time": time, "region": region, "level": level, "tps_share": share,
                                      "tps_total": total, "tps_reported": reported, "tps_exact": exact})
        except (ValueError, TypeError, AttributeError) as err:
            rejects.append({"source": source, "row": where, "reason": str(err)})
            continue
        votes += line_votes
        progress += line_progress
    votes_frame = _frame(votes, VOTE_COLUMNS)
    # Fetch times are UTC ISO strings; one vectorised parse (an unreadable one becomes NaT).
    votes_frame["fetched"] = pd.to_datetime(votes_frame["fetched"], utc=True, errors="coerce", format="ISO8601")
    votes_frame["time"] = _wib_column(votes_frame["time"])
    votes_frame = _dedupe(votes_frame, rejects, source)
    progress_frame = _frame(progress, PROGRESS_COLUMNS)
    progress_frame["time"] = _wib_column(progress_frame["time"])
    progress_frame = progress_frame.drop_duplicates(["time", "region"]).reset_index(drop=True)
    return AggregateSeries("ppwp", votes_frame, progress_frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS),
                           contestants=tuple(PPWP_CANDIDATES.values()), labels=dict(PPWP_LABELS), source=str(path))


def _province_files(folder: Path, prefix: str) -> dict[str, Path]:
    pattern = re.compile(rf"^{re.escape(prefix)}(.+)\.csv(\.gz)?$")
    return {m.group(1): p for p in sorted(folder.iterdir()) if (m := pattern.match(p.name))}


def read_province_hourly(folder: str | Path, *, ballot: str = "ppwp", provinces: Iterable[str] | None = None,
                         national: bool = True) -> AggregateSeries:
    """The per-province hourly CSVs of one ballot (``ppwp`` or ``pdpr``) as a series.

    ``provinces`` restricts to those codes. With ``national`` (and every province read), region
    ``"0"`` is added as the sum over provinces at each ``ts`` that every province file has (the
    files were cut from the same national body, so their ``ts`` agree). No TPS counts: ``progress``
    is empty.
    """
    folder = Path(folder)
    if ballot not in ("ppwp", "pdpr"):
        raise ValueError(f"ballot must be 'ppwp' or 'pdpr', got {ballot!r}")
    if not folder.is_dir():
        raise AggregateFileError(f"no province_hourly folder at {folder}")
    prefix = "votes_0_" if ballot == "ppwp" else "votes_dpr_0_"
    found = _province_files(folder, prefix)
    table = province_table()
    by_slug = dict(zip(table["slug"], table.index))
    wanted = None if provinces is None else {str(p) for p in provinces}
    if ballot == "ppwp":
        columns = dict(PPWP_COLUMNS)
        contestants, labels = tuple(PPWP_COLUMNS.values()), dict(PPWP_LABELS)
    else:
        columns = dict(zip(PARTIES_2024["short"], PARTIES_2024.index))
        contestants = tuple(PARTIES_2024.index)
        labels = {n: f"{n} {s}" for n, s in PARTIES_2024["short"].items()}
    votes, rejects = [], []
    for file_slug, path in found.items():
        code = by_slug.get(file_slug)
        if code is None:
            rejects.append({"source": path.name, "row": "file", "reason": f"no province is named like {file_slug!r}"})
            continue
        if wanted is not None and code not in wanted:
            continue
        try:
            # Integer columns parse as int64 directly; only a column with something else in it is
            # checked cell by cell (_counts_column).
            raw = pd.read_csv(path, dtype={"ts": str, "created_at": str}, keep_default_na=False)
        except (OSError, EOFError, ValueError, UnicodeDecodeError) as err:
            rejects.append({"source": path.name, "row": "file", "reason": f"unreadable: {err}"})
            continue
        missing = [c for c in ("ts", *columns) if c not in raw.columns]
        if missing:
            rejects.append({"source": path.name, "row": "file", "reason": f"missing columns: {', '.join(missing)}"})
            continue
        extra = [c for c in raw.columns if c not in ("ts", "created_at", *columns)]
        if extra:
            rejects.append({"source": path.name, "row": "file", "reason": f"columns not read: {', '.join(extra)}"})
        times = pd.to_datetime(raw["ts"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
        fetched = (pd.to_datetime(raw["created_at"], utc=True, errors="coerce", format="ISO8601")
                   if "created_at" in raw else pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]"))
        numbers = pd.DataFrame({c: _counts_column(raw[c]) for c in columns})
        bad_ts = times.isna()
        bad_num = numbers.isna().any(axis=1)
        for i in np.flatnonzero(bad_ts | bad_num):
            what = (f"ts {str(raw['ts'].iat[i])[:40]!r} is not YYYY-MM-DD HH:MM:SS" if bad_ts.iat[i] else
                    "not a count: " + ", ".join(f"{c}={str(raw[c].iat[i])[:20]!r}" for c in columns if pd.isna(numbers[c].iat[i])))
            rejects.append({"source": path.name, "row": f"line {i + 2}", "reason": what})
        keep = ~(bad_ts | bad_num).to_numpy()
        frame = numbers[keep].rename(columns=columns).astype("int64")
        frame.insert(0, "time", times[keep].dt.tz_localize(WIB).to_numpy())
        frame.insert(1, "fetched", fetched[keep].to_numpy())
        frame = _dedupe_wide(frame, list(columns.values()), rejects, path.name, code)
        long = frame.melt(id_vars=["time", "fetched"], var_name="contestant", value_name="votes")
        long["region"], long["level"] = code, "province"
        votes.append(long[VOTE_COLUMNS])
    vote_frame = _typed(pd.concat(votes, ignore_index=True)) if votes else _frame([], VOTE_COLUMNS)
    if national and wanted is None and len(vote_frame):
        read = vote_frame["region"].nunique()
        per_time = vote_frame.groupby("time")["region"].nunique()
        complete = per_time.index[per_time == read]
        sums = (vote_frame[vote_frame["time"].isin(complete)]
                .groupby(["time", "contestant"], as_index=False).agg(votes=("votes", "sum"), fetched=("fetched", "min")))
        sums["region"], sums["level"] = "0", "national"
        vote_frame = pd.concat([vote_frame, sums[VOTE_COLUMNS]], ignore_index=True)
        if len(per_time) > len(complete):
            rejects.append({"source": f"{prefix}*", "row": "national sum",
                            "reason": f"{len(per_time) - len(complete)} ts not in every province file: no national total there"})
    return AggregateSeries(ballot, vote_frame.reset_index(drop=True), _frame([], PROGRESS_COLUMNS),
                           pd.DataFrame(rejects, columns=REJECT_COLUMNS), contestants=contestants, labels=labels,
                           source=str(folder))


def read_all_levels(path: str | Path) -> AggregateSeries:
    """The cached aggregate bodies of every level (one row each) as a series of single snapshots.

    The level comes from the code's length (1: national "0", 4: regency, 6: district, 10: village);
    a row whose ``level`` column disagrees, or whose numbers are not counts, is a reject.
    """
    path = Path(path)
    if not path.is_file():
        raise AggregateFileError(f"no aggregates file at {path}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    needed = ["level", "kode", "ts", "v01", "v02", "v03", "persen", "tps_total", "tps_progres"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise AggregateFileError(f"{path.name}: missing columns {', '.join(missing)}")
    column_level = {"0": "national", "1": "province", "2": "regency", "3": "district", "4": "village"}
    votes, progress, rejects = [], [], []
    for i, row in enumerate(raw.to_dict("records")):
        where = f"line {i + 2}"
        try:
            code = row["kode"].strip()
            if not re.fullmatch(r"[0-9]+", code) or len(code) not in LEVEL_BY_CODE_LENGTH:
                raise ValueError(f"kode {code[:20]!r} is not a region code")
            level = LEVEL_BY_CODE_LENGTH[len(code)]
            if column_level.get(row["level"].strip()) != level:
                raise ValueError(f"level {row['level'][:5]!r} does not match the {len(code)}-digit kode {code}")
            time = _wib(row["ts"])
            counts = {n: _count(row[f"v{n}"].strip() or None) for n in ("01", "02", "03")}
            total, reported = _count(row["tps_total"].strip() or None), _count(row["tps_progres"].strip() or None)
            share = float(row["persen"]) if row["persen"].strip() else np.nan
            if total is not None and reported is not None and reported > total:
                raise ValueError(f"tps_progres {reported} exceeds tps_total {total}")
        except ValueError as err:
            rejects.append({"source": path.name, "row": where, "reason": str(err)})
            continue
        region = "0" if code == "0" else code
        for number, count in counts.items():
            if count is not None:
                votes.append({"time": time, "fetched": pd.NaT, "region": region, "level": level,
                              "contestant": number, "votes": count})
        progress.append({"time": time, "region": region, "level": level, "tps_share": share,
                         "tps_total": total, "tps_reported": reported, "tps_exact": True})
    votes_frame, progress_frame = _frame(votes, VOTE_COLUMNS), _frame(progress, PROGRESS_COLUMNS)
    votes_frame["time"] = _wib_column(votes_frame["time"])
    progress_frame["time"] = _wib_column(progress_frame["time"])
    return AggregateSeries("ppwp", _dedupe(votes_frame, rejects, path.name), progress_frame, pd.DataFrame(rejects, columns=REJECT_COLUMNS),
                           contestants=tuple(PPWP_CANDIDATES.values()), labels=dict(PPWP_LABELS), source=str(path))
