"""Sirekap's per-dapil totals (``pemilu/hhcd/...``) and the sum of a build's TPS beside them.

The dapil aggregates are the only per-dapil candidate totals Sirekap served (sirekap-api.md, "Legislative
ballots as served"): ``hhcd/{ballot}/.../{dapil}.json`` has ``table{party: {caleg_id: n, ...,
"jml_suara_total": n, "jml_suara_partai": n}}``; DPR RI's national ``hhcd/pdpr/0.json`` has
``table{dapil: {party: n, "persen": x}}`` (party totals only). :func:`read_hhcd` turns stored bodies into one
long table, every entry it cannot read a row of its rejects with the reason; :func:`compare_with_tps` puts
the sum of the TPS of each dapil (as their bodies' ``kode_dapil`` name it) beside each number.

A difference is not by itself an error: an aggregate is a snapshot at its own ``ts``, TPS bodies are
fetched over hours and revised, and a TPS without ``kode_dapil`` (the early flat bodies) belongs to no dapil.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from . import endpoints

PARTY_TOTAL, PARTY_ONLY = "jml_suara_total", "jml_suara_partai"
KINDS = ("party_total", "party_only", "candidate")
COLUMNS = ["dapil", "party", "kind", "candidate", "hhcd_votes", "hhcd_ts", "source"]
_LIMIT = 10**9


def _count(value: Any) -> int | None:
    if type(value) is int and 0 <= value <= _LIMIT:
        return value
    raise ValueError(f"not a count ({str(value)[:20]!r})")


def _digits(text: Any, lo: int = 1, hi: int = 13) -> bool:
    return type(text) is str and lo <= len(text) <= hi and text.isascii() and text.isdigit()


def _decode(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    return json.loads(body) if isinstance(body, str) else body


def read_hhcd(bodies: Mapping[str, Any], ballot: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(totals, rejects) of stored ``hhcd`` bodies of ``ballot`` (API path -> bytes, text or decoded JSON).

    ``totals``: dapil, party, kind (party_total, party_only or candidate), candidate ("" but for candidates),
    hhcd_votes, hhcd_ts (text, WIB), source (the path). A per-dapil body's party totals win over the national
    body's. ``rejects``: source, entry, reason, one row per body or entry that could not be read.
    """
    endpoints.check_ballot(ballot)
    rows: list[tuple] = []
    national: list[tuple] = []
    rejects: list[dict[str, str]] = []
    for path in sorted(bodies):
        kind, path_ballot, dapil = endpoints.classify(path)
        if kind != "hhcd" or path_ballot != ballot:
            continue
        try:
            data = _decode(bodies[path])
        except (ValueError, UnicodeDecodeError, RecursionError):
            rejects.append({"source": path, "entry": "", "reason": "the body is not JSON"})
            continue
        if not isinstance(data, dict) or not isinstance(data.get("table"), dict):
            rejects.append({"source": path, "entry": "", "reason": "no table object (not a dapil aggregate)"})
            continue
        ts = data.get("ts") if isinstance(data.get("ts"), str) else None
        for key, entry in data["table"].items():
            if entry is None:
                continue  # a child without data: missing, not zero
            if not isinstance(entry, dict):
                rejects.append({"source": path, "entry": str(key)[:40], "reason": f"the entry is a {type(entry).__name__}"})
                continue
            if dapil == "0":  # national: table keyed by dapil, party totals
                if not _digits(key, 2, 13):
                    rejects.append({"source": path, "entry": str(key)[:40], "reason": "the key is not a dapil code"})
                    continue
                for party, value in entry.items():
                    if party in ("persen", "psu", "status_progress"):
                        continue
                    try:
                        if not _digits(party, 1, 3):
                            raise ValueError("the key is not a party number")
                        national.append((key, party, "party_total", "", _count(value), ts, path))
                    except ValueError as err:
                        rejects.append({"source": path, "entry": f"{key}/{str(party)[:20]}", "reason": str(err)})
                continue
            if not _digits(key, 1, 3):
                rejects.append({"source": path, "entry": str(key)[:40], "reason": "the key is not a party number"})
                continue
            for name, value in entry.items():
                try:
                    if name == PARTY_TOTAL:
                        what, candidate = "party_total", ""
                    elif name == PARTY_ONLY:
                        what, candidate = "party_only", ""
                    elif _digits(name):
                        what, candidate = "candidate", name
                    else:
                        raise ValueError("the key is neither a candidate id nor a party count")
                    if value is None:
                        continue  # unpublished: no number to compare
                    rows.append((dapil, key, what, candidate, _count(value), ts, path))
                except ValueError as err:
                    rejects.append({"source": path, "entry": f"{key}/{str(name)[:20]}", "reason": str(err)})
    totals = pd.DataFrame(rows, columns=COLUMNS)
    if national:
        have = set(zip(totals.loc[totals["kind"] == "party_total", "dapil"], totals.loc[totals["kind"] == "party_total", "party"]))
        extra = [row for row in national if (row[0], row[1]) not in have]
        totals = pd.concat([totals, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)
    totals = totals.astype({"hhcd_votes": "Int64"})
    return totals, pd.DataFrame(rejects, columns=["source", "entry", "reason"])


def _party_number(column: str) -> str:
    return str(int(column)) if _digits(column, 1, 3) else column


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and categories of a column (categorical as built, or plain), without a string per row."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), pd.Index(values.cat.categories.astype(object))
    codes, categories = pd.factorize(values.astype(object), use_na_sentinel=True)
    return codes, pd.Index(categories)


def _sums(keys: np.ndarray, votes: np.ndarray, missing: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Per key: sum of the published votes, TPS with a published number, TPS with ``<NA>``."""
    published = ~missing
    total = np.bincount(keys, weights=np.where(published, votes, 0), minlength=size)
    return total, np.bincount(keys[published], minlength=size), np.bincount(keys[missing], minlength=size)


def compare_with_tps(table: pd.DataFrame, votes_long: pd.DataFrame | None, totals: pd.DataFrame,
                     parties: Iterable[str]) -> pd.DataFrame:
    """Per dapil, party and candidate: the sum over the build's TPS of that dapil beside the ``hhcd`` number.

    ``table`` is the build's table (its ``dapil`` column, the party columns ``parties`` as totals),
    ``votes_long`` its per-candidate votes. Columns: dapil, party, kind, candidate, tps_votes (sum of the
    published numbers), tps_units (TPS of the dapil with a published number), tps_unpublished (TPS of the
    dapil whose number is ``<NA>``), hhcd_votes, hhcd_ts, difference (tps_votes - hhcd_votes; ``<NA>`` where
    either side has nothing). Rows where only one side has the number are kept. Counted with integer codes
    and ``bincount`` (a national DPR RI table has ~10^8 candidate rows), never a string per row.
    """
    if "dapil" not in table.columns:
        raise KeyError("the table has no dapil column (build a legislative ballot from its TPS bodies)")
    keys = ["dapil", "party", "kind", "candidate"]
    pieces = []
    dapil_codes, dapils = _codes(table["dapil"])
    n_dapil = len(dapils)
    columns = [c for c in parties if c in table.columns]
    if columns and n_dapil:
        known = dapil_codes >= 0
        for column in columns:
            values = table[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[known]
            total, units, unpublished = _sums(dapil_codes[known], values, np.isnan(values), n_dapil)
            pieces.append(pd.DataFrame({"dapil": dapils, "party": _party_number(column), "kind": "party_total", "candidate": "",
                                        "tps_votes": total, "tps_units": units, "tps_unpublished": unpublished}))
    if votes_long is not None and len(votes_long) and n_dapil:
        unit_codes, units = _codes(votes_long["unit_id"])
        party_codes, party_names = _codes(votes_long["party"])
        candidate_codes, candidate_names = _codes(votes_long["candidate"])
        # each unit's dapil code, then each row's (-1: the TPS has no kode_dapil)
        unit_dapil = pd.Series(dapil_codes, index=table.index).reindex(units).fillna(-1).to_numpy(dtype=np.int64)
        row_dapil = np.where(unit_codes >= 0, unit_dapil[unit_codes], -1)
        votes = votes_long["votes"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(votes)
        only_code = candidate_names.get_loc("") if "" in candidate_names else -1
        ok = (row_dapil >= 0) & (party_codes >= 0) & (candidate_codes >= 0)
        only = ok & (candidate_codes == only_code)
        n_party = len(party_names)
        # party-only votes: per (dapil, party)
        key = row_dapil[only] * n_party + party_codes[only]
        total, count, unpublished = _sums(key, votes[only], missing[only], n_dapil * n_party)
        seen = np.flatnonzero(count + unpublished)
        pieces.append(pd.DataFrame({"dapil": dapils[seen // n_party], "party": party_names[seen % n_party], "kind": "party_only",
                                    "candidate": "", "tps_votes": total[seen], "tps_units": count[seen],
                                    "tps_unpublished": unpublished[seen]}))
        # candidates: per (dapil, party, candidate); a candidate id belongs to one dapil and party, so the
        # candidate's code is the key where every row of it agrees (variance 0), else its rows are grouped apart
        people = ok & ~only
        c, d, pa = candidate_codes[people], row_dapil[people].astype(float), party_codes[people].astype(float)
        n_cand = len(candidate_names)
        rows = np.bincount(c, minlength=n_cand).astype(float)
        one = np.ones(1)
        agree = np.ones(n_cand, dtype=bool)
        for value in (d, pa):
            mean = np.bincount(c, weights=value, minlength=n_cand) / np.maximum(rows, one)
            square = np.bincount(c, weights=value * value, minlength=n_cand) / np.maximum(rows, one)
            agree &= np.isclose(square, mean * mean)
        total, count, unpublished = _sums(c, votes[people], missing[people], n_cand)
        first_dapil = np.zeros(n_cand, dtype=np.int64)
        first_party = np.zeros(n_cand, dtype=np.int64)
        first_dapil[c[::-1]] = d[::-1].astype(np.int64)  # any row of the candidate (they agree where it is used)
        first_party[c[::-1]] = pa[::-1].astype(np.int64)
        seen = np.flatnonzero((rows > 0) & agree)
        pieces.append(pd.DataFrame({"dapil": dapils[first_dapil[seen]], "party": party_names[first_party[seen]], "kind": "candidate",
                                    "candidate": candidate_names[seen], "tps_votes": total[seen], "tps_units": count[seen],
                                    "tps_unpublished": unpublished[seen]}))
        odd = people.copy()
        odd[people] = ~agree[c]
        if odd.any():  # a candidate id under several dapils or parties: grouped as such, a row per pair
            frame = pd.DataFrame({"dapil": dapils[row_dapil[odd]], "party": party_names[party_codes[odd]],
                                  "candidate": candidate_names[candidate_codes[odd]], "votes": np.where(missing[odd], 0, votes[odd]),
                                  "published": ~missing[odd]})
            grouped = frame.groupby(["dapil", "party", "candidate"], sort=False)
            extra = pd.DataFrame({"tps_votes": grouped["votes"].sum(), "tps_units": grouped["published"].sum(),
                                  "tps_unpublished": grouped["published"].size() - grouped["published"].sum()}).reset_index()
            pieces.append(extra.assign(kind="candidate"))
    if pieces:
        summed = pd.concat(pieces, ignore_index=True)
        # a sum of nothing published is <NA>, not 0
        summed["tps_votes"] = pd.array(summed["tps_votes"].to_numpy(dtype=float).round().astype("int64"), dtype="Int64")
        summed.loc[summed["tps_units"] == 0, "tps_votes"] = pd.NA
    else:
        summed = pd.DataFrame(columns=[*keys, "tps_votes", "tps_units", "tps_unpublished"])
    summed = summed.astype({"dapil": object, "party": object, "candidate": object})
    out = summed.merge(totals[[*keys, "hhcd_votes", "hhcd_ts"]].astype({"dapil": object, "party": object, "candidate": object}),
                       on=keys, how="outer")
    out["tps_units"] = out["tps_units"].fillna(0).astype("int64")
    out["tps_unpublished"] = out["tps_unpublished"].fillna(0).astype("int64")
    out["tps_votes"] = out["tps_votes"].astype("Int64")
    out["hhcd_votes"] = out["hhcd_votes"].astype("Int64")
    out["difference"] = out["tps_votes"] - out["hhcd_votes"]
    out = out[(out["tps_units"] > 0) | out["hhcd_votes"].notna()]  # a party on no chart of the dapil and not in hhcd
    order = {k: i for i, k in enumerate(KINDS)}
    out = out.assign(_kind=out["kind"].map(order)).sort_values(["dapil", "party", "_kind", "candidate"], kind="stable")
    return out.drop(columns="_kind").reset_index(drop=True)
