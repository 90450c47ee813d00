"""Party ballots (DPR RI, DPRD): forms that do not add up, per party and per candidate, their likely
misreadings, and where a party's gain between two snapshots came from at TPS level.

Inputs are a party-ballot build (``forensik build``: the Election of party totals and its
``*-candidates.parquet``, the long per-candidate votes). The form rules are those of
``consistency.party_ballot_rules``; a misreading is searched as ``consistency.find_misreadings``
does for the presidential ballot: one OCR edit of one number (``consistency.one_edit_originals``)
that makes the party's line add up again.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import consistency
from .election import Election
from .display import frame_html

PARTY_ONLY, PARTY_TOTAL = "jml_suara_partai", "jml_suara_total"


def _party_number(column: str) -> str:
    return str(int(column)) if column.isascii() and column.isdigit() and len(column) <= 3 else column


def _party_columns(election: Election) -> list[str]:
    return [c for c in election.candidates if c in election.table.columns]


def _long(votes_long: pd.DataFrame) -> pd.DataFrame:
    """The long votes with plain string keys (the build's are categorical)."""
    cols = ["unit_id", "party", "candidate", "votes"] + [c for c in ("dapil", "candidate_name") if c in votes_long.columns]
    out = votes_long[cols].copy()
    for c in ("unit_id", "party", "candidate", "dapil", "candidate_name"):
        if c in out.columns:
            out[c] = out[c].astype(object)
    return out


@dataclass(frozen=True, eq=False)
class PartyForms:
    """The party-ballot rules on every TPS: per party and per candidate, how many forms do not add up."""

    coverage: pd.DataFrame  # rule: description, evaluable, passed, failed, share_failed
    by_party: pd.DataFrame  # party column: evaluable, failed, share_failed, net_difference (parts - total)
    by_candidate: pd.DataFrame  # party, candidate, tps, tps_in_broken_forms, votes, votes_in_broken_forms
    broken: pd.DataFrame  # unit_id, party, total, parts, difference (parts - total): the party lines that break
    n: int

    def to_frame(self) -> pd.DataFrame:
        return self.by_party

    def _repr_html_(self) -> str:
        failed = int(self.by_party["failed"].sum()) if len(self.by_party) else 0
        head = f"Party lines that do not add up: {failed:,} of {int(self.by_party['evaluable'].sum()):,} checkable, on {self.n:,} TPS."
        return f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.by_party)


def party_form_checks(election: Election, votes_long: pd.DataFrame | None) -> PartyForms:
    """Check ``jml_suara_total == jml_suara_partai + sum(caleg)`` per party and ``sum(jml_suara_total) == suara_sah``.

    A party line is checkable where its total, its party-only votes and every candidate's votes are
    published (``consistency.with_party_sums``). Per candidate: at how many TPS the candidate has votes,
    and how many of them (and of the votes) sit in a party line that does not add up.
    """
    parties = _party_columns(election)
    summed = consistency.with_party_sums(election, votes_long)
    result = consistency.check_consistency(summed, rules=consistency.party_ballot_rules(parties))
    coverage = result.coverage[["description", "evaluable", "passed", "failed", "share_failed"]]
    rows, broken = [], []
    table = summed.table
    for party in parties:
        rule = f"{consistency.PARTY_PARTS_RULE}:{party}"
        if rule not in result.failed.columns:
            continue
        evaluable, failed = result.evaluable[rule].to_numpy(), result.failed[rule].to_numpy()
        total = table[party].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        parts = table[consistency.parts_column(party)].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        rows.append({"party": party, "evaluable": int(evaluable.sum()), "failed": int(failed.sum()),
                     "share_failed": failed.sum() / evaluable.sum() if evaluable.sum() else np.nan,
                     "net_difference": float(np.nansum((parts - total)[failed]))})
        if failed.any():
            broken.append(pd.DataFrame({"unit_id": table.index[failed], "party": _party_number(party),
                                        "total": total[failed], "parts": parts[failed]}))
    by_party = pd.DataFrame(rows, columns=["party", "evaluable", "failed", "share_failed", "net_difference"]).set_index("party")
    broken_frame = (pd.concat(broken, ignore_index=True) if broken
                    else pd.DataFrame({"unit_id": [], "party": [], "total": [], "parts": []}))
    broken_frame["difference"] = broken_frame["parts"] - broken_frame["total"]
    by_candidate = pd.DataFrame(columns=["party", "candidate", "tps", "tps_in_broken_forms", "votes", "votes_in_broken_forms"])
    if votes_long is not None and len(votes_long):
        long = _long(votes_long)
        people = long[long["candidate"] != ""].copy()
        key = set(zip(broken_frame["unit_id"], broken_frame["party"]))
        people["in_broken"] = [(u, p) in key for u, p in zip(people["unit_id"], people["party"])]
        people["votes_num"] = people["votes"].astype("Float64")
        people["votes_broken"] = people["votes_num"].where(people["in_broken"], 0)
        keys = ["party", "candidate"] + (["candidate_name"] if "candidate_name" in people.columns else [])
        by_candidate = people.groupby(keys, sort=False, dropna=False).agg(
            tps=("unit_id", "size"), tps_in_broken_forms=("in_broken", "sum"), votes=("votes_num", "sum"),
            votes_in_broken_forms=("votes_broken", "sum")).reset_index()
        by_candidate = by_candidate.sort_values(["tps_in_broken_forms", "votes"], ascending=False).reset_index(drop=True)
    return PartyForms(coverage=coverage, by_party=by_party, by_candidate=by_candidate, broken=broken_frame, n=len(table))


