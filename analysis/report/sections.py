"""Small pieces every report shows: headline numbers, provenance, and the region's display name."""

from __future__ import annotations

import html
import platform
from dataclasses import fields
from typing import Any, Mapping

import pandas as pd

from ..election import Election


def region_name(election: Election, level: str, code: str) -> str:
    """The display name of a region (``<level>_name`` when the table has it), else its code."""
    column = f"{level}_name"
    if column in election.table.columns:
        names = election.table.loc[election.table[level] == code, column].dropna()
        if len(names):
            return str(names.iloc[0])
    return str(code)


def headline(election: Election) -> dict[str, Any]:
    """Stations, reporting coverage, turnout and each candidate's share: the numbers a reader sees first."""
    table = election.table
    votes = table[list(election.candidates)]
    complete = table[["registered", "voters"]].notna().all(axis=1)
    registered = table.loc[complete, "registered"].sum()
    voters = table.loc[complete, "voters"].sum()
    total_votes = votes.sum()
    out: dict[str, Any] = {
        "stations": int(len(table)),
        "stations_with_votes": int(votes.notna().all(axis=1).sum()),
        "stations_with_administration": int(complete.sum()),
        "turnout_percent": round(100 * float(voters) / float(registered), 2) if registered else None,
    }
    denominator = float(total_votes.sum())
    for candidate in election.candidates:
        out[f"share_{candidate}_percent"] = round(100 * float(total_votes[candidate]) / denominator, 2) if denominator else None
    return out


def headline_frame(election: Election) -> pd.DataFrame:
    """``headline`` as a two-column table for the report."""
    values = headline(election)
    labels = {
        "stations": "polling stations (TPS)",
        "stations_with_votes": "TPS with all candidate votes published",
        "stations_with_administration": "TPS with registered and voters published",
        "turnout_percent": "turnout, % (voters / registered, where both are published)",
    }
    def shown(value: Any) -> str:
        if value is None:
            return "not published"
        return f"{value:,}" if isinstance(value, int) else f"{value:.2f}"

    rows = [(labels.get(k, k.replace("share_", "share of ").replace("_percent", ", %")), shown(v)) for k, v in values.items()]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def provenance_frame(election: Election, parameters: Mapping[str, Any]) -> pd.DataFrame:
    """What this report was made from: data file and hashes, source, snapshot and fetch times, code, parameters.

    The batch runner's province files carry the national file's name and SHA-256 as read
    (``data_file``, ``data_sha256``) and the national table's hash (``source_table_sha256``).
    """
    prov = dict(election.provenance)
    selection = prov.get("selection")
    rows = [
        ("election", election.name),
        ("data file", prov.get("data_file", "")),
        ("data file SHA-256 (as read)", prov.get("data_sha256", "")),
        ("source", prov.get("source", "")),
        ("input SHA-256", prov.get("input_sha256", "")),
        ("national table SHA-256", prov.get("source_table_sha256", "")),
        ("table SHA-256" + (" (this selection)" if "source_table_sha256" in prov else ""), prov.get("table_sha256", "")),
        ("selection", ", ".join(f"{k} {v}" for k, v in selection.items()) if isinstance(selection, Mapping) else ""),
        ("snapshot time", prov.get("snapshot", "")),
        ("fetch time", prov.get("fetched", "")),
        ("table created", prov.get("created", "")),
        ("forensik version", prov.get("code_version", "")),
        ("python", platform.python_version()),
    ]
    rows = [(k, v) for k, v in rows if v not in (None, "")]
    rows += [(f"parameter {key}", value) for key, value in parameters.items()]
    return pd.DataFrame([(k, str(v)) for k, v in rows], columns=["", "value"]).set_index("")


def title(scope: str, code: str, name: str):
    """The report's heading, with the region name escaped (it came from outside)."""
    from IPython.display import HTML

    label = "National report" if scope == "national" else f"Province {html.escape(code)}"
    return HTML(f"<h1>{label}: {html.escape(str(name))}</h1>")


def leading_candidate(election: Election) -> str:
    """The candidate with the most votes in this election (the fingerprint's 'winner')."""
    votes = election.table[list(election.candidates)].sum()
    return str(votes.idxmax())


