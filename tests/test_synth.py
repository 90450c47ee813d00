import numpy as np
import pandas as pd
import pytest

from analysis.synth import CANDIDATES, DEFAULT_PLAN, OFFICIAL_SHARES, make_election, provinces


@pytest.fixture(scope="module")
def demo():
    return make_election(scale=0.01, seed=7, min_tps=200)


def test_province_table_is_the_real_one():
    table = provinces()
    assert len(table) == 38 and "99" not in table.index
    assert table.loc["31", "name"] == "DKI JAKARTA"
    assert table["tps"].sum() == 820_161  # domestic TPS, sirekap-api.md


def test_same_seed_same_data_other_seed_other_data(demo):
    again = make_election(scale=0.01, seed=7, min_tps=200)
    pd.testing.assert_frame_equal(again.election.table, demo.election.table)
    pd.testing.assert_frame_equal(again.truth, demo.truth)
    other = make_election(scale=0.01, seed=8, min_tps=200)
    assert not other.election.table["02"].equals(demo.election.table["02"])


def test_codes_nest_like_sirekap(demo):
    table = demo.election.table
    assert table.index.str.fullmatch(r"[0-9]{13}").all()
    assert (table.index.str[:10] == table["village"]).all()
    assert (table["village"].str[:6] == table["district"]).all()
    assert (table["district"].str[:4] == table["regency"]).all()
    assert (table["regency"].str[:2] == table["province"]).all()
    assert table["province"].nunique() == 38
    # every level varies: several regencies per province, several TPS per desa somewhere
    assert table.groupby("province")["regency"].nunique().min() >= 2
    assert table.groupby("village").size().max() > 1


def test_scale_one_is_the_real_tps_count():
    counts = provinces()["tps"]
    assert abs(int(counts.sum()) - 820_000) < 1_000  # scale=1.0 with min_tps below every province


def test_clean_parts_are_plausible(demo):
    table = demo.election.table
    clean = table[~table.index.isin(demo.truth["unit_id"])]
    assert clean["dpt"].max() <= 300
    assert (clean["dptb_voters"] > 0).any() and (clean["dpk_voters"] > 0).any() and (clean["invalid"] > 0).any()
    assert (clean[list(CANDIDATES)].sum(axis=1, skipna=False) == clean["valid"]).dropna().all()
    assert ((clean["valid"] + clean["invalid"]) == clean["ballots"]).dropna().all()
    shares = demo.election.shares()
    for candidate, target in OFFICIAL_SHARES.items():
        assert abs(shares[candidate] - target) < 0.02
    # random effects: provinces and districts differ well beyond binomial noise
    by_province = clean.groupby("province")[list(CANDIDATES)].sum()
    province_share = by_province["02"] / by_province.sum(axis=1)
    assert province_share.std() > 0.05
    assert table["01"].isna().any() and table["voters"].isna().any()  # half-filled forms exist


def test_planted_irregularities_are_where_the_truth_says(demo):
    planted = demo.planted_provinces()
    assert planted == {kind: [code] for kind, code in DEFAULT_PLAN.items()}
    table = demo.election.table
    cluster = demo.truth.loc[demo.truth["kind"] == "extreme_cluster", "unit_id"]
    share = table.loc[cluster, "02"] / table.loc[cluster, "valid"]
    assert (share.dropna() > 0.97).all()
    rounds = demo.truth.loc[demo.truth["kind"] == "round_percentages", "unit_id"]
    percent = 100 * table.loc[rounds, "02"] / table.loc[rounds, "valid"]
    assert ((percent.dropna() - percent.dropna().round()).abs() < 0.05).all()  # Kobak's "integer"
    ocr = demo.truth[demo.truth["kind"] == "ocr_misreading"]
    assert ocr["province"].nunique() > 10  # spread everywhere
    assert (ocr["original"] != ocr["reported"]).all()


def test_clean_election_has_no_truth_rows():
    clean = make_election(scale=0.002, seed=1, min_tps=50, plan={}, ocr_rate=0.0)
    assert clean.truth.empty


def test_unknown_province_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown province codes: 00"):
        make_election(provinces_only=["00"])


def test_directional_misreadings_only_inflate_the_winner_in_their_province(demo):
    planted = demo.truth[demo.truth["kind"] == "directional_misreading"]
    assert len(planted) > 5
    assert set(planted["province"]) == {DEFAULT_PLAN["directional_misreading"]}
    assert set(planted["field"]) == {"02"}
    assert (planted["reported"] > planted["original"]).all()
    assert set(planted["detail"]) <= {"inserted", "substituted"}
    # one misreading per TPS: never on a TPS that already has a random one
    assert not planted["unit_id"].isin(demo.truth.loc[demo.truth["kind"] == "ocr_misreading", "unit_id"]).any()
    table = demo.election.table.loc[planted["unit_id"], "02"].to_numpy()
    shown = ~pd.isna(table)
    assert (table[shown] == planted["reported"].to_numpy()[shown]).all()


def test_directional_plant_leaves_every_other_draw_unchanged(demo):
    # Its random numbers come from a generator of its own: without it, the same seed gives the
    # same table outside the planted cells and the same truth for every other plant.
    plan = {k: v for k, v in DEFAULT_PLAN.items() if k != "directional_misreading"}
    without = make_election(scale=0.01, seed=7, min_tps=200, plan=plan)
    planted = demo.truth[demo.truth["kind"] == "directional_misreading"]
    others = demo.election.table.index.difference(planted["unit_id"])
    pd.testing.assert_frame_equal(without.election.table.loc[others], demo.election.table.loc[others])
    rest = demo.truth[demo.truth["kind"] != "directional_misreading"].reset_index(drop=True)
    pd.testing.assert_frame_equal(without.truth, rest)
    changed = demo.election.table.loc[planted["unit_id"]].compare(without.election.table.loc[planted["unit_id"]])
    assert set(changed.columns.get_level_values(0)) <= {"02"}
