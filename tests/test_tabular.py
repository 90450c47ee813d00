from pathlib import Path

import pandas as pd
import pytest

from analysis.election import Election
from analysis.sources.tabular import MappingError, load_mapping, read_table

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/data/reference is absent")

MAPPING = '''
name = "Testland 2024"
[file]
sep = ";"
[levels]
state = "State"
county = "County"
[unit_id]
columns = ["County", "Station"]
[counts]
registered = "Eligible"
voters = ["Early", "On the day"]
valid = "sum_of_candidates"
invalid = "Spoilt"
[candidates]
A = "Alice Example"
B = "Bob Example"
[[filters]]
column = "County"
equals = ["TOTAL"]
'''


def write(tmp_path, rows, mapping=MAPPING):
    header = "State;County;Station;Eligible;Early;On the day;Spoilt;Alice Example;Bob Example"
    (tmp_path / "results.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    (tmp_path / "map.toml").write_text(mapping, encoding="utf-8")
    return tmp_path / "results.csv", tmp_path / "map.toml"


def test_mapping_features_sums_filters_and_ids(tmp_path):
    data, mapping = write(tmp_path, [
        "North;N1;1;500;20;280;5;100;195",
        "North;N1;2;400;0;300;0;150;150",
        "North;TOTAL;;900;20;580;5;250;345",
    ])
    election, rejects = read_table(data, mapping)
    assert isinstance(election, Election) and rejects.empty
    assert list(election.table.index) == ["N1/1", "N1/2"]
    assert election.table.loc["N1/1", "voters"] == 300 and election.table.loc["N1/1", "valid"] == 295
    assert election.levels == ("state", "county") and election.candidates == ("A", "B")
    assert election.provenance["rows_read"] == 3 and election.provenance["rows_filtered"] == 1
    assert len(election.provenance["input_sha256"]) == 64 and election.name == "Testland 2024"


def test_bad_rows_go_to_rejects_with_reasons_and_counts_reconcile(tmp_path):
    data, mapping = write(tmp_path, [
        "North;N1;1;500;20;280;5;100;195",
        "North;N1;2;lots;0;300;0;150;150",
        "North;N1;3;400;0;-3;0;150;150",
        "North;N1;4;400;0;300;0;150.5;150",
        ";N1;5;400;0;300;0;150;150",
        "North;N1;1;500;20;280;5;100;195",
    ])
    election, rejects = read_table(data, mapping)
    reasons = dict(zip(rejects["row"], rejects["reason"]))
    assert "registered ('Eligible') is not a number" in reasons[2]
    assert "voters ('On the day') is negative" in reasons[3]
    assert "candidate A ('Alice Example') is not a whole number" in reasons[4]
    assert "level state ('State') is empty" in reasons[5]
    assert "duplicate unit_id" in reasons[6]
    prov = election.provenance
    assert len(election) + len(rejects) == prov["rows_read"] - prov["rows_filtered"] == 6


def test_empty_cells_are_missing_not_zero(tmp_path):
    data, mapping = write(tmp_path, ["North;N1;1;500;20;280;;100;195"])
    election, _ = read_table(data, mapping)
    assert election.table.loc["N1/1", "invalid"] is pd.NA


@pytest.mark.parametrize("mapping, message", [
    (MAPPING.replace('"Eligible"', '"Elligible"'), "counts.registered = 'Elligible'"),
    (MAPPING.replace("[candidates]", "[candidats]"), "unknown keys candidats"),
    (MAPPING + '\n[profile]\nname = "sirekap"\n', "unknown profile 'sirekap'"),
    (MAPPING + '\n[profile]\nname = "polling_station"\nmax_registered = -1\n', "max_registered must be"),
    (MAPPING + '\n[names]\ncity = "County"\n', "[names] keys must be levels"),
    (MAPPING.replace("[counts]", "[counts]\nturnout = \"x\""), "unknown count keys turnout"),
    (MAPPING + "\n[[[", "not valid TOML"),
])
def test_mapping_errors_name_the_key(tmp_path, mapping, message):
    data, path = write(tmp_path, ["North;N1;1;500;20;280;5;100;195"], mapping)
    with pytest.raises(MappingError) as info:
        read_table(data, path)
    assert message in str(info.value)
    if "Elligible" in message:
        assert "Available:" in str(info.value) and "'Eligible'" in str(info.value)


def test_unknown_shipped_mapping_lists_the_shipped_ones():
    with pytest.raises(MappingError, match="shipped: albania_2013, canada_2011, kawalpemilu_desa_2024, poland_2020, russia_2011, russia_2012, sirekap_tps_2024, uganda_2011"):
        load_mapping("narnia_2024")


@needs_reference
@pytest.mark.parametrize("file, mapping, stations, registered", [
    ("russia_2011_duma.csv.gz", "russia_2011", 95_225, 109_229_337),   # methods.md section 4
    ("russia_2012_president.csv.gz", "russia_2012", 95_415, 109_860_331),
])
def test_russia_totals_match_methods(file, mapping, stations, registered):
    election, rejects = read_table(REFERENCE / file, mapping)
    assert rejects.empty and len(election) == stations
    assert election.totals().loc["total", "registered"] == registered


@needs_reference
def test_uganda_totals_match_methods():
    election, rejects = read_table(REFERENCE / "uganda_2011_president.csv.gz", "uganda_2011")
    totals = election.totals().loc["total"]
    assert rejects.empty and len(election) == 23_968
    assert (totals["MUSEVENI"], totals["valid"], totals["registered"]) == (5_436_639, 7_928_276, 13_954_129)


@needs_reference
def test_poland_totals_and_the_four_stations_without_numbers():
    election, rejects = read_table(REFERENCE / "poland_2020_president_round1.csv.gz", "poland_2020")
    assert len(election) + len(rejects) == 27_229
    # The 4 malformed rows are military stations abroad (Iraq, Lebanon, Kosovo) whose numbers are
    # "-": they are rejected with the reason, and the station sums fall short of the official
    # result by their votes (measured: 172 for Duda, 84 for Trzaskowski).
    assert len(rejects) == 4 and rejects["reason"].str.contains("is empty").all()
    totals = election.totals().loc["total"]
    for candidate, official in (("DUDA", 8_450_513), ("TRZASKOWSKI", 5_917_340)):
        assert 0 < official - totals[candidate] < 1_000


@needs_reference
def test_albania_precincts_and_prefecture_counts():
    election, rejects = read_table(REFERENCE / "albania_2013.csv.gz", "albania_2013")
    assert rejects.empty and len(election) == 5_508
    per_prefecture = election.table.groupby("prefecture").size()
    assert (per_prefecture["BERAT"], per_prefecture["DIBER"], per_prefecture["GJIROKASTER"]) == (300, 258, 237)  # Obs, methods.md


def test_every_count_of_the_contract_names_profiles_limits_and_extras(tmp_path):
    mapping = MAPPING.replace('[counts]', '[counts]\ndpt = "Eligible"\ndpk = "Spoilt"') + \
        '\n[profile]\nname = "polling_station"\nmax_registered = 450\n[extras]\nstation = "Station"\n[names]\ncounty = "County"\n'
    mapping = mapping.replace('county = "County"\n[unit_id]', 'county = ["State", "County"]\n[unit_id]')
    data, path = write(tmp_path, ["North;N1;1;500;20;280;5;100;195", "North;N1;2;400;0;300;0;150;150"], mapping)
    election, rejects = read_table(data, path)
    assert rejects.empty
    table = election.table
    assert table["dpt"].tolist() == [500, 400] and table["dpk_voters"].tolist() == [5, 0]
    assert table["county"].tolist() == ["North/N1", "North/N1"] and table["county_name"].tolist() == ["N1", "N1"]
    assert table["station"].tolist() == ["1", "2"]
    assert election.profile == {"name": "polling_station", "max_registered": 450}
    from analysis import consistency

    broken = consistency.check_consistency(election).violations
    assert broken.loc[broken["rule"] == "registered_within_limit", "unit_id"].tolist() == ["N1/1"]


def test_a_table_of_candidate_votes_alone_is_an_election(tmp_path):
    mapping = MAPPING.replace('registered = "Eligible"\nvoters = ["Early", "On the day"]\n', "")
    data, path = write(tmp_path, ["North;N1;1;500;20;280;5;100;195"], mapping)
    election, _ = read_table(data, path)
    assert election.table["registered"].isna().all() and election.table["voters"].isna().all()


SIREKAP_TPS = REFERENCE.parent / "sirekap" / "tps_ppwp_2024" / "ppwp_tps_36_regions_20240320.csv.gz"


@pytest.mark.skipif(not SIREKAP_TPS.is_file(), reason="../shared/data/sirekap/tps_ppwp_2024 is absent")
def test_the_real_sirekap_tps_table_imports_with_its_profile():
    election, rejects = read_table(SIREKAP_TPS, "sirekap_tps_2024")
    assert len(election) + len(rejects) == 441_609 and rejects.empty
    assert election.table[["01", "02", "03"]].notna().any(axis=1).sum() == 328_952  # TPS with votes, as its README counts them
    table = election.table.dropna(subset=["dpt", "dptb_voters"])
    assert (table["registered"] == table["dpt"] + table["dptb_voters"]).all()
    assert election.profile == {"name": "sirekap_tps_2024"} and election.table["ts"].notna().any()


def test_a_names_file_names_every_level_and_a_code_it_lacks_keeps_its_code(tmp_path):
    data, path = write(tmp_path, ["North;N1;1;500;20;280;5;100;195", "South;S9;1;400;0;300;0;150;150"])
    names = tmp_path / "names.csv"
    # Sirekap's region tree spells its columns kode,nama; a name may hold commas and markup.
    names.write_text('kode,nama,tingkat\nNorth,"Utara, <b>Raya</b>",1\nN1,Kota Satu,2\nSouth,Selatan,1\n', encoding="utf-8")
    election, rejects = read_table(data, path, names=names)
    assert rejects.empty
    table = election.table
    assert table["state_name"].tolist() == ["Utara, <b>Raya</b>", "Selatan"]
    assert table["county_name"].tolist() == ["Kota Satu", "S9"]
    assert "names.csv" in election.provenance["names"]
    (tmp_path / "bad.csv").write_text("region,label\nNorth,x\n", encoding="utf-8")
    with pytest.raises(MappingError, match="code,name"):
        read_table(data, path, names=tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="no names file"):
        read_table(data, path, names=tmp_path / "absent.csv")
