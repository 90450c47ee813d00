import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis.election import Election, ElectionTableError, table_sha256


def small_table(**changes):
    table = pd.DataFrame({
        "unit_id": ["3101011001001", "3101011001002", "3201011001001"],
        "province": ["31", "31", "32"],
        "regency": ["3101", "3101", "3201"],
        "registered": [250, 280, None],
        "voters": [200, 230, 150],
        "valid": [195, 226, 148],
        "invalid": [5, 4, 2],
        "01": [50, 60, 40],
        "02": [100, 120, 80],
        "03": [45, 46, 28],
    })
    for name, value in changes.items():
        table[name] = value
    return table


def make(table=None, **kwargs):
    return Election.from_frame(
        small_table() if table is None else table,
        levels=["province", "regency"], candidates=["01", "02", "03"], name="test", **kwargs,
    )


def test_from_frame_types_and_missing_is_na_not_zero():
    election = make()
    assert election.table.index.name == "unit_id"
    assert all(str(election.table[c].dtype) == "Int64" for c in election.counts)
    assert election.table.loc["3201011001001", "registered"] is pd.NA
    assert election.totals().loc["total", "registered"] == 530
    assert election.column("registered")[2] != election.column("registered")[2]  # NaN


def test_parquet_round_trip_keeps_table_and_metadata(tmp_path):
    election = make(provenance={"source": "unit test", "input_sha256": "ab" * 32})
    path = election.to_parquet(tmp_path / "e.parquet")
    again = Election.read_parquet(path)
    pd.testing.assert_frame_equal(again.table, election.table)
    assert again.levels == election.levels and again.candidates == election.candidates
    assert again.name == "test"
    assert again.provenance["input_sha256"] == "ab" * 32
    assert again.provenance["table_sha256"] == table_sha256(election.table)


def test_read_parquet_detects_a_changed_table(tmp_path):
    import pyarrow.parquet as pq

    path = make().to_parquet(tmp_path / "e.parquet")
    arrow = pq.read_table(path)
    frame = arrow.to_pandas()
    frame.loc["3101011001001", "02"] = 999
    import pyarrow as pa

    pq.write_table(pa.Table.from_pandas(frame).replace_schema_metadata(arrow.schema.metadata), path)
    with pytest.raises(ElectionTableError, match="changed after it was written"):
        Election.read_parquet(path)


def test_bad_table_raises_one_error_naming_rows_and_columns():
    table = small_table()
    table["voters"] = table["voters"].astype(float)
    table.loc[1, "voters"] = -3
    table.loc[0, "voters"] = 2.5
    table["03"] = table["03"].astype(object)
    table.loc[2, "03"] = "banyak"
    table.loc[2, "unit_id"] = "3101011001001"
    with pytest.raises(ElectionTableError) as info:
        make(table)
    message = str(info.value)
    assert "voters" in message and "3101011001002" in message and "no negative counts" in message
    assert "not a whole number" in message and "2.5" in message
    assert "03" in message and "not a number" in message and "banyak" in message
    assert "duplicate" in message
    assert set(info.value.failures["column"].astype(str)) >= {"voters", "03"}


def test_integer_region_codes_are_refused_not_guessed():
    table = small_table(province=[31, 31, 32])
    with pytest.raises(ElectionTableError, match="province.*str codes"):
        make(table)


def test_missing_columns_are_named():
    with pytest.raises(ElectionTableError, match="missing columns: invalid"):
        make(small_table().drop(columns="invalid"))
    with pytest.raises(ElectionTableError, match="unit_id"):
        make(small_table().drop(columns="unit_id"))


def test_select_and_totals_by_region():
    election = make()
    jakarta = election.select(province="31")
    assert len(jakarta) == 2 and set(jakarta.table["province"]) == {"31"}
    assert jakarta.provenance["selection"] == {"province": "31"}
    totals = election.totals("province")
    assert totals.loc["31", "02"] == 220 and totals.loc["32", "02"] == 80
    with pytest.raises(KeyError):
        election.select(village="x")


def test_repr_html_escapes_names():
    election = make()
    object.__setattr__(election, "name", "<script>alert(1)</script>")
    assert "<script>" not in election._repr_html_()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 10**6)), min_size=1, max_size=20))
def test_any_nonnegative_counts_with_missing_round_trip(values):
    n = len(values)
    table = pd.DataFrame({
        "unit_id": [f"{i:013d}" for i in range(n)], "province": ["11"] * n,
        "registered": values, "voters": values, "valid": values, "invalid": values, "01": values,
    }).astype({"registered": "Int64", "voters": "Int64", "valid": "Int64", "invalid": "Int64", "01": "Int64"})
    election = Election.from_frame(table, levels=["province"], candidates=["01"])
    assert election.table["voters"].isna().sum() == sum(v is None for v in values)
    assert election.table["voters"].sum() == sum(v for v in values if v is not None)
