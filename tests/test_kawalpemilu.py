"""Tests of the KawalPemilu desa reader: name matching, every row accounted for, the real files' match rate."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.sources.kawalpemilu import (KawalPemiluFileError, coverage, exact_key, loose_key, match_names,
                                          read_desa, read_hierarchy)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DESA = SHARED / "kawalpemilu" / "desa_ppwp_2024.csv.gz"
HIERARCHY = SHARED / "kawalpemilu" / "tps_hierarchy.json.gz"
WILAYAH = SHARED / "sirekap" / "wilayah_ppwp_all_levels.csv.gz"

ID2NAME = {
    "11": "ACEH", "1101": "ACEH SELATAN", "110101": "BAKONGAN", "1101012001": "KEUDE BAKONGAN",
    "1101012002": "UJONG MANGKI", "1101012003": "ANJAREUW", "1101012004": "ANJAREUW.",
    "31": "DKI JAKARTA", "3101": "KEP. SERIBU", "310101": "KEPULAUAN SERIBU UTARA", "3101011001": "PULAU PANGGANG",
    "3101011002": "PULAU KELAPA", "3101011003": "PULAU KELAPA",
}
TPS = {"1101012001": [3], "1101012002": [2], "1101012003": [1], "1101012004": [1, 901, 902],
       "3101011001": [4], "3101011002": [2], "3101011003": [2]}
HEADER = ("prov_name,prov_id,kab_name,kab_id,kec_name,kec_id,kel_name,kel_id,paslon1,paslon1_perc,paslon2,"
          "paslon2_perc,paslon3,paslon3_perc,tot_tps_foto_approved_kawal_pemilu,tot_tps,tps_coverage_perc")
ROWS = [
    "ACEH,1,ACEH SELATAN,1,BAKONGAN,1,KEUDE BAKONGAN,1,597,,119,,21,,3,3,100%",     # matched
    "ACEH,1,ACEH SELATAN,1,BAKONGAN,1,ujong  mangki,2,10,,20,,30,,1,2,50%",        # matched (case, spaces)
    "ACEH,1,ACEH SELATAN,1,BAKONGAN,1,ANJAREUW.,3,5,,5,,5,,1,1,100%",              # matched exactly, not loosely
    "DKI JAKARTA,11,KEP SERIBU,1,KEPULAUAN SERIBU UTARA,1,PULAU PANGGANG,1,,,,,,,,4,",  # loose kabupaten, no votes
    "DKI JAKARTA,11,KEP. SERIBU,1,KEPULAUAN SERIBU UTARA,1,PULAU KELAPA,2,1,,2,,3,,1,2,50%",  # ambiguous desa
    "DKI JAKARTA,11,KEP. SERIBU,1,KEPULAUAN SERIBU SELATAN,2,PULAU TIDUNG,1,1,,2,,3,,1,2,50%",  # unmatched kecamatan
    "ACEH,1,ACEH SELATAN,1,BAKONGAN,1,KEUDE BAKONGAN,1,1,,2,,3,,3,3,100%",          # second row for one desa
    "ACEH,1,ACEH SELATAN,1,BAKONGAN,1,ANJAREUW,4,-5,,5,,5,,1,1,100%",              # negative count
    "LUAR NEGERI,39,ARAB SAUDI,4,,,,,10,,20,,30,,5,5,100%",                         # overseas
]


@pytest.fixture()
def files(tmp_path):
    desa = tmp_path / "desa.csv"
    desa.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    hierarchy = tmp_path / "hierarchy.json.gz"
    with gzip.open(hierarchy, "wt", encoding="utf-8") as handle:
        json.dump({"id2name": ID2NAME, "tps": TPS}, handle)
    return desa, hierarchy


def test_every_row_is_matched_or_rejected_with_its_reason(files):
    desa, hierarchy = files
    result = read_desa(desa, hierarchy=hierarchy)
    status = result.matches.set_index("row")["status"]
    assert len(result.matches) == len(ROWS)
    assert len(result.election) + len(result.rejects) == len(ROWS)
    assert status[1] == "matched" and status[2] == "matched" and status[3] == "matched"
    assert status[4] == "ambiguous village" and status[5] == "unmatched district"
    assert status[0] == status[6] == "two rows match the same desa"
    assert status[7] == "a count is not a whole non-negative number"
    assert status[8] == "overseas (country level only)"
    table = result.election.table
    assert sorted(table.index) == ["1101012002", "1101012004", "3101011001"]
    assert table.loc["1101012004", "village_name"] == "ANJAREUW."  # the exact spelling wins
    assert result.matches.set_index("row").loc[3, "how"] == "loose"  # "KEP SERIBU" = "KEP. SERIBU"
    assert pd.isna(table.loc["3101011001", "01"])  # no approved photo: missing, not 0
    assert table.loc["1101012002", "coverage"] == 0.5
    assert "<table" in result._repr_html_()


def test_coverage_counts_desa_absent_from_the_file(files):
    desa, hierarchy = files
    names = read_hierarchy(hierarchy)
    assert names.set_index("code").loc["1101012004", "tps"] == 3  # 1 regular + 901, 902
    result = read_desa(desa, hierarchy=names)
    cov = coverage(result, names, "district")
    # 110101 has 3 + 2 + 1 + 3 TPS in the hierarchy; the file's matched desa approved 1 + 1
    assert cov.loc["110101", "tps_total"] == 9 and cov.loc["110101", "tps_approved"] == 2


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(KawalPemiluFileError, match="no KawalPemilu desa file"):
        read_desa(tmp_path / "missing.csv", hierarchy=tmp_path / "h.json")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(KawalPemiluFileError, match="missing columns"):
        read_desa(bad, hierarchy=tmp_path / "h.json")
    junk = tmp_path / "h.json"
    junk.write_text("[1, 2]")
    with pytest.raises(KawalPemiluFileError, match="not a KawalPemilu hierarchy"):
        read_hierarchy(junk)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ABCdef .-'", min_size=1, max_size=20))
def test_name_keys_ignore_case_spacing_and_punctuation(name):
    assert exact_key(name) == exact_key("  " + name.lower() + " ")
    assert loose_key(name) == loose_key(name.replace(".", "").replace(" ", ""))


def test_match_names_never_guesses():
    names = read_hierarchy_frame({"11": "A", "1101": "B", "110101": "C", "1101012001": "D", "1101012002": "D"})
    frame = pd.DataFrame({"prov_name": ["A"], "kab_name": ["B"], "kec_name": ["C"], "kel_name": ["D"]})
    assert match_names(frame, names).iloc[0].tolist() == ["", "ambiguous village", "exact"]


def read_hierarchy_frame(id2name):
    rows = []
    for code, name in id2name.items():
        level = {2: "province", 4: "regency", 6: "district", 10: "village"}[len(code)]
        parent = {2: "", 4: code[:2], 6: code[:4], 10: code[:6]}[len(code)]
        rows.append((code, name, level, parent, float("nan")))
    return pd.DataFrame(rows, columns=["code", "name", "level", "parent", "tps"])


@pytest.fixture(scope="module")
def real():
    if not (DESA.exists() and HIERARCHY.exists()):
        pytest.skip(f"KawalPemilu data not found under {SHARED} (../shared is absent)")
    names = read_hierarchy(HIERARCHY)
    return names, read_desa(DESA, hierarchy=names)


def test_real_file_every_domestic_desa_matches_by_kawalpemilu_names(real):
    names, result = real
    summary = result.match_summary()["rows"]
    assert summary.sum() == 33_571  # shared/README.md: 33,571 desa rows
    assert summary.get("overseas (country level only)") == 96
    assert summary.get("matched") == 33_571 - 96  # every domestic row, none ambiguous
    # The KPU codes are real: 10-digit desa codes of KawalPemilu's tree, with its TPS counts.
    assert names.loc[names["level"] == "village", "tps"].sum() == pytest.approx(823_332)


def test_real_file_sirekap_names_give_the_same_codes(real):
    if not WILAYAH.exists():
        pytest.skip(f"Sirekap region tree not found: {WILAYAH}")
    _, result = real
    sirekap = read_desa(DESA, wilayah=WILAYAH)
    both = result.matches.merge(sirekap.matches, on="row", suffixes=("", "_sirekap"))
    both = both[(both["status"] == "matched") & (both["status_sirekap"] == "matched")]
    assert len(both) / (33_571 - 96) > 0.98  # Sirekap spells some names differently ("KOTA ADM. ...")
    assert (both["code"] == both["code_sirekap"]).all()
