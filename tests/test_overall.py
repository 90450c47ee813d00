"""analysis/overall.py: election-level tests, judged against their own nulls with Holm's adjustment."""

import numpy as np
import pandas as pd
import pytest

from analysis.election import Election
from analysis.overall import election_tests
from analysis.synth import make_election


@pytest.fixture(scope="module")
def clean():
    return make_election(scale=0.002, min_tps=60, seed=11, plan={}, ocr_rate=0).election


def test_clean_synthetic_election_has_holm_adjusted_tests(clean):
    result = election_tests(clean, seed=3, n_sim=199)
    table = result.table
    assert {"integer percentages (02)", "turnout-share association (02)", "last digit (01)"} <= set(table["test"])
    family = table[table["flags"]]
    assert (family["pvalue_holm"] >= family["pvalue"] - 1e-12).all()
    assert (table["flagged"] == (table["pvalue_holm"] <= 0.05)).all()
    assert not table.loc[~table["flags"], "flagged"].any()  # described tests never flag
    assert "extreme cluster" not in " ".join(table["test"])  # left out of the election tests, and why is documented


def test_stuffing_everywhere_shows_in_the_described_association(clean):
    """Votes added to the winner in every region alike: no region stands out; the association sees it."""
    table = clean.table.copy()
    rng = np.random.default_rng(5)
    stuffed = rng.random(len(table)) < 0.3
    registered, voters = table["registered"].astype("Float64"), table["voters"].astype("Float64")
    extra = ((registered - voters) * 0.5).round().astype("Int64").where(stuffed, 0).fillna(0)
    for column in ("voters", "valid", "02"):
        table[column] = table[column] + extra
    for column in ("dpt_voters",):
        if column in table:
            table[column] = table[column] + extra
    if "ballots" in table:
        table["ballots"] = table["ballots"] + extra
    stuffed_election = Election.from_frame(table, levels=clean.levels, candidates=clean.candidates, name="stuffed")
    result = election_tests(stuffed_election, seed=3, n_sim=199)
    association = result.table[result.table["test"].str.startswith("turnout-share association")]
    assert association["pvalue"].iloc[0] < 1e-6  # seen, and described on the page
    assert not association["flagged"].iloc[0]  # but not flagging: real demography does the same


def test_a_table_without_turnout_keeps_the_digit_tests():
    table = pd.DataFrame({"unit_id": [f"u{i}" for i in range(400)], "region": ["a", "b"] * 200,
                          "registered": pd.array([pd.NA] * 400, dtype="Int64"),
                          "voters": pd.array([pd.NA] * 400, dtype="Int64"),
                          "valid": 300, "invalid": 0, "A": np.arange(400) % 200 + 50})
    table["B"] = table["valid"] - table["A"]
    election = Election.from_frame(table, levels=["region"], candidates=["A", "B"])
    result = election_tests(election, seed=1, n_sim=99)
    assert result.table["test"].str.startswith("last digit").all() and len(result.table) == 2