@dataclass(frozen=True, eq=False)
class PartyMisreadings:
    """One-edit repairs of party lines that do not add up: which number, read as what, was likely written."""

    table: pd.DataFrame  # unit_id, party, field, reported, proposed, edit, prior, unique
    searched: int  # broken party lines searched

    def summary(self) -> pd.DataFrame:
        found = self.table.groupby(["unit_id", "party"]).size() if len(self.table) else pd.Series(dtype=int)
        unique = int(self.table.drop_duplicates(["unit_id", "party"])["unique"].sum()) if len(self.table) else 0
        return pd.DataFrame({"count": [self.searched, len(found), unique]},
                            index=["party lines that do not add up", "explained by one OCR edit", "of which by exactly one repair"])

    def by_field(self) -> pd.DataFrame:
        """Repairs per kind of number (party total, party-only votes, a candidate's votes) where the repair is unique."""
        unique = self.table[self.table["unique"]]
        kind = np.where(unique["field"] == PARTY_TOTAL, "party total", np.where(unique["field"] == PARTY_ONLY, "party-only votes", "a candidate's votes"))
        return unique.assign(kind=kind, votes=unique["reported"] - unique["proposed"]).groupby("kind").agg(
            lines=("unit_id", "size"), net_votes=("votes", "sum"))

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def _repr_html_(self) -> str:
        return frame_html(self.summary()) + frame_html(self.table.head(20))


def party_misreadings(election: Election, votes_long: pd.DataFrame | None, forms: PartyForms | None = None) -> PartyMisreadings:
    """For each party line that does not add up, every single number that one OCR edit of it would make add up.

    A line is ``total = party-only + candidates``; replacing one of its numbers by an original one edit
    away (``consistency.one_edit_originals``: a digit substituted, inserted, dropped or two swapped) that
    balances the line is a repair, with the edit's prior. ``unique``: the line has exactly one repair.
    """
    forms = party_form_checks(election, votes_long) if forms is None else forms
    if not len(forms.broken) or votes_long is None:
        return PartyMisreadings(pd.DataFrame(columns=["unit_id", "party", "field", "reported", "proposed", "edit", "prior", "unique"]),
                                len(forms.broken))
    long = _long(votes_long)
    wanted = set(zip(forms.broken["unit_id"], forms.broken["party"]))
    long = long[[(u, p) in wanted for u, p in zip(long["unit_id"], long["party"])]]
    lines = {key: group for key, group in long.groupby(["unit_id", "party"], sort=False)}
    rows = []
    for unit, party, total in zip(forms.broken["unit_id"], forms.broken["party"], forms.broken["total"]):
        group = lines.get((unit, party))
        if group is None:
            continue
        fields = [PARTY_ONLY if c == "" else c for c in group["candidate"]]
        values = [int(v) for v in group["votes"]]
        numbers = [(PARTY_TOTAL, int(total)), *zip(fields, values)]
        parts = sum(values)
        found = []
        for i, (field, reported) in enumerate(numbers):
            # the value this number must have for the line to add up
            need = (parts if i == 0 else int(total) - (parts - reported))
            if need < 0 or need == reported:
                continue
            for original, edit, prior in consistency.one_edit_originals(reported):
                if original == need:
                    found.append((unit, party, field, reported, original, edit, prior))
        for row in found:
            rows.append((*row, len(found) == 1))
    table = pd.DataFrame(rows, columns=["unit_id", "party", "field", "reported", "proposed", "edit", "prior", "unique"])
    return PartyMisreadings(table, len(forms.broken))


