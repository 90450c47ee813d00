"""Readers of Sirekap aggregate series: quirks, rejects, and cross-checks on the real files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.sources.sirekap.aggregates import (
    PARTIES_2024, AggregateFileError, province_table, read_all_levels, read_national_history,
    read_province_hourly, slug,
)

AGGREGATES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sirekap" / "aggregates"
EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sirekap" / "examples"


def needs_shared():
    if not AGGREGATES.is_dir():
        pytest.skip(f"real aggregate series not found: {AGGREGATES} (../shared is absent)")


def body(ts: str, national: tuple[int, int, int], table: dict, progres=(823236, 500000)) -> dict:
    chart = dict(zip(("100025", "100026", "100027"), national), persen=60.0)
    return {"ts": ts, "psu": "Reguler", "mode": "hhcw", "chart": chart, "table": table,
            "progres": {"total": progres[0], "progres": progres[1]}}


def child(votes=None, persen=50.0) -> dict:
    node = {"psu": "Reguler", "persen": persen, "status_progress": votes is not None}
    if votes is not None:
        node.update(zip(("100025", "100026", "100027"), votes))
    return node


def write_history(path: Path, records: list) -> Path:
    with gzip.open(path, "wt") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


# ------------------------------------------------------------------------------ national history
def test_national_history_keeps_each_ts_once_and_rejects_bad_lines(tmp_path):
    first = body("2024-02-17 19:30:11", (10, 20, 30), {"11": child((4, 5, 6)), "95": child(None, 0.05)})
    second = body("2024-02-19 07:00:15", (12, 25, 31), {"11": child((5, 7, 6), 60.0), "95": child((1, 2, 0), 1.0)},
                  progres=(823236, 500100))
    disagreeing = body("2024-02-19 07:00:15", (99, 25, 31), {"11": child((5, 7, 6))})
    negative = body("2024-02-19 08:00:15", (12, -1, 31), {})
    records = [
        {"raw_data": first, "local_timestamp": "2024-02-18T14:34:25Z"},
        {"raw_data": first, "local_timestamp": "2024-02-18T14:36:55Z"},   # same ts polled again
        {"raw_data": second, "local_timestamp": "2024-02-19T01:00:00Z"},
        {"raw_data": disagreeing, "local_timestamp": "2024-02-19T02:00:00Z"},
        "{not json",
        {"raw_data": negative, "local_timestamp": "2024-02-19T03:00:00Z"},
        {"raw_data": body("19 Feb 2024", (1, 2, 3), {}), "local_timestamp": "x"},
        {"raw_data": body("2024-02-19 09:00:15", (1, 2, 3), {"77": child((1, 1, 1))})},
    ]
    series = read_national_history(write_history(tmp_path / "h.jsonl.gz", records))
    assert len(series.times) == 2
    national = series.wide("0")
    assert national.loc[national.index[1]].tolist() == [12, 25, 31]   # the first fetch of a repeated ts wins
    # Papua Pegunungan (95) has no candidate keys in the first body: missing, not zero.
    papua = series.wide("95")
    assert len(papua) == 1 and papua.iloc[0].tolist() == [1, 2, 0]
    reasons = " | ".join(series.rejects["reason"])
    assert len(series.rejects) == 5, series.rejects
    for expected in ("first is kept", "negative count", "not YYYY-MM-DD", "unknown province code '77'", "not JSON"):
        assert expected in reasons
    assert any("line 5" == row for row in series.rejects["row"])       # the line that is not JSON
    prog = series.progress.set_index(["region", "time"]).sort_index()
    assert prog.loc["0", "tps_reported"].tolist() == [500000, 500100]
    aceh = prog.loc["11"]
    tps = province_table().loc["11", "tps"]
    assert aceh["tps_reported"].tolist() == [round(0.5 * tps), round(0.6 * tps)]
    assert not aceh["tps_exact"].any()
    assert series.votes["time"].dt.tz is not None


def test_national_history_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AggregateFileError, match="no national history"):
        read_national_history(tmp_path / "absent.jsonl.gz")


# ------------------------------------------------------------------------------ province CSVs
def test_province_slugs_cover_every_province_and_overseas():
    table = province_table()
    assert len(table) == 39 and table.loc["91", "slug"] == "p_a_p_u_a" and table.loc["99", "slug"] == "luar_negeri"
    assert slug("DAERAH ISTIMEWA YOGYAKARTA") == "daerah_istimewa_yogyakarta"


def test_party_numbers_follow_the_2024_ballot():
    # PSI is number 15 on the 2024 DPR ballot; Partai Ummat 24 (18-23 are Aceh's local parties).
    assert PARTIES_2024.loc["15", "short"] == "PSI"
    assert PARTIES_2024.loc["24", "short"] == "Partai Ummat"
    assert list(PARTIES_2024.index[:17]) == [f"{n:02d}" for n in range(1, 18)]


def write_csv(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def test_province_hourly_dedupes_rejects_and_sums_the_nation(tmp_path):
    header = "ts,amin,pagi,gama,created_at\n"
    write_csv(tmp_path / "votes_0_aceh.csv.gz", header
              + "2024-02-25 16:00:16,100,50,5,2024-02-25T09:29:38Z\n"
              + "2024-02-25 16:00:16,100,50,5,2024-02-25T10:29:38Z\n"      # repeated poll
              + "2024-02-25 17:00:15,110,-3,6,2024-02-25T10:05:51Z\n"      # negative
              + "2024-02-25 18:00:15,120,abc,6,2024-02-25T11:05:51Z\n"     # not a number
              + "2024-02-25 19:00:15,130,60,7,2024-02-25T12:05:51Z\n")
    write_csv(tmp_path / "votes_0_bali.csv.gz", header
              + "2024-02-25 16:00:16,1,2,3,2024-02-25T09:29:38Z\n"
              + "2024-02-25 19:00:15,2,3,4,2024-02-25T12:05:51Z\n"
              + "2024-02-25 20:00:15,2,3,5,2024-02-25T13:05:51Z\n")
    write_csv(tmp_path / "votes_0_atlantis.csv.gz", header)
    series = read_province_hourly(tmp_path, ballot="ppwp")
    assert series.wide("11").to_numpy().tolist() == [[100, 50, 5], [130, 60, 7]]
    national = series.wide("0")
    assert national.to_numpy().tolist() == [[101, 52, 8], [132, 63, 11]]   # only ts both provinces have
    reasons = " | ".join(series.rejects["reason"])
    for expected in ("not a count: pagi='-3'", "not a count: pagi='abc'", "no province is named like 'atlantis'",
                     "not in every province file"):
        assert expected in reasons, reasons
    assert series.progress.empty


def test_province_hourly_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="ballot"):
        read_province_hourly(tmp_path, ballot="pdpd")
    with pytest.raises(AggregateFileError):
        read_province_hourly(tmp_path / "absent")


def test_all_levels_reads_level_from_the_code(tmp_path):
    path = tmp_path / "all.csv"
    path.write_text("level,kode,ts,psu,mode,v01,v02,v03,persen,tps_total,tps_progres\n"
                    "0,0,2024-03-07 15:00:16,Reguler,hhcw,31374310,75357899,21374165,78.11,823378,643124\n"
                    "2,1101,2024-02-26 09:00:15,Reguler,hhcw,111762,20829,2372,91.39,697,637\n"
                    "3,1101,2024-02-26 09:00:15,Reguler,hhcw,1,2,3,91.39,697,637\n"
                    "4,1101012017,2024-02-16 12:51:15,Reguler,,10,x,3,100.0,1,1\n"
                    "4,1101012018,2024-02-16 12:51:15,Reguler,,10,2,3,100.0,1,2\n")
    series = read_all_levels(path)
    assert set(series.votes["level"]) == {"national", "regency"}
    assert len(series.rejects) == 3
    assert "does not match" in series.rejects["reason"].iat[0]
    assert series.progress.set_index("region").loc["1101", "tps_reported"] == 637


# ------------------------------------------------------------------------------ the real files
@pytest.fixture(scope="module")
def national_history():
    needs_shared()
    return read_national_history(AGGREGATES / "ppwp_national_hourly_history.jsonl.gz")


def test_real_history_ends_at_sirekaps_last_published_totals(national_history):
    # sirekap-api.md, facts to check against: the last national hhcw of 2024-04-03.
    series = national_history
    assert len(series.rejects) == 0
    last = series.wide("0").iloc[-1]
    assert last.tolist() == [31394237, 75375349, 21375230]
    prog = series.progress[series.progress["region"] == "0"].sort_values("time").iloc[-1]
    assert (prog["tps_reported"], prog["tps_total"]) == (648979, 823378)
    with gzip.open(AGGREGATES / "ppwp_national_hourly_history.jsonl.gz", "rt") as handle:
        distinct = {json.loads(line)["raw_data"]["ts"] for line in handle}
    assert len(series.times) == len(distinct) == 649


def test_real_provinces_add_up_to_the_nation_in_every_snapshot(national_history):
    votes = national_history.votes
    provinces = votes[votes["region"] != "0"].groupby(["time", "contestant"])["votes"].sum()
    nation = votes[votes["region"] == "0"].set_index(["time", "contestant"])["votes"]
    assert (provinces.reindex(nation.index) == nation).all()


def test_real_province_files_agree_with_the_national_history(national_history):
    needs_shared()
    hourly = read_province_hourly(AGGREGATES / "province_hourly", ballot="ppwp", provinces=["31", "91", "99"])
    merged = hourly.votes.merge(national_history.votes, on=["time", "region", "contestant"], suffixes=("_h", "_n"))
    assert len(merged) == len(hourly.votes) > 0
    assert (merged["votes_h"] == merged["votes_n"]).all()


def test_real_dpr_header_is_the_ballot_order():
    needs_shared()
    header = pd.read_csv(AGGREGATES / "province_hourly" / "votes_dpr_0_aceh.csv.gz", nrows=0).columns
    parties = [c for c in header if c not in ("ts", "created_at")]
    assert parties == PARTIES_2024["short"].tolist()
    series = read_province_hourly(AGGREGATES / "province_hourly", ballot="pdpr", provinces=["11"])
    assert len(series.rejects) == 0 and len(series.times) == 611
