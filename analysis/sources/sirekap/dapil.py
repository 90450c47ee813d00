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


def compare_with_tps(table: pd.DataFrame, votes_long: pd.DataFrame | None, totals: pd.DataFrame,
                     parties: Iterable[str]) -> pd.DataFrame:
    """Per dapil, party and candidate: the sum over the build's TPS of that dapil beside the ``hhcd`` number.

    ``table`` is the build's table (its ``dapil`` column, the party columns ``parties`` as totals),
    ``votes_long`` its per-candidate votes. Columns: dapil, party, kind, candidate, tps_votes (sum of the
    published numbers), tps_units (TPS of the dapil with a published number), tps_unpublished (TPS of the
    dapil whose number is ``<NA>``), hhcd_votes, hhcd_ts, difference (tps_votes - hhcd_votes; ``<NA>`` where
    either side has nothing). Rows where only one side has the number are kept.
    """
    if "dapil" not in table.columns:
        raise KeyError("the table has no dapil column (build a legislative ballot from its TPS bodies)")
    dapil_of = table["dapil"].astype(object)
    pieces = []
    columns = [c for c in parties if c in table.columns]
    if columns:
        wide = table[columns].copy()
        wide["dapil"] = dapil_of
        wide = wide[wide["dapil"].notna()]
        melted = wide.melt(id_vars="dapil", var_name="column", value_name="votes")
        melted["party"] = melted["column"].map(_party_number)
        melted["kind"], melted["candidate"] = "party_total", ""
        pieces.append(melted[["dapil", "party", "kind", "candidate", "votes"]])
    if votes_long is not None and len(votes_long):
        long = pd.DataFrame({"unit_id": votes_long["unit_id"].astype(object), "party": votes_long["party"].astype(object),
                             "candidate": votes_long["candidate"].astype(object), "votes": votes_long["votes"]})
        long["dapil"] = long["unit_id"].map(dapil_of)
        long = long[long["dapil"].notna()]
        long["kind"] = np.where(long["candidate"] == "", "party_only", "candidate")
        pieces.append(long[["dapil", "party", "kind", "candidate", "votes"]])
    keys = ["dapil", "party", "kind", "candidate"]
    if pieces:
        tps = pd.concat(pieces, ignore_index=True)
        tps["published"] = tps["votes"].notna()
        grouped = tps.groupby(keys, sort=True, dropna=False)
        summed = pd.DataFrame({"tps_votes": grouped["votes"].sum(min_count=1).astype("Int64"),
                               "tps_units": grouped["published"].sum().astype("int64"),
                               "tps_unpublished": (~tps["published"]).groupby([tps[k] for k in keys], sort=True).sum().astype("int64")})
        summed = summed.reset_index()
    else:
        summed = pd.DataFrame(columns=[*keys, "tps_votes", "tps_units", "tps_unpublished"])
    out = summed.merge(totals[[*keys, "hhcd_votes", "hhcd_ts"]], on=keys, how="outer")
    out["tps_units"] = out["tps_units"].fillna(0).astype("int64")
    out["tps_unpublished"] = out["tps_unpublished"].fillna(0).astype("int64")
    out["tps_votes"] = out["tps_votes"].astype("Int64")
    out["hhcd_votes"] = out["hhcd_votes"].astype("Int64")
    out["difference"] = out["tps_votes"] - out["hhcd_votes"]
    out = out[(out["tps_units"] > 0) | out["hhcd_votes"].notna()]  # a party on no chart of the dapil and not in hhcd
    order = {k: i for i, k in enumerate(KINDS)}
    out = out.assign(_kind=out["kind"].map(order)).sort_values(["dapil", "party", "_kind", "candidate"], kind="stable")
    return out.drop(columns="_kind").reset_index(drop=True)