@dataclass(frozen=True, eq=False)
class PartyGain:
    """Where a party's gain between two builds came from, TPS by TPS."""

    party: str
    summary: pd.DataFrame  # kind: tps, party_gain, all_parties_gain, valid_change
    tps: pd.DataFrame  # unit_id, kind, before, after, gain, all_gain, valid_before, valid_after, broken_before, broken_after
    share_of_added: float  # the party's gain / the gain of all parties
    parameters: dict[str, Any]

    def by_region(self, level: str = "province") -> pd.DataFrame:
        frame = self.tps.assign(region=self.tps["unit_id"].str[: {"province": 2, "regency": 4, "district": 6, "village": 10}[level]])
        out = frame.groupby(["region", "kind"]).agg(tps=("unit_id", "size"), party_gain=("gain", "sum"), all_gain=("all_gain", "sum"))
        return out.reset_index().sort_values("party_gain", ascending=False)

    def to_frame(self) -> pd.DataFrame:
        return self.summary

    def _repr_html_(self) -> str:
        head = f"Party {self.party}: {self.share_of_added:.1%} of the votes added between the two builds."
        return f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.summary)


KINDS = ("newly published", "revised", "withdrawn", "unchanged")


def party_gain(before: Election, after: Election, party: str, *, before_long: pd.DataFrame | None = None,
               after_long: pd.DataFrame | None = None) -> PartyGain:
    """Split a party's gain between two builds of one ballot by what happened at each TPS.

    ``newly published``: the party total was ``<NA>`` before (or the TPS absent) and is published after;
    ``revised``: published in both and different (a correction, or a re-read form); ``withdrawn``:
    published before, ``<NA>`` after. For every TPS: the party's gain, all parties' gain, the valid ballots
    before and after, and whether the party's line broke the form rule (with the long votes). A revision
    that raises the party without raising the valid ballots moved votes between parties or was misread.
    """
    parties = _party_columns(after)
    if party not in parties:
        raise KeyError(f"{party!r} is not a party column of the build ({', '.join(parties)})")
    units = before.table.index.union(after.table.index)
    a = before.table.reindex(units)
    b = after.table.reindex(units)

    def values(table, column):
        return table[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan)

    x, y = values(a, party), values(b, party)
    kind = np.select([np.isnan(x) & ~np.isnan(y), ~np.isnan(x) & ~np.isnan(y) & (x != y), ~np.isnan(x) & np.isnan(y)],
                     list(KINDS[:3]), KINDS[3])
    gain = np.nan_to_num(y) - np.nan_to_num(x)
    all_x = np.nansum(np.vstack([values(a, p) for p in parties]), axis=0)
    all_y = np.nansum(np.vstack([values(b, p) for p in parties]), axis=0)
    frame = pd.DataFrame({"unit_id": units, "kind": kind, "before": x, "after": y, "gain": gain, "all_gain": all_y - all_x,
                          "valid_before": values(a, "valid"), "valid_after": values(b, "valid")})
    for name, election, long in (("broken_before", before, before_long), ("broken_after", after, after_long)):
        if long is not None:
            forms = party_form_checks(election, long)
            bad = set(forms.broken.loc[forms.broken["party"] == _party_number(party), "unit_id"])
            frame[name] = frame["unit_id"].isin(bad)
    frame = frame[frame["kind"] != "unchanged"].reset_index(drop=True)
    summary = frame.groupby("kind").agg(tps=("unit_id", "size"), party_gain=("gain", "sum"), all_parties_gain=("all_gain", "sum"),
                                        valid_change=("valid_after", "sum"))
    summary["valid_change"] = frame.groupby("kind")["valid_after"].sum(min_count=1) - frame.groupby("kind")["valid_before"].sum(min_count=1)
    summary = summary.reindex([k for k in KINDS[:3] if k in summary.index])
    revised = frame[frame["kind"] == "revised"]
    summary.loc["revised: party up, valid ballots not up", ["tps", "party_gain", "all_parties_gain"]] = [
        int(((revised["gain"] > 0) & ~(revised["valid_after"] > revised["valid_before"])).sum()),
        revised.loc[(revised["gain"] > 0) & ~(revised["valid_after"] > revised["valid_before"]), "gain"].sum(),
        revised.loc[(revised["gain"] > 0) & ~(revised["valid_after"] > revised["valid_before"]), "all_gain"].sum()]
    added = float(frame["all_gain"].sum())
    share = float(frame["gain"].sum()) / added if added else float("nan")
    return PartyGain(party=party, summary=summary, tps=frame.sort_values("gain", ascending=False).reset_index(drop=True),
                     share_of_added=share, parameters={"before": before.name, "after": after.name})