def _rows(table: pd.DataFrame, test: str | None = None) -> list[dict[str, Any]]:
    """Normalise a per-region result table into flag rows (test, region, statistic, p, q)."""
    rows = []
    for record in table.to_dict("records"):
        name = test or str(record.get("test", ""))
        if record.get("column") not in (None, "") and not pd.isna(record.get("column")):
            name = f"{name} ({record['column']})"
        rows.append({
            "test": name,
            "region": str(record.get("region", "")),
            "statistic": _number(record.get("statistic")),
            "pvalue": _number(record.get("pvalue")),
            "qvalue": _number(record.get("qvalue")),
        })
    return rows


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _flags(rows: list[dict[str, Any]], alpha: float, note: str) -> list:
    from .summary import Flag

    return [
        Flag(test=r["test"], region=r["region"], statistic=r["statistic"], pvalue=r["pvalue"], qvalue=r["qvalue"],
             flagged=r["qvalue"] is not None and r["qvalue"] <= alpha, note=note)
        for r in rows
    ]


def _all_rows(forms: pd.DataFrame, tables: tuple) -> list[dict[str, Any]]:
    """Flag rows of the forms table and of every further per-region table (a DataFrame with ``test``,
    ``region``, ``pvalue``, ``qvalue`` columns, or a result object giving one by ``flag_rows()`` or
    holding one as ``results``)."""
    rows = _rows(forms, "broken forms rate")
    for table in tables:
        if hasattr(table, "flag_rows"):
            table = table.flag_rows()
        rows += _rows(table.results if hasattr(table, "results") else table)
    return rows


def national_flags(forms: pd.DataFrame, *tables, alpha: float) -> list:
    """Every per-province test as a Flag (q-values across provinces), for the summary and index."""
    return _flags(_all_rows(forms, tables), alpha, note="q-value across provinces (Benjamini-Hochberg)")


def province_flags(forms: pd.DataFrame, *tables, alpha: float) -> list:
    """Every per-kabupaten test of a province as a Flag (q-values across its kabupaten/kota)."""
    return _flags(_all_rows(forms, tables), alpha,
                  note="q-value across the province's kabupaten/kota (Benjamini-Hochberg)")


def flag_table(flags: list, election: Election | None = None, level: str = "province") -> pd.DataFrame:
    """The flagged rows as a table (region, its name, test, statistic, p, q), most significant first."""
    columns = ["region", "name", "test", "statistic", "pvalue", "qvalue"]
    frame = pd.DataFrame([f.__dict__ for f in flags])
    if frame.empty or not frame["flagged"].any():
        return pd.DataFrame(columns=columns)
    flagged = frame[frame["flagged"]].sort_values(["qvalue", "region"]).reset_index(drop=True)
    flagged["name"] = [region_name(election, level, r) if election is not None else "" for r in flagged["region"]]
    return flagged[columns]


def save_summary(path: str, *, scope: str, code: str, election: Election, flags: list,
                 parameters: Mapping[str, Any]) -> str:
    """Write the report's JSON summary for the runner and index (nothing when ``path`` is empty)."""
    from .summary import write_summary

    if not path:
        return "no summary_path given: summary not written"
    name = region_name(election, "province", code) if scope == "province" else election.name
    write_summary(path, scope=scope, code=code, name=name, headline=headline(election), flags=flags,
                  provenance=dict(election.provenance), parameters=dict(parameters))
    flagged = sum(1 for f in flags if f.flagged)
    return f"summary written: {flagged} of {len(flags)} tests flagged"


def flag_frame(flags: list) -> pd.DataFrame:
    """The flags as a DataFrame (``test``, ``region``, ``statistic``, ``pvalue``, ``qvalue``, ``flagged``, ``note``)."""
    from .summary import Flag

    return pd.DataFrame([f.__dict__ for f in flags], columns=[f.name for f in fields(Flag)])


def largest_repairs(misreadings, top: int = 15) -> pd.DataFrame:
    """The explained misreadings that moved the most votes, largest first (for a reader to check against the photos)."""
    explained = misreadings.table[misreadings.table["explained"].astype(bool)]
    order = explained["difference"].abs().sort_values(ascending=False, kind="stable").index
    return explained.loc[order].head(top)[["unit_id", "field", "reported", "proposed", "edit", "detail",
                                           "confidence", "n_repairs"]].reset_index(drop=True)
