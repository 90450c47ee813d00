"""The flagged-TPS reader: every row in the table or the rejects, codes from the photo link, real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from analysis.consistency import check_consistency, find_misreadings
from analysis.sources.sirekap.flagged import COLUMNS, parse_flagged, read_flagged

FLAGGED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirekap" / "flagged_tps"
LINK = "https://sirekap-obj-formc.kpu.go.id/a2d3/pemilu/ppwp/19/01/06/20/03/{code}-20240214-202435--bb99.jpg"
HEADER = list(COLUMNS)


def row(code="1901062003004", valid="47", total="54", p1="144", p2="90", p3="15", **names):
    values = {"Prov": "KEPULAUAN BANGKA BELITUNG", "Kota": "BANGKA", "Kec": "BAKAM", "Kel": "DALIL", "TPS": "TPS 004",
              "Suara Sah": valid, "Total Suara": total, "Paslon 1": p1, "Paslon 2": p2, "Paslon 3": p3,
              "Link Dokumen": LINK.format(code=code)}
    values.update(names)
    return values


def write(path: Path, rows) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        pd.DataFrame(rows, columns=HEADER).to_csv(handle, index=False)
    return path


def test_rows_become_an_election_with_codes_from_the_link(tmp_path):
    rows = [row(), row(code="1901021002002", valid="", p1="68"),
            row(code="99AE010001001", Prov="Luar Negeri", TPS="POS 001"),
            row(code="1901021012011", p2="7x"), row(**{"Link Dokumen": "https://example.org/no-code.jpg"}),
            row(code="1901062003004", valid="48")]
    election, rejects = read_flagged(write(tmp_path / "Sirekap_Bangka.csv.gz", rows))
    assert len(election) + len(rejects) == len(rows)
    table = election.table
    assert list(table.index) == ["1901062003004", "1901021002002", "99AE010001001"]
    assert table.loc["1901062003004", ["province", "regency", "district", "village"]].tolist() == ["19", "1901", "190106", "1901062003"]
    assert table.loc["99AE010001001", "province"] == "99"
    assert pd.isna(table.loc["1901021002002", "valid"]) and table.loc["1901062003004", "valid"] == 47  # blank is <NA>, not 0
    assert table["registered"].isna().all() and table["voters"].isna().all() and table["invalid"].isna().all()
    assert table.loc["1901062003004", "ballots"] == 54 and table.loc["1901062003004", "01"] == 144
    assert str(table.loc["1901062003004", "photo_time"]) == "2024-02-14 20:24:35+07:00"
    assert sorted(rejects["reason"]) == ["02 is not a count", "a second row for the same TPS code",
                                         "the photo link carries no TPS code"]
    assert set(rejects["source"]) == {"Sirekap_Bangka.csv.gz"} and rejects["source_row"].min() >= 2


def test_a_file_without_the_columns_is_an_error(tmp_path):
    path = tmp_path / "Sirekap_X.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_flagged(path)
    with pytest.raises(FileNotFoundError):
        read_flagged(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no Sirekap"):
        read_flagged(empty)


cells = st.one_of(st.text(max_size=6), st.integers(-5, 10**10).map(str), st.just(""))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cells, cells, cells, cells, cells, st.sampled_from(["1901062003004", "99AE010001001", "x", "1901062003"])),
                min_size=1, max_size=6))
def test_every_row_is_kept_or_rejected_with_a_reason(values):
    frame = pd.DataFrame([row(code=code, valid=a, total=b, p1=c, p2=d, p3=e) for a, b, c, d, e, code in values],
                         columns=HEADER).astype(str)
    kept, rejects = parse_flagged(frame, source="x.csv")
    assert len(kept) + len(rejects) == len(frame)
    assert (rejects["reason"] != "").all()
    for name in ("valid", "ballots", "01", "02", "03"):
        numbers = kept[name].dropna()
        assert ((numbers >= 0) & (numbers < 10**9)).all()


@pytest.fixture(scope="module")
def flagged():
    if not FLAGGED.exists():
        pytest.skip(f"flagged TPS files not found: {FLAGGED} (../shared is absent)")
    return read_flagged(FLAGGED)


def test_the_real_files_give_11018_tps_whose_candidates_do_not_add_up(flagged):
    election, rejects = flagged
    # shared/README.md: 11,018 TPS in 24 provinces where the sum of candidates != suara_sah.
    assert len(election) == 11_018 and rejects.empty
    assert election.table["source"].nunique() == 24
    checks = check_consistency(election)
    rule = checks.coverage.loc["candidates_sum_to_valid"]
    assert rule["failed"] == rule["evaluable"] == 11_018 - int(election.table["valid"].isna().sum())
    assert set(checks.not_checked) >= {"voter_kinds_sum_to_total", "male_plus_female_is_total:pemilih_dpt"}


def test_every_real_inconsistent_form_is_accounted_for(flagged):
    election, _ = flagged
    found = find_misreadings(election)
    c = found.counts
    assert c["inconsistent"] == c["excluded_psu"] + c["excluded_blank"] + c["explained"] + c["unexplained"]
    assert len(found.table) == c["explained"] + c["unexplained"] and len(found.excluded) == c["excluded_blank"]
    explained = found.table[found.table["explained"]]
    assert explained["field"].isin(["01", "02", "03", "valid", "ballots"]).all()
    # The 1,000-odd forms with an all-zero chart and the votes sections left at 0 are not misreadings.
    assert found.excluded["reason"].str.contains("chart").sum() > 500


def test_total_suara_is_suara_total_where_the_jakarta_sample_overlaps(flagged):
    jakarta_zip = FLAGGED.parent / "tps_json_dki_sample.zip"
    if not jakarta_zip.exists():
        pytest.skip(f"{jakarta_zip} is absent")
    from analysis.sources.sirekap.parse import read_tps_bodies

    election, _ = flagged
    jakarta, _ = read_tps_bodies(jakarta_zip)
    common = election.table.index.intersection(jakarta.table.index)
    assert len(common) == 33
    mine, theirs = election.table.loc[common], jakarta.table.loc[common]
    # "Total Suara" is all ballots counted (suara_total), not all voters (pengguna_total_j).
    assert (mine["valid"] == theirs["valid"]).all() and (mine["ballots"] == theirs["ballots"]).all()
    assert (mine["ballots"] != theirs["voters"]).sum() >= 5
