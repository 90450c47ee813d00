"""Candidate lists of the legislative ballots (one per electoral district, dapil), joined to the per-candidate votes.

A DPR RI or DPRD snapshot of ``forensik scrape`` holds the ballot's dapil lists and, per dapil,
``pemilu/caleg/partai/{dapil}.json``: ``{party number: {candidate id: {"nama", "nomor_urut",
"jenis_kelamin", "tempat_tinggal"}}}`` (the shape public scrapers of 2024 met; not in sirekap-api.md).
Sirekap's candidate ids are unique across dapils in 2024, so the union of the lists maps an id to its
dapil, party, ballot number and name. :func:`read_candidate_lists` reads them and accounts for every
list file (read, partly read, rejected, not published, failed: each with its reason);
:func:`attach_candidates` adds the columns to the long per-candidate votes after they are built.

Names are untrusted scraped strings: they stay data (categorical columns), never become column
names, paths or markup; whatever shows them in HTML must escape them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import endpoints

LIST_COLUMNS = ["path", "kind", "dapil", "outcome", "entries", "reason"]
CANDIDATE_COLUMNS = ["candidate", "dapil", "party", "number", "name", "gender"]
#: Columns :func:`attach_candidates` adds to the long votes.
ATTACHED = ["dapil", "candidate_number", "candidate_name", "candidate_gender", "party_name"]
_MAX_ID = 13  # digits of a candidate id (Sirekap's are 6)


@dataclass(frozen=True)
class CandidateLists:
    """The candidates of the stored lists (one row per id) and one row per dapil or candidate list file."""

    candidates: pd.DataFrame  # candidate, dapil, party, number, name, gender
    lists: pd.DataFrame  # path, kind, dapil, outcome, entries, reason
    counts: Mapping[str, int] = field(default_factory=dict)


def _load(root: Path, api_path: str) -> tuple[Any, str | None]:
    """The decoded JSON of a stored file, or (None, reason)."""
    try:
        data = (root / api_path).read_bytes()
    except OSError as err:
        return None, f"the stored file cannot be read ({type(err).__name__})"
    try:
        return json.loads(data), None
    except (ValueError, RecursionError):
        return None, "not JSON"


def _party(key: Any) -> str | None:
    """A party number as the charts key it (``"1"``, ``"24"``), or None."""
    if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 3 and int(key) > 0:
        return str(int(key))
    return None


def _entry(party: Any, cid: Any, info: Any) -> tuple[tuple, None] | tuple[None, str]:
    """One candidate of a list as (candidate, party, number, name, gender), or (None, what is wrong)."""
    number = info.get("nomor_urut") if isinstance(info, dict) else None
    name = info.get("nama") if isinstance(info, dict) else None
    if not (isinstance(cid, str) and cid.isascii() and cid.isdigit() and len(cid) <= _MAX_ID):
        return None, f"candidate id {str(cid)[:20]!r} is not a string of digits"
    if not isinstance(info, dict):
        return None, f"candidate {cid} is a {type(info).__name__}, not an object"
    if not (type(number) is int and 0 < number < 1000):
        return None, f"candidate {cid} has no ballot number (nomor_urut) from 1 to 999"
    if not (isinstance(name, str) and name.strip()):
        return None, f"candidate {cid} has no name (nama)"
    gender = info.get("jenis_kelamin")
    return (cid, party, number, name, gender if gender in ("L", "P") else None), None


def _candidate_list(data: Any) -> tuple[list[tuple], int, str | None]:
    """The good candidates of a decoded list, the number of bad entries and an example of what was wrong."""
    if not isinstance(data, dict):
        return [], 1, f"a JSON {type(data).__name__}, not an object of parties"
    good, bad, example = [], 0, None
    for key, members in data.items():
        party = _party(key)
        problem = None
        if party is None:
            problem = f"party key {str(key)[:20]!r} is not a party number"
        elif not isinstance(members, dict):
            problem = f"party {party} is a {type(members).__name__}, not an object of candidates"
        if problem:
            bad, example = bad + 1, example or problem
            continue
        for cid, info in members.items():
            row, problem = _entry(party, cid, info)
            if row is None:
                bad, example = bad + 1, example or problem
            else:
                good.append(row)
    return good, bad, example


def _dapil_list(data: Any) -> tuple[str, int, str]:
    """(outcome, dapils with a usable code, reason) of a decoded dapil list."""
    if not isinstance(data, list):
        return "rejected", 0, f"a JSON {type(data).__name__}, not a list of dapils"
    usable = sum(endpoints.dapil_code_of(item) is not None for item in data)
    if usable == len(data):
        return "ok", usable, ""
    return "partial" if usable else "rejected", usable, f"{len(data) - usable} of {len(data)} entries without a usable dapil code"


def _checked_candidate_list(data: Any) -> tuple[list[tuple], str, str]:
    """(good candidates, outcome, reason) of a decoded candidate list: ok, partial (some bad entries) or rejected."""
    if not isinstance(data, dict):
        return [], "rejected", f"a JSON {type(data).__name__}, not an object of parties"
    good, bad, example = _candidate_list(data)
    if not bad:
        return good, "ok", "" if good else "lists no candidate"
    reason = f"{bad} of {bad + len(good)} entries not in the expected shape (e.g. {example})"
    return good, "partial" if good else "rejected", reason


def read_candidate_lists(snapshot: str | Path, records: Mapping[str, Mapping[str, Any]], ballot: str) -> CandidateLists:
    """Every dapil list of ``ballot`` and every candidate list of a snapshot, read and accounted for.

    A list that is not JSON or not an object of parties is ``rejected``; one with some bad entries is
    ``partial`` (its good entries are used); an id in two lists (or under two parties of one) is left
    out, since its dapil or party cannot be told, and the lists say so. ``records`` is the snapshot's
    manifest (path -> last record).
    """
    root = Path(snapshot)
    lists: list[dict[str, Any]] = []
    rows: list[tuple] = []
    # Only paths under these prefixes can be lists: not the ~10^6 TPS bodies of a national snapshot.
    for api_path in sorted(p for p in records if p.startswith(endpoints.LIST_PREFIXES)):
        kind, list_ballot, code = endpoints.classify(api_path)
        if not (kind == "candidates" or (kind == "dapils" and list_ballot == ballot)):
            continue
        record = records[api_path]
        entry = {"path": api_path, "kind": kind, "dapil": code if kind == "candidates" else None,
                 "outcome": record.get("outcome") or "failed", "entries": 0, "reason": record.get("reason") or ""}
        lists.append(entry)
        if entry["outcome"] == "ok":
            data, reason = _load(root, api_path)
            if reason is not None:
                entry["outcome"], entry["reason"] = "rejected", reason
            elif kind == "dapils":
                entry["outcome"], entry["entries"], entry["reason"] = _dapil_list(data)
            else:
                good, entry["outcome"], entry["reason"] = _checked_candidate_list(data)
                entry["entries"] = len(good)
                rows.extend((cid, code, party, number, name, gender) for cid, party, number, name, gender in good)

    candidates = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    # Ids are unique across dapils in 2024: an id listed twice (beyond an exact repeat) belongs to no
    # one dapil or party, so it names nobody, and every list it is in says so.
    candidates = candidates.drop_duplicates()
    clash = candidates["candidate"].duplicated(keep=False)
    ambiguous = set(candidates.loc[clash, "candidate"])
    if ambiguous:
        for entry in lists:
            if entry["kind"] == "candidates" and entry["dapil"] in set(candidates.loc[clash, "dapil"]):
                n = candidates.loc[clash & (candidates["dapil"] == entry["dapil"]), "candidate"].nunique()
                note = f"{n} candidate ids also listed elsewhere (left unnamed)"
                entry["reason"] = f"{entry['reason']}; {note}" if entry["reason"] else note
        candidates = candidates[~clash]
    candidates = candidates.reset_index(drop=True).astype({"number": "Int64"})
    table = pd.DataFrame(lists, columns=LIST_COLUMNS).astype({"entries": "Int64"})
    outcomes = Counter(zip(table["kind"], table["outcome"]))

    def count(kind: str, *which: str) -> int:
        return sum(outcomes[kind, outcome] for outcome in which)

    counts = {"candidate_lists_read": count("candidates", "ok", "partial"),
              "candidate_lists_bad": count("candidates", "partial", "rejected", "failed"),
              "candidate_lists_not_published": count("candidates", "not_published"),
              "dapil_lists_read": count("dapils", "ok", "partial"),
              "dapil_lists_bad": count("dapils", "partial", "rejected", "failed"),
              "dapil_lists_not_published": count("dapils", "not_published"),
              "candidates_listed": len(candidates), "candidate_ids_ambiguous": len(ambiguous)}
    return CandidateLists(candidates=candidates, lists=table, counts=counts)


def code_dtype(categories: int) -> type:
    """The integer type pandas keeps the codes of a categorical with this many categories in (made so, not cast)."""
    return np.int8 if categories < 127 else np.int16 if categories < 32_767 else np.int32 if categories < 2**31 - 1 else np.int64


def categorical(codes: np.ndarray, categories: Any) -> pd.Categorical:
    """Codes into ``categories`` (distinct strings) as a categorical of pandas strings (the long votes' columns)."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(categories), dtype="str"), validate=False)


def attach_candidates(votes_long: pd.DataFrame, candidates: pd.DataFrame,
                      party_names: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The long votes with each candidate's dapil, ballot number, name and gender, and each party's name.

    A row is named when its candidate id is in a list under the same party; an id in no list, or
    listed under another party, keeps ``<NA>`` and is counted (an id left out as listed twice counts
    as in no list). Party-only rows (candidate ``""``) get the party's name alone. Lookups are made on
    the distinct ids and parties of the categorical columns; per row there are only numpy takes on
    their codes (a national DPR table has on the order of 10^8 rows).
    """
    candidate = _codes(votes_long["candidate"])
    party = _codes(votes_long["party"])
    ids = candidate.categories.astype(object)
    nobody, distinct_ids = len(candidates), len(ids)
    # Per distinct id (and one more entry, for rows named by nobody and a missing id's code -1): its
    # position in the lists (nobody if in none) and that entry's party; per distinct party: its number.
    # Rows only take from these, through one position each.
    position = {cid: i for i, cid in enumerate(candidates["candidate"].tolist())}
    at = np.array([position.get(cid, nobody) for cid in ids] + [nobody], dtype=np.int64)
    list_party = np.array([int(p) for p in candidates["party"].tolist()] + [-1], dtype=np.int64)[at].astype(np.int32)
    distinct = [_party(value) for value in party.categories.astype(object)]
    party_number = np.array([int(p or 0) for p in distinct] + [0], dtype=np.int32)
    named = list_party[candidate.codes] == party_number[party.codes]
    # (pandas' codes are the smallest ints holding every category's number, so also distinct_ids)
    pick = np.where(named, candidate.codes, candidate.codes.dtype.type(distinct_ids))

    def codes(values: pd.Series) -> tuple[np.ndarray, Any]:
        positions, uniques = pd.factorize(values, use_na_sentinel=True)
        return np.append(positions, -1).astype(code_dtype(len(uniques)))[at][pick], uniques

    out = votes_long.copy(deep=False)  # copy-on-write: the votes' own columns are shared, not copied
    for column, values in (("dapil", candidates["dapil"]), ("candidate_name", candidates["name"]),
                           ("candidate_gender", candidates["gender"])):
        out[column] = categorical(*codes(values))
    # Ballot numbers are 1..999 (read_candidate_lists): Int16 where they fit, not a count's Int64 (10^8 rows nationally).
    listed_numbers = candidates["number"].to_numpy(dtype=np.int64, na_value=0)
    fits = not len(listed_numbers) or (listed_numbers.min() >= -2**15 and listed_numbers.max() < 2**15)
    listed_numbers = np.append(listed_numbers, 0).astype(np.int16 if fits else np.int64)
    out["candidate_number"] = pd.arrays.IntegerArray(listed_numbers[at][pick], ~named)
    names = {_party(k): v for k, v in (party_names or {}).items() if _party(k) and isinstance(v, str)}
    categories = sorted(set(names.values()))
    by_distinct = np.array([categories.index(names[p]) if p in names else -1 for p in distinct] + [-1],
                           dtype=code_dtype(len(categories)))
    out["party_name"] = categorical(by_distinct[party.codes], categories)
    out = out[[*votes_long.columns, *ATTACHED]]

    # Counted through the distinct ids (the entry after them is a missing id's, code -1): which are
    # people ("" is a party-only row), listed, and present in some row; per row only boolean takes.
    person = np.array([len(cid) > 0 for cid in ids] + [False], dtype=bool)
    listed = at < nobody
    # Rows per distinct id, in one pass over the rows (code -1, a missing id, counted last): the rest is per id.
    if len(candidate.codes) and candidate.codes.min() < 0:
        tally = np.bincount(candidate.codes.astype(np.int64) + 1, minlength=distinct_ids + 1)
        rows_of = np.append(tally[1:], tally[0])
    else:
        rows_of = np.append(np.bincount(candidate.codes, minlength=distinct_ids), 0)
    named_rows = int(np.count_nonzero(named))  # a named row is a listed person's (no list holds "")
    candidate_rows = int(rows_of[person].sum())
    counts = {"candidate_rows": candidate_rows, "candidate_rows_named": named_rows,
              "candidate_rows_unnamed": candidate_rows - named_rows,
              "candidate_rows_other_party": int(rows_of[person & listed].sum()) - named_rows,
              "candidate_ids_unlisted": int(np.count_nonzero((rows_of > 0) & person & ~listed))}
    return out, counts


def _codes(column: pd.Series) -> pd.Categorical:
    """A column of the long votes as a categorical (as ``parse_tps_bodies`` makes it; others are converted)."""
    values = column.array
    return values if isinstance(values, pd.Categorical) else pd.Categorical(values)


def party_names(snapshot: str | Path, records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Party number -> short name from the stored ``pemilu/partai.json`` (empty without it)."""
    record = records.get("pemilu/partai.json")
    if not record or record.get("outcome") != "ok":
        return {}
    data, _ = _load(Path(snapshot), "pemilu/partai.json")
    names = {}
    for key, info in data.items() if isinstance(data, dict) else ():
        number = info.get("nomor_urut") if isinstance(info, dict) else None
        name = info.get("nama") if isinstance(info, dict) else None
        if type(number) is int and 0 < number < 1000 and isinstance(name, str):
            names[str(number)] = name
    return names
