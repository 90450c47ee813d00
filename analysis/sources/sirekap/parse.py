"""Raw Sirekap TPS bodies (``pemilu/hhcw/ppwp/.../{tps}.json``) into an Election, with a rejects table.

Every quirk of sirekap-api.md is handled: ``chart`` or ``administrasi`` may be null independently,
each administrasi number may be null, ``chart`` carries a spurious ``"null": null`` key, ``psu`` is
null or a re-vote kind, ``ts`` is WIB without a zone, photo upload times sit in the image names.
Unpublished numbers are ``<NA>``, never 0. Every body ends in exactly one of the table or the
rejects, with a reason.
"""

from __future__ import annotations

import array
import errno
import gc
import hashlib
import json
import os
import re
import threading
import zipfile
from collections import abc
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import accumulate, chain
from operator import itemgetter
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...election import Election
from . import caleg, dapil as dapil_totals, endpoints, store


def _json_loads_utf8(body):
    """json.loads reading bytes as strict UTF-8, as ``_row`` does (json.loads would guess UTF-16/32 and skip a BOM)."""
    return json.loads(body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body)


try:  # a faster decoder for the hot path; every body it does not take as a clean row is read again by json
    from orjson import dumps as _fast_dumps, loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency, json is the fallback
    _fast_loads, _fast_dumps = _json_loads_utf8, None

try:  # the compiled party-chart and party-row readers (setup.py); without a C compiler at install, the same in Python
    from ._partychart import party_chart as _party_chart_compiled, party_row as _party_row_compiled
except ImportError:  # pragma: no cover - built wherever the package was installed with a compiler
    _party_chart_compiled = _party_row_compiled = None

#: Sirekap candidate ids of the 2024 presidential ballot -> ballot numbers.
PPWP_CANDIDATES: Mapping[str, str] = {"100025": "01", "100026": "02", "100027": "03"}
ADMINISTRASI_FIELDS = (
    "pemilih_dpt_j", "pemilih_dpt_l", "pemilih_dpt_p",
    "pengguna_dpt_j", "pengguna_dpt_l", "pengguna_dpt_p",
    "pengguna_dptb_j", "pengguna_dptb_l", "pengguna_dptb_p",
    "pengguna_non_dpt_j", "pengguna_non_dpt_l", "pengguna_non_dpt_p",
    "pengguna_total_j", "pengguna_total_l", "pengguna_total_p",
    "suara_sah", "suara_tidak_sah", "suara_total",
)
LEVELS = ("province", "regency", "district", "village")
TPS_CODE = re.compile(r"([0-9]{13})(?:\.json)?$")
PHOTO_TIME = re.compile(r"/([0-9]{13})-([0-9]{8})-([0-9]{6})--[^/]*$")
PARTY_TOTAL, PARTY_ONLY = "jml_suara_total", "jml_suara_partai"
#: Party numbers of 2024: national 1-17 and 24, Aceh's local parties 18-23 -> vote columns.
PARTY_COLUMNS: Mapping[str, str] = {str(n): f"{n:02d}" for n in range(1, 25)}
BALLOT_NAMES = {"ppwp": "presiden", "pdpr": "DPR RI", "pdpd": "DPD", "pdprdp": "DPRD provinsi", "pdprdk": "DPRD kabupaten/kota"}
PSU_KINDS = {
    "Pemungutan Suara Ulang", "Penghitungan Suara Ulang", "Pemungutan Suara Susulan",
    "Penghitungan Suara Susulan", "Pemungutan Suara Lanjutan",
}


class BodyError(ValueError):
    """A body that cannot become a row; the message is the rejects reason."""


@dataclass(frozen=True)
class ParsedTps:
    """Rows for the Election table, rejected bodies with reasons, and the counts that reconcile them."""

    table: pd.DataFrame
    rejects: pd.DataFrame
    counts: Mapping[str, int] = field(default_factory=dict)
    #: Party ballots: one row per TPS, party and candidate (``candidate`` "" is the party-only vote);
    #: ``unit_id``, ``party`` and ``candidate`` are categorical (parties in ballot order), ``votes`` Int64.
    votes_long: pd.DataFrame | None = None


def _code(key: str) -> str:
    match = TPS_CODE.search(str(key).replace("\\", "/").rsplit("/", 1)[-1])
    if not match:
        raise BodyError("the name does not end in a 13-digit TPS code")
    return match.group(1)


def _count(value: Any, *where: str) -> int | None:
    """A published count: a non-negative whole number, or None when unpublished.

    ``where`` names the field for the rejects reason; its parts are joined only on error (hot path).
    """
    if type(value) is int and 0 <= value <= 10**9:
        return value
    if value is None:
        return None
    where = "".join(map(str, where))
    if isinstance(value, bool):
        raise BodyError(f"{where} is a boolean, not a count")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise BodyError(f"{where} is not a whole number ({value!r})")
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise BodyError(f"{where} is not a count ({value[:40]!r})")
        number = int(text)
    else:
        raise BodyError(f"{where} is a {type(value).__name__}, not a count")
    if number < 0:
        raise BodyError(f"{where} is negative ({number})")
    if number > 10**9:
        raise BodyError(f"{where} is implausibly large ({number})")
    return number


def _photo_time(url: Any) -> str | None:
    """``YYYYMMDD HHMMSS`` of the upload time in a photo name (converted to a time for all rows at once)."""
    if not isinstance(url, str):
        return None
    match = PHOTO_TIME.search(url)
    return f"{match.group(2)} {match.group(3)}" if match else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


class _Rows:
    """Per-candidate votes of one party body as columns, as ``_party_chart`` writes them."""

    def __init__(self):
        self.party: list[str] = []
        self.candidate: list[str] = []
        self.votes: list[int | None] = []


class _Long:
    """Per-candidate votes of party ballots, made into columns at the end.

    A body's numbers have a *layout*: which of them are votes (and of which party and candidate) and
    which are party totals (of which vote column), the same for every TPS of an electoral district.
    Layouts are kept once; a body that becomes a row adds its layout's number and its numbers, and
    ``frame`` and ``totals`` lay the columns out with numpy and pyarrow. The fast path adds every number
    of a body's party entries, totals included; ``_row`` adds the votes alone.
    """

    def __init__(self, columns: int, compiled: bool = False):
        self.columns = columns  # vote columns of the table
        self.layout_of_body: list[int] = []  # one per row of the table, in its order
        # The numbers, body after body: with the compiled reader, int64 checked as they come (a missing
        # number from ``_row`` is a 0 with its position in ``missing``); else the decoded values, checked at the end.
        self.compiled = compiled
        self.values: list[Any] | array.array = array.array("q") if compiled else []
        self.missing: list[int] = []
        self.scratch = array.array("q")  # one body's numbers (the compiled reader's), and where its nulls are
        self.scratch_missing: list[int] = []
        self.layouts: list[tuple[list[str], list[str]]] = []  # (party, candidate) of each number ("" for a total)
        self.keep: list[list[bool] | None] = []  # per layout: which numbers are votes (None: all)
        self.heads: list[list[int] | None] = []  # per layout: the position of each column's total (-1: none), or None
        #: (party keys, chart keys, entry lengths) -> layout number
        self.known: dict[tuple, int] = {}
        self.last: tuple | None = None  # (party keys, chart keys, entry lengths, layout) of the last body read
        self.rows = False  # whether the compiled reader makes the rows of the usual bodies (``_party_row_compiled``)
        self.new_layout([], [])  # _NO_LAYOUT

    def new_layout(self, party: list[str], candidate: list[str], keep: list[bool] | None = None,
                   heads: list[int] | None = None) -> int:
        self.layouts.append((party, candidate))
        self.keep.append(keep)
        self.heads.append(heads)
        return len(self.layouts) - 1

    def add_rows(self, rows: _Rows) -> None:
        """Rows of a body read by ``_row``, with a layout of their own (rejected bodies add nothing)."""
        self.layout_of_body.append(self.new_layout(rows.party, rows.candidate))
        if not self.compiled:
            self.values.extend(rows.votes)
            return
        for vote in rows.votes:  # ints in 0..10**9 or None (``_count``)
            if vote is None:
                self.missing.append(len(self.values))
                vote = 0
            self.values.append(vote)

    def array(self) -> Any:
        """The compiled reader's numbers as an int64 arrow array (``missing`` as nulls)."""
        import pyarrow as pa

        numbers = np.frombuffer(self.values, dtype=np.int64) if len(self.values) else np.zeros(0, dtype=np.int64)
        if not self.missing:
            return pa.array(numbers)
        mask = np.zeros(len(numbers), dtype=bool)
        mask[self.missing] = True
        return pa.array(numbers, mask=mask)

    def totals(self, values: Any, columns: list[Any]) -> list[Any]:
        """The table's vote columns (Int64 arrays from the rows) with the totals the fast path left among the values."""
        import pyarrow as pa

        if all(heads is None for heads in self.heads):
            return columns
        of_body = np.array(self.layout_of_body, dtype=np.int64)
        sizes = np.array([len(party) for party, _ in self.layouts], dtype=np.int64)[of_body]
        body_starts = np.cumsum(sizes) - sizes
        heads = np.array([h if h is not None else [-1] * self.columns for h in self.heads], dtype=np.int64)
        out = []
        for c, column in enumerate(columns):
            where = heads[of_body, c]
            rows = np.flatnonzero(where >= 0)
            if not len(rows):
                out.append(column)
                continue
            totals = values.take(pa.array(body_starts[rows] + where[rows]))
            data, mask = column._data.copy(), column._mask.copy()
            data[rows] = totals.fill_null(0).to_numpy()
            mask[rows] = totals.is_null().to_numpy(zero_copy_only=False)
            out.append(pd.arrays.IntegerArray(data, mask))
        return out

    def frame(self, codes: list[str], values: Any = None) -> pd.DataFrame:
        """The long table; ``codes`` are the table's TPS codes (one per body added), ``values`` the numbers
        as an int64 arrow array if already made.

        ``unit_id``, ``party`` and ``candidate`` are categorical (a national DPR table has ~10^8 rows and
        some 10^4 distinct candidates): each is its layouts' pieces of codes put one after another, no
        string per row.
        """
        import pyarrow as pa

        if values is None:
            values = self.array() if self.compiled else pa.array(self.values, type=pa.int64())
        of_body = np.array(self.layout_of_body, dtype=np.int64)
        used = np.unique(of_body).tolist()
        # Categories from the numbers that are rows (a party entry may hold its total alone: no row, no category).
        kept_names = [[(p, c) for p, c, k in zip(*self.layouts[layout], self.keep[layout] or [True] * len(self.layouts[layout][0])) if k]
                      for layout in used]
        party_names = sorted({p for pairs in kept_names for p, _ in pairs}, key=_party_order)
        candidate_names = sorted({c for pairs in kept_names for _, c in pairs})
        party_at = {name: i for i, name in enumerate(party_names)}
        candidate_at = {name: i for i, name in enumerate(candidate_names)}
        party_type, candidate_type = caleg.code_dtype(len(party_names)), caleg.code_dtype(len(candidate_names))
        party, candidate, keep, kept = {}, {}, {}, np.zeros(len(self.layouts), dtype=np.int64)
        for layout in used:
            mask = self.keep[layout]
            names, ids = self.layouts[layout]
            if mask is not None:
                names = [name for name, k in zip(names, mask) if k]
                ids = [i for i, k in zip(ids, mask) if k]
                keep[layout] = np.array(mask, dtype=bool)
            party[layout] = np.array(list(map(party_at.__getitem__, names)), dtype=party_type)
            candidate[layout] = np.array(list(map(candidate_at.__getitem__, ids)), dtype=candidate_type)
            kept[layout] = len(names)
        # The votes as a new (writable) numpy array and its mask, which the frame takes without a copy.
        numbers = values.fill_null(0).to_numpy() if values.null_count else values.to_numpy()
        missing = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
        if keep:  # the totals among the numbers are no rows
            is_vote = np.concatenate([np.zeros(0, dtype=bool), *(
                keep[layout] if layout in keep else np.ones(len(self.layouts[layout][0]), dtype=bool) for layout in self.layout_of_body)])
            numbers = numbers[is_vote]
            missing = missing[is_vote] if missing is not None else None
        else:
            numbers = numbers.copy()
            missing = missing.copy() if missing is not None else None
        votes = pd.arrays.IntegerArray(numbers, missing if missing is not None else np.zeros(len(numbers), dtype=bool))
        sizes = kept[of_body]
        has_rows = sizes > 0  # a TPS without rows is no category
        units_with_rows = int(has_rows.sum())
        unit_codes = np.repeat(np.arange(units_with_rows, dtype=caleg.code_dtype(units_with_rows)), sizes[has_rows])
        units = np.asarray(codes, dtype=object)[has_rows] if len(codes) else np.array([], dtype=object)
        party_codes = np.concatenate([np.zeros(0, dtype=party_type), *map(party.__getitem__, self.layout_of_body)])
        candidate_codes = np.concatenate([np.zeros(0, dtype=candidate_type), *map(candidate.__getitem__, self.layout_of_body)])
        return pd.DataFrame({"unit_id": caleg.categorical(unit_codes, units), "party": caleg.categorical(party_codes, party_names),
                             "candidate": caleg.categorical(candidate_codes, candidate_names), "votes": votes},
                            copy=False)  # new arrays, this frame's alone


def _party_order(name: str) -> tuple:
    """Party numbers in ballot order ("2" before "10"); anything else after them.

    Compared as digit strings (shorter first), never made ints: a key of thousands of digits is hostile
    input, which ``int`` refuses beyond 4,300 digits.
    """
    if name.isascii() and name.isdigit():
        digits = name.lstrip("0")
        return (0, len(digits), digits, name)
    return (1, 0, "", name)


def _from_arrow(array: Any) -> pd.api.extensions.ExtensionArray:
    """An int64 arrow array as an Int64 array."""
    if not array.null_count:
        return pd.arrays.IntegerArray(array.to_numpy(), np.zeros(len(array), dtype=bool))
    return pd.arrays.IntegerArray(array.fill_null(0).to_numpy(), array.is_null().to_numpy(zero_copy_only=False))


def _party_chart(code: str, chart: Mapping[str, Any], parties: Mapping[str, str], row: dict[str, Any], long: _Rows,
                 caleg: Any = None) -> None:
    """A legislative chart into row and long, with the body's separate ``caleg`` (candidate votes) if it has one.

    Shapes served (sirekap-api.md, "Legislative ballots as served"): ``chart{party: {jml_suara_total,
    jml_suara_partai}}`` with ``caleg{party: {caleg_id: votes | null, ..., "null": null}}`` (from 18 Feb 2024);
    ``chart{party: votes | null}`` without ``caleg`` (16 Feb 2024); and the dapil aggregates' ``table`` shape
    ``{party: {jml_suara_total, jml_suara_partai, <candidate id>: votes}}``. Per party the rows are its
    party-only votes and its candidates in the order served, the chart entry's before ``caleg``'s.
    """
    if caleg is not None and not isinstance(caleg, dict):
        raise BodyError(f"caleg is a {type(caleg).__name__}, not an object")
    caleg = dict(caleg or {})
    if "null" in caleg:
        if caleg.pop("null") is not None:
            raise BodyError('caleg["null"] holds something other than null')
    seen: set[str] = set()
    for party in [*chart, *(p for p in caleg if p not in chart)]:
        column = parties.get(party)
        if column is None:
            where = "chart" if party in chart else "caleg"
            raise BodyError(f"{where} has an unknown party number: {str(party)[:20]}")
        keys: list[str] = []
        values: list[Any] = []
        entry = chart.get(party)
        if party not in chart or entry is None:
            total = None
        elif isinstance(entry, dict):
            total = _count(entry.get(PARTY_TOTAL), "chart[", party, "].", PARTY_TOTAL)
            for key, value in entry.items():
                if key == PARTY_TOTAL:
                    continue
                if not (key == PARTY_ONLY or (isinstance(key, str) and key.isdigit())):
                    raise BodyError(f"chart[{str(party)[:20]}] has a key that is neither a candidate id nor a party count: {str(key)[:20]!r}")
                keys.append(key)
                values.append(value)
        else:  # the early flat chart, desa tables: the party total alone
            total = _count(entry, "chart[", party, "]")
        candidates = caleg.get(party)
        if candidates is not None:
            if not isinstance(candidates, dict):
                raise BodyError(f"caleg[{str(party)[:20]}] is a {type(candidates).__name__}, not an object")
            for key, value in candidates.items():
                if key == "null":
                    if value is not None:
                        raise BodyError(f'caleg[{str(party)[:20]}]["null"] holds a number, not null')
                    continue
                if not (isinstance(key, str) and key.isdigit()):
                    raise BodyError(f"caleg[{str(party)[:20]}] has a key that is not a candidate id: {str(key)[:20]!r}")
                if key in keys:
                    raise BodyError(f"candidate {key[:20]} has votes both in chart and in caleg")
                keys.append(key)
                values.append(value)
        for key in keys:
            if key != PARTY_ONLY:
                if key in seen:
                    raise BodyError(f"candidate {key[:20]} appears twice in the body")
                seen.add(key)
        long.votes.extend(_count(value, "caleg[" if key != PARTY_ONLY and party in caleg and key in caleg[party] else "chart[",
                                 party, "][", key, "]") for key, value in zip(keys, values))
        long.candidate.extend("" if key == PARTY_ONLY else key for key in keys)
        long.party.extend([party] * len(keys))
        if party in chart:
            row[column] = total


def _dapil(value: Any) -> str | None:
    """``kode_dapil`` as served (null or absent: None); anything but a string of 2 to 13 ASCII digits is refused."""
    if value is None:
        return None
    if type(value) is str and 2 <= len(value) <= 13 and value.isascii() and value.isdigit():
        return value
    raise BodyError(f"kode_dapil is not a dapil code ({str(value)[:20]!r})")


def _photo_count(images: Any) -> int | None:
    """How many photo names the body lists (None without a list)."""
    if not isinstance(images, list):
        return None
    return sum(1 for url in images if isinstance(url, str))


def _row(code: str, body: Any, candidates: Mapping[str, str], long: _Rows | None = None, photos: int = 3,
         dapil: bool = False) -> dict[str, Any]:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("the body is not UTF-8 text") from None
    if isinstance(body, str):
        if not body.strip():
            raise BodyError("the body is empty")
        try:
            body = json.loads(body)
        except (json.JSONDecodeError, RecursionError):
            raise BodyError("the body is not JSON (cut off, or an error page)") from None
    if body is None:
        raise BodyError("the body is missing (null)")
    if not isinstance(body, dict):
        raise BodyError(f"the body is a JSON {type(body).__name__}, not an object")
    if not ({"chart", "administrasi"} & body.keys()):
        raise BodyError("the body has neither chart nor administrasi (not a TPS body)")

    row: dict[str, Any] = {"unit_id": code}
    chart = body.get("chart")
    if chart is not None and not isinstance(chart, dict):
        raise BodyError(f"chart is a {type(chart).__name__}, not an object")
    # has_chart follows the API: the vote page was published (even if, as happens, it is empty).
    row_has_chart = chart is not None
    chart = {k: v for k, v in (chart or {}).items() if k != "null"}
    if long is not None:
        for column in candidates.values():
            row[column] = None
        _party_chart(code, chart, candidates, row, long, body.get("caleg"))
        row["chart_parties"] = len(chart) if row_has_chart else None
    else:
        unknown = sorted(set(chart) - set(candidates))
        if unknown:
            raise BodyError(f"chart has unknown candidate ids: {', '.join(map(str, unknown))[:80]}")
        if len(candidates) == len(set(candidates.values())):
            for sirekap_id, number in candidates.items():
                row[number] = _count(chart.get(sirekap_id), "chart[", sirekap_id, "]")
        else:  # DPD: ids of every province map to ballot numbers; a body holds one province's ids
            for number in candidates.values():
                row.setdefault(number, None)
            for sirekap_id, value in chart.items():
                number = candidates[sirekap_id]
                if row[number] is not None:
                    raise BodyError(f"chart has two candidates with ballot number {number}")
                row[number] = _count(value, "chart[", sirekap_id, "]")

    administrasi = body.get("administrasi")
    if administrasi is not None and not isinstance(administrasi, dict):
        raise BodyError(f"administrasi is a {type(administrasi).__name__}, not an object")
    administrasi = administrasi or {}
    for name in ADMINISTRASI_FIELDS:
        row[name] = _count(administrasi.get(name), "administrasi.", name)
    row["has_chart"] = row_has_chart
    row["has_administrasi"] = any(row[name] is not None for name in ADMINISTRASI_FIELDS)

    psu = body.get("psu")
    row["psu"] = psu if isinstance(psu, str) and psu.strip() else None
    ts = body.get("ts")
    row["ts"] = ts if isinstance(ts, str) else None
    row["status_suara"] = _flag(body.get("status_suara"))
    row["status_adm"] = _flag(body.get("status_adm"))
    images = body.get("images")
    images = images if isinstance(images, list) else []
    for i in range(photos):
        row[f"photo_{i + 1}_time"] = _photo_time(images[i]) if i < len(images) else None
    if dapil:
        row["dapil"] = _dapil(body.get("kode_dapil"))
        row["photo_count"] = _photo_count(body.get("images"))
    return row


_LIMIT = 10**9
_INT, _INT_NONE, _NONE = {int}, {int, type(None)}, {type(None)}
_DICT = {dict}
_OPENERS = {False: (b"[", b"{"), True: ("[", "{")}
#: A TPS body has a few dozen brackets; more than this and the body is read by json (``_row``).
_MAX_FAST_BRACKETS = 200


def _counts_ok(values: list) -> bool:
    """Whether every value is a count that ``_count`` would return as it is (an int in 0..10**9) or None."""
    types = set(map(type, values))
    if types == _NONE:
        return True
    if types == _INT:
        return min(values) >= 0 and max(values) <= _LIMIT
    if types <= _INT_NONE:
        present = [v for v in values if v is not None]
        return not present or (min(present) >= 0 and max(present) <= _LIMIT)
    return False


class _Shape:
    """What the fast path needs to know of the vote columns, computed once per batch."""

    def __init__(self, candidates: Mapping[str, str], parties: bool, photos: int = 3, dapil: bool = False):
        self.photos, self.dapil = photos, dapil
        self.no_photos = (None,) * photos
        self.numbers = list(dict.fromkeys(candidates.values()))
        index = {number: i for i, number in enumerate(self.numbers)}
        self.parties = parties
        self.column_of = {key: index[number] for key, number in candidates.items()}
        # Charts of the presidential ballot (one id per column): the ids in column order, and what a chart may hold.
        self.simple = not parties and len(candidates) == len(self.numbers)
        self.ids = list(candidates) if self.simple else []
        self.allowed = set(candidates) | {"null"}
        self.no_totals = (None,) * len(self.numbers)


_NO_LAYOUT = 0  # the first layout of every _Long: no rows
_ADMINISTRASI = itemgetter(*ADMINISTRASI_FIELDS)
_NO_ADMINISTRASI = (None,) * len(ADMINISTRASI_FIELDS)
_NO_PHOTOS = (None, None, None)


def _party_layout(names: list[str], lens: tuple[int, ...], keys: list[str], long: _Long, shape: _Shape) -> int | None:
    """The layout of party entries of this shape as ``_party_chart`` reads them, or None to let ``_row`` read the body.

    An entry's keys (the chart entry's, then its ``caleg`` entry's) are ``jml_suara_total`` (the party's
    total, for its vote column), ``jml_suara_partai`` (the party-only votes) and candidate ids (digit
    strings), in any order; anything else (an unknown party, another key, a candidate id twice) is left to
    ``_row``, which says what is wrong. Made once per layout: the TPS of a district share one.
    """
    columns = list(map(shape.column_of.get, names))
    if None in columns or len(lens) != len(names) or sum(lens) != len(keys):
        return None
    party: list[str] = []
    candidate: list[str] = []
    keep: list[bool] = []
    last: dict[int, int] = {}
    ids: set[str] = set()
    position = 0
    for name, column, size in zip(names, columns, lens):
        for key in keys[position:position + size]:
            if key == PARTY_TOTAL:
                if column in last and last[column] >= position:  # twice in one entry (not from a dict)
                    return None
                last[column] = len(keep)  # column c gets the total of the last entry of its party, as in _row
                keep.append(False)
                candidate.append("")
            elif key == PARTY_ONLY:
                keep.append(True)
                candidate.append("")
            elif type(key) is str and key.isdigit() and key not in ids:
                ids.add(key)
                keep.append(True)
                candidate.append(key)
            else:
                return None
            party.append(name)
        position += size
    if len(long.known) > 20_000:  # a bound; a national DPRD kabupaten/kota table has ~2,300 districts
        long.known.clear()
    layout = long.new_layout(party, candidate, keep, [last.get(c, -1) for c in range(len(shape.numbers))])
    long.known[(tuple(names), tuple(keys), lens)] = layout
    return layout


def _with_caleg(names: list[str], entries: list[Any], caleg: dict) -> list[Any] | None:
    """The chart's party entries with each party's ``caleg`` entry after its own keys (Python's reader), or
    None if chart and caleg are not of the usual shape (a party in caleg alone, an entry that is no dict,
    a ``"null"`` key that is not null): ``_row`` reads those."""
    known = len(caleg)
    if "null" in caleg:
        if caleg["null"] is not None:
            return None
        known -= 1
    merged, found = [], 0
    for name, entry in zip(names, entries):
        extra = caleg.get(name)
        if name in caleg:
            found += 1
        if extra is None:
            merged.append(entry)
            continue
        if type(entry) is not dict or type(extra) is not dict:
            return None
        if "null" in extra:
            if extra["null"] is not None:
                return None
            extra = extra.copy()
            del extra["null"]
        if not extra.keys().isdisjoint(entry) or PARTY_TOTAL in extra or PARTY_ONLY in extra:
            return None
        merged.append({**entry, **extra})
    return merged if found == known else None


_CONTAINERS = (dict, list)


def _brackets(text: bytes | bytearray | str) -> int:
    opening = _OPENERS[type(text) is str]
    return text.count(opening[0]) + text.count(opening[1])


def _shallow(body: dict, chart: Any, administrasi: Any, others: bool, images: Any, caleg: bool = False) -> bool:
    """Whether a decoded body that ``_fast_row`` takes is at most 3 deep, which its bracket count bounds otherwise.

    What the fast path takes holds lists or dicts only where a real body does: the chart (its party entries
    of counts; a count that is anything else sends the body to ``_row``), the administration page and
    the photo list. Elsewhere (the chart's ``"null"``, keys of the page besides its counts (``others``),
    photo names, ``psu``, ``ts``, any other key) a value nobody reads could hold a deep list: then this says no.
    """
    kinds = list(map(type, body.values()))
    # ``caleg``: the body's candidate votes were read (a dict of dicts of counts), so they hold nothing deeper.
    if kinds.count(dict) + kinds.count(list) != (type(chart) is dict) + (type(administrasi) is dict) + (type(images) is list) + caleg:
        return False
    if type(chart) is dict and type(chart.get("null")) in _CONTAINERS:
        return False
    if others and not set(map(type, administrasi.values())).isdisjoint(_CONTAINERS):
        return False
    return type(images) is not list or images.count(None) == len(images) or set(map(type, images)).isdisjoint(_CONTAINERS)


def _fast_row(code: str, body: Any, shape: _Shape, long: _Long | None, defer: bool = False) -> tuple | None:
    """The row of a well-formed body, as ``_row`` makes it, or None to let ``_row`` read the body.

    Takes only bodies whose every count is an int in 0..10**9 or null and whose shape is the usual one;
    anything else (errors, strings or floats as counts, a DPD chart, unusual party entries) returns None
    before touching ``long``, and ``_row`` (stdlib json, exact reasons) decides. Same row either way.
    With ``defer``, the counts of a body decoded here are not checked here: the caller checks whole
    columns at once (``_checked_counts``) and reads every body again with checks if one is not a count.
    """
    unchecked = False  # whether the counts are left to the caller's column check
    text = None  # the body as given, if it is JSON text
    if isinstance(body, (bytes, bytearray, str)):
        try:
            text, body = body, _fast_loads(body)
        except Exception:  # noqa: BLE001 - _row gives the reason
            return None
        # Decoded JSON holds only int, float, str, bool, None, list and dict, which the column check tells
        # apart; a caller's dict may hold anything (numpy ints, int subclasses), so its counts are checked here.
        unchecked = defer
    if type(body) is not dict or ("chart" not in body and "administrasi" not in body):
        return None
    if unchecked and long is not None and long.rows:  # the usual party body, read in C with its row (None: read below)
        row = _party_row_compiled(code, body, len(text), long, ADMINISTRASI_FIELDS, shape.no_totals, shape.photos, _MAX_FAST_BRACKETS)
        if row is not None:
            return row
    chart = body.get("chart")
    administrasi = body.get("administrasi")
    if type(administrasi) is dict:
        try:
            admin = _ADMINISTRASI(administrasi)
            others = len(administrasi) > len(ADMINISTRASI_FIELDS)  # whether the page has keys besides its counts
        except KeyError:  # a field left out: None, as .get gives
            admin = tuple(map(administrasi.get, ADMINISTRASI_FIELDS))
            others = True
    elif administrasi is None:
        admin = _NO_ADMINISTRASI
        others = False
    else:
        return None
    long_entries = None
    checked = False  # whether totals holds only counts checked already
    caleg = body.get("caleg") if shape.parties else None
    caleg_read = False  # whether caleg was read with the chart
    chart_parties = None
    if caleg is not None and type(caleg) is not dict:
        return None
    if chart is None:
        if caleg is not None:
            return None  # candidate votes without a chart: _row reads them
        totals = [None] * len(shape.numbers)
    elif type(chart) is not dict:
        return None
    elif shape.simple:
        if not chart.keys() <= shape.allowed:
            return None
        totals = list(map(chart.get, shape.ids))
    elif shape.parties:
        # The compiled reader: names, keys and lengths at once (the previous body's lists where equal), every
        # number checked. None if an entry is no dict (below: party totals alone, else _row), a key is no str
        # or a number neither null nor a count (_row, which says what it is), or there are fewer than two
        # entries (below, as without it).
        read = _party_chart_compiled(chart, long.scratch, long.scratch_missing, long.last, caleg) if long.compiled else None
        if read is not None:
            names, keys, lens = read
            numbers = long.scratch
            caleg_read = caleg is not None
        else:
            names = list(chart)
            entries = list(chart.values())
            if "null" in chart:
                j = names.index("null")
                del names[j], entries[j]
            if caleg is not None:
                if long.compiled:
                    return None  # the compiled reader refused chart and caleg together: _row reads them
                entries = _with_caleg(names, entries, caleg)
                if entries is None:
                    return None
                caleg_read = True
            if long.compiled:
                numbers = None
                if len(entries) > 1 and set(map(type, entries)) == _DICT:
                    return None
            else:
                try:  # the entries' numbers, if every entry is a dict (dict.values refuses anything else)
                    numbers = list(chain.from_iterable(map(dict.values, entries))) if len(entries) > 1 else None
                except TypeError:
                    numbers = None
        # (decoded JSON has no dict subclasses; a caller's may, and such a chart is left to _row, as ever)
        if numbers is not None and (read is not None or text is not None or set(map(type, entries)) == _DICT):
            if read is None:
                lens = tuple(map(len, entries))
                keys = list(chain.from_iterable(entries))  # (faster than chain(*entries))
            last = long.last  # bodies come in code order: a district's TPS one after another
            if last is not None and (last[1] is keys or last[1] == keys) and last[2] == lens and (last[0] is names or last[0] == names):
                layout = last[3]
            else:
                layout = long.known.get((tuple(names), tuple(keys), lens))
                if layout is None:
                    layout = _party_layout(names, lens, keys, long, shape)
                    if layout is None:
                        return None
                long.last = (names, keys, lens, layout)
            if not long.compiled and not unchecked and not _counts_ok(numbers):
                return None
            totals = shape.no_totals  # among the numbers: put in their columns at the end (_Long.totals)
            long_entries = (layout, numbers)
            checked = True
            chart_parties = len(names)
        else:
            if caleg_read or caleg is not None:
                return None
            kinds = set(map(type, entries))
            columns = list(map(shape.column_of.get, names))
            if None in columns:
                return None
            chart_parties = len(entries)
            if not entries:
                totals = [None] * len(shape.numbers)
            elif kinds <= _INT_NONE:  # party totals alone (the early flat chart)
                if not _counts_ok(entries):
                    return None
                totals = list(map(dict(zip(columns, entries)).get, range(len(shape.numbers))))
            else:
                return None
    else:
        return None
    if not unchecked and not _counts_ok(admin if checked else [*totals, *admin]):
        return None
    images = body.get("images")
    # json stops at the interpreter's recursion limit, which depends on the caller's stack, and _row rejects
    # such a body: a body from text goes to _row if it may be deeper than a real one, that is if it holds a
    # list or dict where a real body holds none and more brackets than a real one (a text of 200 holds fewer).
    if (text is not None and len(text) > _MAX_FAST_BRACKETS and not _shallow(body, chart, administrasi, others, images, caleg_read)
            and _brackets(text) > _MAX_FAST_BRACKETS):
        return None
    extra = ()
    if shape.dapil:
        dapil = body.get("kode_dapil")
        if dapil is not None and not (type(dapil) is str and 2 <= len(dapil) <= 13 and dapil.isascii() and dapil.isdigit()):
            return None  # _row refuses it with the reason
        extra = (dapil, _photo_count(images))
    if shape.parties:
        extra = (*extra, chart_parties)
    psu = body.get("psu")
    ts = body.get("ts")
    status_suara, status_adm = body.get("status_suara"), body.get("status_adm")
    photos = shape.no_photos
    if isinstance(images, list) and images.count(None) != len(images):
        photos = list(photos)
        for i, url in enumerate(images[:shape.photos]):
            if url is not None:
                photos[i] = _photo_time(url)
    row = (code, *totals, *admin, chart is not None, admin.count(None) != len(admin),
           psu if isinstance(psu, str) and psu.strip() else None, ts if isinstance(ts, str) else None,
           status_suara if isinstance(status_suara, bool) else None,
           status_adm if isinstance(status_adm, bool) else None, *photos, *extra)
    # Last, when nothing can fail any more: a body that raised above is read by _row, and adds its votes there.
    if long is not None:
        if long_entries is None:
            long.layout_of_body.append(_NO_LAYOUT)
        else:
            long.layout_of_body.append(long_entries[0])
            if long.compiled and long.scratch_missing:  # nulls: 0 among the numbers, their positions in missing
                offset = len(long.values)
                long.missing.extend([offset + j for j in long.scratch_missing])
            long.values.extend(long_entries[1])
    return row


def parse_tps_bodies(bodies: Mapping[str, bytes | str | dict | None], *,
                     candidates: Mapping[str, str] = PPWP_CANDIDATES, parties: bool = False,
                     fast: bool = True, photos: int = 3, dapil: bool | None = None,
                     _strict: bool = False, _compiled: bool | None = None) -> ParsedTps:
    """Parse raw TPS bodies keyed by TPS code or file name; each ends in ``table`` or ``rejects``.

    ``candidates`` maps the chart's keys to vote columns: Sirekap candidate ids for ppwp and pdpd,
    party numbers for the party ballots (``parties=True``), whose per-candidate votes go to ``votes_long``.
    ``fast=False`` reads every body with the general (slower) code; the result is the same.
    ``photos``: how many photo upload times to keep (``photo_1_time`` ...; 3 for ppwp, DPD forms have 5
    pages). ``dapil`` (default: ``parties``) adds ``dapil`` (``kode_dapil`` as served) and ``photo_count``
    (photo names listed); party ballots also get ``chart_parties`` (party entries in the chart).
    """
    if dapil is None:
        dapil = parties
    if not (type(photos) is int and 0 <= photos <= 20):
        raise ValueError(f"photos must be an int from 0 to 20; got {photos!r}")
    rows, rejects, seen = [], [], set()
    shape = _Shape(candidates, parties, photos, dapil)
    compiled = _party_chart_compiled is not None and (_compiled is None or _compiled)
    long = _Long(len(shape.numbers), compiled) if parties else None
    if long is not None:  # rows of the usual bodies in C too (the compiled reader makes rows with dapil only)
        long.rows = compiled and dapil and _party_row_compiled is not None
    # Counts of the bodies the fast path decodes are checked on whole columns after the loop (a body
    # with one that is not an int in 0..10**9 is rare: then every body is read again, checked one by one).
    defer = fast and not _strict
    columns = _columns(shape)
    # The fast path range-checks a column's last total only: with two chart keys on one column
    # (a many-to-one mapping), every body goes through _row, which checks each.
    fast = fast and len(set(candidates.values())) == len(candidates)
    for key, body in bodies.items():
        source = key if type(key) is str else str(key)
        try:
            code = source if len(source) == 13 and source.isascii() and source.isdigit() else _code(source)
            if code in seen:
                raise BodyError("a second body for the same TPS code")
            try:
                row = _fast_row(code, body, shape, long, defer) if fast else None
            except Exception:  # noqa: BLE001 - e.g. a caller's dict with keys that are not text: _row says what
                row = None
            if row is None:
                body_rows = _Rows() if long is not None else None
                named = _row(code, body, candidates, body_rows, photos, dapil)  # a rejected body leaves no votes behind
                row = tuple(named[column] for column in columns)
                if long is not None:
                    long.add_rows(body_rows)
            rows.append(row)
            seen.add(code)
        except BodyError as err:
            match = TPS_CODE.search(source.replace("\\", "/").rsplit("/", 1)[-1])
            rejects.append({"unit_id": match.group(1) if match else source[:200], "source": source[:500], "reason": str(err)})
        except Exception as err:  # noqa: BLE001 - an unforeseen shape is a reject, never a crash
            rejects.append({"unit_id": source[:200], "source": source[:500], "reason": f"unreadable body ({type(err).__name__})"})
    data = _transpose(rows, shape)
    del rows  # the rows' memory is free for what follows (a fresh page costs more than a reused one)
    names = [*shape.numbers, *ADMINISTRASI_FIELDS]
    columns = [data[name] for name in names] + ([long.values] if long is not None and not long.compiled else [])
    if defer:
        arrays = _checked_counts(columns)
        if arrays is None:
            # A count that is not an int in 0..10**9 (rare): read every body again, checking each count as it comes.
            return parse_tps_bodies(bodies, candidates=candidates, parties=parties, fast=fast, photos=photos, dapil=dapil,
                                    _strict=True, _compiled=_compiled)
    else:  # every count was checked as it came
        import pyarrow as pa

        arrays = [pa.array(values, type=pa.int64()) for values in columns]
    del columns
    if long is not None and long.compiled:
        arrays.append(long.array())
    if long is not None:
        long.values = []  # its numbers are arrays[-1] now: the list's memory is free for what follows
    ints = list(map(_from_arrow, arrays[:len(names)]))
    if long is not None:
        ints[:len(shape.numbers)] = long.totals(arrays[-1], ints[:len(shape.numbers)])
    table = _frame(data, shape, dict(zip(names, ints)))
    rejects_frame = pd.DataFrame(rejects, columns=["unit_id", "source", "reason"])
    counts = {"bodies": len(bodies), "rows": len(table), "rejected": len(rejects_frame)}
    votes_long = None
    if long is not None:
        votes_long = long.frame(data["unit_id"], arrays[-1])
    return ParsedTps(table=table, rejects=rejects_frame, counts=counts, votes_long=votes_long)


def _checked_counts(columns: list[list]) -> list | None:
    """Each column as an int64 arrow array if every value is an int in 0..10**9 or None, else None.

    pyarrow infers the type from every value: int64 (or null, for no value) only when all are ints or
    None; a float, bool, string, list or dict anywhere gives another type or an error, and so does an
    int beyond 64 bits. (Converting to int64 directly would truncate 1.5 to 1.)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for values in columns:
        if values and values[0] is None and values.count(None) == len(values):  # no value (the fast path's party columns)
            arrays.append(pa.nulls(len(values), pa.int64()))
            continue
        array = _plain_ints(values)
        if array is None:
            try:
                array = pa.array(values)
            except Exception:  # noqa: BLE001 - ArrowInvalid, ArrowTypeError, OverflowError: not counts
                return None
        if array is False:
            return None
        if array.type == pa.null():
            array = pa.nulls(len(array), pa.int64())
        elif array.type != pa.int64():
            return None
        else:
            bounds = pc.min_max(array)
            if bounds["min"].is_valid and (bounds["min"].as_py() < 0 or bounds["max"].as_py() > _LIMIT):
                return None
        arrays.append(array)
    return arrays


_NOT_DIGITS = (b"-", b".", b"e", b"E", b"t", b"f", b"n", b'"', b"{")


def _plain_ints(values: list | tuple) -> Any:
    """A column of non-negative ints (the usual one) as an int64 arrow array, False if one is beyond int64,
    None to let pyarrow's inference decide.

    orjson writes ints as digits and anything else with another character (true, false, null, 1.5, 1e300,
    "7", [, {, -) or not at all (an int beyond 64 bits); a text of digits between commas is ints only,
    which ``array`` converts (and refuses beyond int64, where pyarrow would infer uint64). Cheaper than
    pyarrow's inference, which looks at every value twice.
    """
    import pyarrow as pa

    if _fast_dumps is None or not values or values[0] is None:
        return None
    try:
        text = _fast_dumps(values)
    except Exception:  # noqa: BLE001 - orjson.JSONEncodeError: an int beyond 64 bits, or not JSON at all
        return None
    if text.count(b"[") != 1 or any(c in text for c in _NOT_DIGITS):
        return None
    try:
        ints = array.array("q", values)
    except OverflowError:  # 2**63 .. 2**64 - 1: pyarrow infers uint64, not a count
        return False
    except TypeError:  # pragma: no cover - digits and commas are ints; pyarrow decides if not
        return None
    return pa.array(np.frombuffer(ints, dtype=np.int64))


def _columns(shape: _Shape) -> list[str]:
    return ["unit_id", *shape.numbers, *ADMINISTRASI_FIELDS, "has_chart", "has_administrasi", "psu", "ts",
            "status_suara", "status_adm", *(f"photo_{i}_time" for i in range(1, shape.photos + 1)),
            *(("dapil", "photo_count") if shape.dapil else ()), *(("chart_parties",) if shape.parties else ())]


def _transpose(rows: list[tuple], shape: _Shape) -> dict[str, tuple | list]:
    names = _columns(shape)
    return dict(zip(names, zip(*rows))) if rows else {name: [] for name in names}


def _frame(data: dict[str, list], shape: _Shape, ints: Mapping[str, Any]) -> pd.DataFrame:
    """The table from the rows' columns and the count columns (``ints``, Int64 arrays)."""
    index = pd.Index(pd.array(data["unit_id"], dtype="str"), name="unit_id")
    code = index.to_series()
    columns: dict[str, Any] = {  # the codes' own string arrays (with pandas 3 no Python str per row and level)
        "province": code.str[:2].array, "regency": code.str[:4].array,
        "district": code.str[:6].array, "village": code.str[:10].array,
        "registered": ints["pemilih_dpt_j"] + ints["pengguna_dptb_j"], "voters": ints["pengguna_total_j"],
        "valid": ints["suara_sah"], "invalid": ints["suara_tidak_sah"], "ballots": ints["suara_total"],
    }
    for number in shape.numbers:
        columns[number] = ints[number]
    columns["dpt"] = ints["pemilih_dpt_j"]
    columns["dpt_voters"] = ints["pengguna_dpt_j"]
    columns["dptb_voters"] = ints["pengguna_dptb_j"]
    columns["dpk_voters"] = ints["pengguna_non_dpt_j"]
    for name in ADMINISTRASI_FIELDS:
        columns[name] = ints[name]
    columns["has_chart"] = np.array(data["has_chart"], dtype=bool)
    columns["has_administrasi"] = np.array(data["has_administrasi"], dtype=bool)
    columns["psu"] = pd.array(np.array(data["psu"], dtype=object), dtype="str")
    # Sirekap's ts is a WIB (UTC+7) publication time written without a zone.
    columns["ts"] = _wib_text(data["ts"], "%Y-%m-%d %H:%M:%S")
    for name in ("status_suara", "status_adm"):
        columns[name] = pd.array(np.array(data[name], dtype=object), dtype="boolean")
    for i in range(1, shape.photos + 1):
        columns[f"photo_{i}_time"] = _wib_text(data[f"photo_{i}_time"], "%Y%m%d %H%M%S")
    if shape.dapil:
        columns["dapil"] = pd.array(np.array(data["dapil"], dtype=object), dtype="str")
        columns["photo_count"] = pd.array(np.array(data["photo_count"], dtype=object), dtype="Int64")
    if shape.parties:
        columns["chart_parties"] = pd.array(np.array(data["chart_parties"], dtype=object), dtype="Int64")
    return pd.DataFrame(columns, index=index)


def _wib_text(values: list | tuple, format: str) -> Any:
    """A column of WIB times from naive text (None: missing). A column of nothing but None (no photo names
    in a snapshot's bodies, say) is converted for one value and repeated: the same column, made once."""
    if values and values[0] is None and values.count(None) == len(values):
        one = _wib(pd.to_datetime(pd.Series([None], dtype=object), errors="coerce", format=format))
        if isinstance(one, np.ndarray):
            return np.repeat(one, len(values))
    return _wib(pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", format=format))


def _wib(times: pd.Series) -> Any:
    """Naive times as WIB (UTC+7)."""
    return _aware(times.dt.tz_localize("Asia/Jakarta"))


def _aware(times: pd.Series) -> Any:
    """A column of tz-aware times: the array itself (its ``to_numpy`` would be one Timestamp object per row)."""
    if not times.notna().any():
        return times.to_numpy()  # as ever: a column without any time is a naive NaT column
    return times.array


def to_election(parsed: ParsedTps, *, name: str = "", provenance: Mapping[str, Any] | None = None,
                candidates: Mapping[str, str] = PPWP_CANDIDATES) -> Election:
    """The parsed rows as an Election with levels province / regency / district / village."""
    prov = {"source": "Sirekap hhcw TPS bodies", **dict(provenance or {}), **{f"bodies_{k}": v for k, v in parsed.counts.items()}}
    return Election.from_frame(parsed.table, levels=LEVELS, candidates=tuple(dict.fromkeys(candidates.values())),
                               name=name or "Sirekap Pemilu 2024, presiden", provenance=prov)


def _read_bodies(path: Path) -> dict[str, bytes]:
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()
                    if not info.is_dir() and info.filename.endswith(".json")}
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*.json"))}
    raise FileNotFoundError(f"{path} is neither a folder nor a zip of TPS bodies")


def read_tps_bodies(path: str | Path, *, candidates: Mapping[str, str] = PPWP_CANDIDATES) -> tuple[Election, pd.DataFrame]:
    """A folder (searched recursively for ``*.json``) or a zip of TPS bodies -> (Election, rejects).

    A snapshot folder of ``forensik scrape`` (it has a ``manifest.jsonl``) is read by :func:`read_snapshot`.
    """
    path = Path(path)
    if path.is_dir() and store.is_snapshot(path):
        built = read_snapshot(path)
        return built.election, built.rejects
    if path.is_dir() and (path / store.BLOBS).is_dir():
        names = sorted(p.name for p in path.iterdir() if store.is_snapshot(p))
        raise FileNotFoundError(f"{path} is a snapshot store; pass one snapshot folder, e.g. {path / (names[-1] if names else 'NAME')}")
    bodies = _read_bodies(path)
    digest = hashlib.sha256()
    for key in sorted(bodies):
        digest.update(key.encode())
        digest.update(hashlib.sha256(bodies[key]).digest())
    parsed = parse_tps_bodies(bodies, candidates=candidates)
    latest = parsed.table["ts"].max() if len(parsed.table) else None
    election = to_election(parsed, candidates=candidates, provenance={
        "source": f"Sirekap hhcw TPS bodies from {path.name}", "input_sha256": digest.hexdigest(),
        "snapshot": None if latest is None or pd.isna(latest) else str(latest),
    })
    return election, parsed.rejects


_API_ROOT = re.compile(r"(?:^|/)((?:pemilu|wilayah)/.*)$")


def _api_path(name: str) -> str | None:
    """The Sirekap path in a file name of a dump (``dump-main/pemilu/hhcw/pdpr/...json`` -> ``pemilu/hhcw/pdpr/...``)."""
    match = _API_ROOT.search(name.replace("\\", "/"))
    return match.group(1) if match else None


def _list_columns(ballot: str, files: Mapping[str, bytes]) -> dict[str, str]:
    """Chart key -> vote column from the candidate or party lists among a dump's files (as ``contestant_columns``)."""
    mapping: dict[str, str] = {}
    wanted = endpoints.contestant_paths(ballot, [p.rsplit("/", 1)[-1][:-5] for p in files if p.startswith("pemilu/caleg/dpd/")])
    for path in wanted:
        try:
            data = _json_loads_utf8(files[path]) if path in files else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        for key, value in (data.items() if isinstance(data, dict) else ()):
            number = value.get("nomor_urut") if isinstance(value, dict) else None
            if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 1000:
                mapping[str(key)] = f"{number:02d}"
    if mapping:
        if ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS:
            mapping = {str(int(col)): col for col in mapping.values()} | {k: v for k, v in mapping.items() if k.isdigit()}
        return mapping
    if ballot == "ppwp":
        return dict(PPWP_CANDIDATES)
    if ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS:
        return dict(PARTY_COLUMNS)
    return {}


def read_raw(path: str | Path, *, ballot: str = "ppwp") -> BuiltSnapshot:
    """A folder or zip of Sirekap bodies as public dumps come (laid out as Sirekap paths, under any top folder)
    -> the TPS bodies of ``ballot`` as an Election, as :func:`read_snapshot` builds a scrape's.

    TPS bodies are the files at ``pemilu/hhcw/{ballot}/{p}/{k}/{c}/{d}/{tps}.json``; a folder without any
    Sirekap TPS path (bodies named by TPS code alone) is read whole as bodies of ``ballot``. Candidate and
    party lists in the dump name the vote columns (2024 defaults otherwise; DPD: the candidate ids), and its
    ``hhcd`` dapil aggregates are compared with the sum of their TPS. Other files are counted, not read.
    """
    ballot = endpoints.check_ballot(ballot)
    path = Path(path)
    if path.is_dir() and store.is_snapshot(path):
        return read_snapshot(path, ballot=ballot)
    if path.is_dir() and (path / store.BLOBS).is_dir():
        names = sorted(p.name for p in path.iterdir() if store.is_snapshot(p))
        raise FileNotFoundError(f"{path} is a snapshot store; pass one snapshot folder, e.g. {path / (names[-1] if names else 'NAME')}")
    with _collector_paused(), _small_pages():
        return _read_raw(path, ballot)


def _read_raw(path: Path, ballot: str) -> BuiltSnapshot:
    files = _read_bodies(path)
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode())
        digest.update(hashlib.sha256(files[key]).digest())
    by_api: dict[str, bytes] = {}
    for name, data in files.items():
        api = _api_path(name)
        if api is not None:
            by_api.setdefault(api, data)
    tps_body = endpoints.tps_body_pattern(ballot).match
    any_tps = re.compile(r"^pemilu/hhcw/[a-z]+/(?:[0-9]+/){4}[0-9]{13}\.json$").match
    if any(map(any_tps, by_api)):  # a dump laid out as Sirekap paths: this ballot's TPS bodies only
        bodies = {api: data for api, data in by_api.items() if tps_body(api)}
        layout = "Sirekap paths"
        if not bodies:
            found = sorted({api.split("/")[2] for api in by_api if any_tps(api)})
            raise ValueError(f"{path} holds no TPS body of {ballot} (pemilu/hhcw/{ballot}/.../{{tps}}.json); it has TPS bodies of "
                             f"{', '.join(found)}: pass --ballot")
    else:  # bodies named by their TPS code
        bodies = dict(files)  # a name without a TPS code is a reject with its reason, as read_tps_bodies has it
        layout = "files named by TPS code"
    columns = _list_columns(ballot, by_api)
    parties = ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS
    if not columns:  # DPD without candidate lists: the candidate ids in the charts become the vote columns
        for raw in bodies.values():
            try:
                chart = _json_loads_utf8(raw).get("chart")
            except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
                continue
            if isinstance(chart, dict):
                columns.update({k: k for k in chart if k != "null" and k.isascii() and k.isdigit()})
        columns = dict(sorted(columns.items()))
    photos, with_dapil = (3, False) if ballot == "ppwp" else (5, True)
    parsed = parse_tps_bodies(bodies, candidates=columns, parties=parties, photos=photos, dapil=with_dapil)
    table = parsed.table
    counts = {"files": len(files), "tps_bodies": len(bodies), "rows": len(table), "rejected": len(parsed.rejects),
              "files_not_read": len(files) - len(bodies)}
    hhcd = {api: data for api, data in by_api.items() if endpoints.classify(api)[:2] == ("hhcd", ballot)} if parties else {}
    if hhcd:
        counts["hhcd_files"] = len(hhcd)
    latest = table["ts"].max() if len(table) else None
    provenance = {"source": f"Sirekap hhcw TPS bodies ({ballot}) from {path.name} ({layout})", "ballot": ballot,
                  "input_sha256": digest.hexdigest(), "snapshot": None if latest is None or pd.isna(latest) else str(latest),
                  **{f"count_{k}": v for k, v in counts.items()}}
    election = Election.from_frame(table, levels=LEVELS, candidates=tuple(dict.fromkeys(columns.values())),
                                   name=f"Sirekap Pemilu 2024, {BALLOT_NAMES[ballot]} ({path.name})", provenance=provenance)
    return BuiltSnapshot(election=election, rejects=parsed.rejects, votes_long=parsed.votes_long, counts=counts,
                         hhcd=hhcd or None)


# --------------------------------------------------------------------------- snapshots of `forensik scrape`

@dataclass(frozen=True)
class BuiltSnapshot:
    """A snapshot as an Election, its rejects, and (party ballots) the long per-candidate votes.

    Party ballots also give ``candidate_lists``: one row per stored dapil or candidate list with its
    outcome and reason (``caleg.read_candidate_lists``); the long votes carry the names they give.
    """

    election: Election
    rejects: pd.DataFrame
    votes_long: pd.DataFrame | None
    counts: Mapping[str, int] = field(default_factory=dict)
    candidate_lists: pd.DataFrame | None = None
    #: Party ballots with ``hhcd`` dapil aggregates: per dapil, party and candidate the sum of the TPS beside
    #: Sirekap's dapil total (``dapil.compare_with_tps``), and the aggregate entries that could not be read.
    dapil_check: pd.DataFrame | None = None
    dapil_rejects: pd.DataFrame | None = None
    #: The stored ``hhcd`` bodies of the ballot (API path -> bytes), for :func:`with_dapil_check`.
    hhcd: Mapping[str, bytes] | None = field(default=None, repr=False)


#: Reads leave the files' access times alone: with ``relatime``, the first read after a scrape would write
#: every file's inode. O_NOATIME is allowed to the files' owner only; after one refusal (EPERM) files are
#: opened plainly. (A list: the flags in use, changed in place.)
_OPEN_FLAGS = [os.O_RDONLY | getattr(os, "O_NOATIME", 0)]
#: The manifest's size is a hint for one read up to this; above it (no Sirekap file is near 64 MB) a file
#: is read in blocks, so that an absurd size (2^63, 10^12) neither raises nor becomes an allocation.
_SIZE_HINT_LIMIT = 1 << 26


def _open(path: str) -> int:
    flags = _OPEN_FLAGS[0]
    try:
        return os.open(path, flags)
    except PermissionError as err:
        if err.errno != errno.EPERM or flags == os.O_RDONLY:
            raise
        fd = os.open(path, os.O_RDONLY)  # a file of another owner: no O_NOATIME for it, nor for the next ones
        _OPEN_FLAGS[0] = os.O_RDONLY
        return fd


def _read_rest(fd: int, chunks: list[bytes]) -> bytes:
    while block := os.read(fd, 1 << 16):
        chunks.append(block)
    return b"".join(chunks)


def _read(root: Path | str, record: Mapping[str, Any]) -> bytes:
    return _read_file(root, record["file"], record.get("size"))


def _read_file(root: Path | str, file: Any, size: Any) -> bytes:
    # Raw os calls with the size the manifest knows: pathlib and buffered files cost more than the read of 1 KB.
    # ``root`` may be a folder name ending in the separator (read_snapshot's loop): then a plain concatenation.
    if type(root) is str and root.endswith(os.sep) and type(file) is str and not file.startswith(os.sep):
        path = root + file
    else:
        path = os.path.join(root, file)
    fd = _open(path)
    try:
        if isinstance(size, int) and 0 <= size <= _SIZE_HINT_LIMIT:
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return data
            return _read_rest(fd, [data])  # the file grew: read the rest
        return _read_rest(fd, [])
    finally:
        os.close(fd)


_DICT_TYPE, _SCALAR_TYPES = frozenset((dict,)), frozenset((str, int, float, bool, type(None)))


def _holds_float(value: Any) -> bool:
    """Whether a decoded JSON value holds a float anywhere (Sirekap's lists and tables hold none).

    Level by level, each level's types taken at once: a wilayah list is a list of flat dicts (which the
    first test takes whole: the lists of TPS of a desa, a few thousand per snapshot, are read for the names).
    """
    if type(value) is list and set(map(type, value)) <= _DICT_TYPE:
        kinds = set(map(type, chain.from_iterable(map(dict.values, value))))
        if kinds <= _SCALAR_TYPES:
            return float in kinds
    level = [value]
    while level:
        kinds = set(map(type, level))
        if float in kinds:
            return True
        if dict in kinds:
            dicts = [item for item in level if type(item) is dict] if len(kinds) > 1 else level
            nested = list(chain.from_iterable(map(dict.values, dicts)))
        else:
            nested = []
        if list in kinds:
            nested.extend(chain.from_iterable(item for item in level if type(item) is list))
        level = nested
    return False


def _json_file(root: Path | str, record: Mapping[str, Any]) -> Any:
    try:
        data = _read(root, record)
    except (OSError, ValueError, TypeError):
        return None
    try:
        value = _fast_loads(data)
    except Exception:  # noqa: BLE001 - json decides what orjson refuses (NaN, lone surrogates, ...)
        pass
    else:
        if not _holds_float(value):  # orjson reads integers beyond 64 bits as floats; json keeps them
            return value
    try:
        return json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None


def contestant_columns(snapshot: str | Path, ballot: str, records: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """Chart key -> vote column for a ballot, from the candidate or party list stored in the snapshot.

    Columns are two-digit ballot numbers (``nomor_urut``): 01-03 for president, party numbers for party
    ballots, the candidate's number within the province for DPD. Without a stored list the 2024
    defaults are used (president, parties 1-24); DPD needs its lists.
    """
    root = Path(snapshot)
    records = store.read_manifest(root) if records is None else records
    mapping: dict[str, str] = {}
    for path in endpoints.contestant_paths(ballot, [p.rsplit("/", 1)[-1][:-5] for p in records if p.startswith("pemilu/caleg/dpd/")]):
        record = records.get(path)
        data = _json_file(root, record) if record and record.get("outcome") == "ok" else None
        # Lists keyed by id only: a JSON array carries no id to match the charts' keys with.
        for key, value in (data.items() if isinstance(data, dict) else ()):
            number = value.get("nomor_urut") if isinstance(value, dict) else None
            if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 1000:
                mapping[str(key)] = f"{number:02d}"
    if mapping:
        if ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS:
            # Charts key parties by their number; the list's keys may be ids: key by the number too.
            mapping = {str(int(col)): col for col in mapping.values()} | {k: v for k, v in mapping.items() if k.isdigit()}
        return mapping
    if ballot == "ppwp":
        return dict(PPWP_CANDIDATES)
    if ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS:
        return dict(PARTY_COLUMNS)
    return {}  # DPD without its lists: read_snapshot names the columns by candidate id


def read_snapshot(path: str | Path, *, ballot: str | None = None) -> BuiltSnapshot:
    """A ``forensik scrape`` snapshot (``DIR/NAME``) -> every TPS of the walked tree as an Election.

    TPS come from the ``wilayah`` lists (and the desa tables); a TPS whose body was not published,
    failed or was rejected is a row of ``<NA>`` with its ``fetch_status``. With TPS bodies the numbers
    are the bodies'; a snapshot scraped at ``--level desa`` gives the desa tables' per-TPS votes
    (no DPT, no administration page). Provenance records the snapshot, fetch times and manifest hash.
    """
    with _collector_paused(), _small_pages():
        return _read_snapshot(path, ballot)


def _read_snapshot(path: str | Path, ballot: str | None) -> BuiltSnapshot:
    root = Path(path)
    if not store.is_snapshot(root):
        raise FileNotFoundError(f"{root} is not a snapshot of `forensik scrape` (no {store.MANIFEST})")
    meta = store.read_meta(root)
    records = store.read_manifest(root)
    ballot = endpoints.check_ballot(ballot or meta.get("ballot") or _guess_ballot(records))
    columns = contestant_columns(root, ballot, records)
    parties = ballot in endpoints.LEGISLATIVE_PARTY_BALLOTS
    input_sha256 = _records_sha256(records)

    names: dict[str, str] = {}
    listed: set[str] = set()
    tps_records: dict[str, Mapping[str, Any]] = {}
    desa_tables: dict[str, Mapping[str, Any]] = {}
    base = os.path.join(os.fspath(root), "")
    tps_body = endpoints.tps_body_pattern(ballot).match  # the paths classify calls TPS bodies of this ballot
    others = []
    for api_path, record in records.items():
        match = tps_body(api_path)
        if match:
            tps_records[match["code"]] = record
        else:
            others.append((api_path, record))
    from_bodies = bool(tps_records) or meta.get("level") == "tps"
    hhcd_records: dict[str, Mapping[str, Any]] = {}
    for api_path, record in others:
        if from_bodies and not api_path.startswith(("wilayah/", "pemilu/hhcd/")):
            continue  # with TPS bodies only the wilayah lists (and dapil aggregates) are read besides them
        kind, record_ballot, code = endpoints.classify(api_path)
        if record.get("outcome") != "ok":
            continue
        elif kind == "wilayah":
            for child, name in endpoints.children(code, _json_file(base, record)):
                if isinstance(name, str):
                    names[child] = name
                if len(child) == 13:
                    listed.add(child)
        elif kind == "hhcw" and record_ballot == ballot and code and len(code) == 10:
            desa_tables[code] = record
        elif kind == "hhcd" and record_ballot == ballot:
            hhcd_records[api_path] = record

    bodies: dict[str, Any] = {}
    status: dict[str, str] = {}
    fetched_at: dict[str, str] = {}
    stored: dict[str, tuple[Any, Any]] = {}  # (file, size) of TPS bodies on disk, read when the parser comes to them
    if from_bodies:
        for code, record in tps_records.items():
            fetched_at[code] = record.get("fetched_at")
            if record.get("outcome") == "ok":
                stored[code] = (record.get("file"), record.get("size"))
                status[code] = "ok"  # "failed" if it cannot be read
            else:
                status[code] = record.get("outcome", "failed")
    else:
        for desa, record in desa_tables.items():
            data = _json_file(root, record)
            table = data.get("table") if isinstance(data, dict) else None
            for code, entry in (table or {}).items() if isinstance(table, dict) else ():
                if not (isinstance(code, str) and endpoints.is_child(desa, code)):
                    continue
                listed.add(code)
                entry = entry if isinstance(entry, dict) else {}
                chart = {k: v for k, v in entry.items() if k in columns}
                psu = entry.get("psu")
                bodies[code] = {"chart": chart or None, "administrasi": None,
                                "psu": None if psu in (None, "Reguler") else psu, "ts": data.get("ts")}
                status[code] = "desa_table"
                fetched_at[code] = record.get("fetched_at")

    # The candidate lists are read before the manifest's records go (they are joined after the parse).
    lists = caleg.read_candidate_lists(root, records, ballot) if parties else None
    party_names = caleg.party_names(root, records) if parties else {}
    # What is left of the manifest's records is in these dicts: the records go, and their memory serves the parse.
    del records, tps_records, others
    blank = {"chart": None, "administrasi": None}
    on_disk = _OnDisk(base, stored, status, blank)
    if not columns:
        # DPD without candidate lists: the candidate ids found in the charts become the vote columns.
        for raw in chain(map(on_disk.__getitem__, stored), bodies.values()):
            try:
                chart = json.loads(raw).get("chart") if isinstance(raw, bytes) else raw.get("chart")
            except (ValueError, AttributeError):
                continue
            if isinstance(chart, dict):
                columns.update({k: k for k in chart if k != "null" and k.isdigit()})
        columns = dict(sorted(columns.items()))
    everything = sorted(listed | set(bodies) | set(status))
    inputs = on_disk.mapping(everything, bodies)
    photos, with_dapil = (3, False) if ballot == "ppwp" else (5, True)  # DPD forms have five pages
    parsed = parse_tps_bodies(inputs, candidates=columns, parties=parties, photos=photos, dapil=with_dapil)
    rejected = set(parsed.rejects["unit_id"])
    # A rejected body's TPS still appears, as a row of <NA>; the reason is in the rejects.
    if rejected:
        again = parse_tps_bodies({code: blank for code in sorted(rejected) if code in inputs}, candidates=columns, parties=parties,
                                 photos=photos, dapil=with_dapil)
        table = pd.concat([parsed.table, again.table]).sort_index()
    else:
        table = parsed.table
    for code in rejected:
        status[code] = "rejected"
    codes = table.index.tolist()
    table["fetch_status"] = pd.array([status.get(code, "not_fetched") for code in codes], dtype="str")
    table["fetched_at"] = _aware(pd.to_datetime(pd.Series([fetched_at.get(code) for code in codes], index=table.index, dtype=object),
                                                errors="coerce", utc=True, format="ISO8601"))
    for level in LEVELS:  # a region's name looked up once, not once per TPS
        codes_of, regions = pd.factorize(table[level], use_na_sentinel=False)
        table[f"{level}_name"] = pd.array(np.array([names.get(code) for code in regions], dtype=object), dtype="str").take(codes_of)
    times = table["fetched_at"].dropna()
    counts = {"tps": len(table), **{f"fetch_{k}": int(v) for k, v in table["fetch_status"].value_counts().items()},
              "rejected": len(parsed.rejects)}
    votes_long = parsed.votes_long
    if lists is not None and votes_long is not None:  # names, numbers and dapils of the candidates
        votes_long, named = caleg.attach_candidates(votes_long, lists.candidates, party_names)
        counts.update(lists.counts)
        counts.update(named)
    elif lists is not None:
        lists = None  # no per-candidate votes to name: the build reports no lists, as before
    stored_hhcd = {}
    if hhcd_records and parties:  # Sirekap's per-dapil totals, compared with the dapil's TPS by with_dapil_check
        for api_path, record in hhcd_records.items():
            try:
                stored_hhcd[api_path] = _read(root, record)
            except (OSError, ValueError, TypeError, KeyError):
                stored_hhcd[api_path] = b""  # a reject of read_hhcd, with its reason
        counts["hhcd_files"] = len(hhcd_records)
    provenance = {
        "source": f"Sirekap hhcw {'TPS bodies' if from_bodies else 'desa tables'} ({ballot}), snapshot {root.name}",
        "snapshot": root.name, "snapshot_path": str(root), "ballot": ballot, "level": "tps" if from_bodies else "desa",
        "region": meta.get("region"), "base_url": meta.get("base_url"), "scrape_started_at": meta.get("started_at"),
        "scrape_finished_at": meta.get("finished_at"), "scrape_complete": meta.get("complete"),
        "first_fetched_at": str(times.min()) if len(times) else None, "last_fetched_at": str(times.max()) if len(times) else None,
        "manifest_sha256": store.manifest_sha256(root), "input_sha256": input_sha256,
        **{f"count_{k}": v for k, v in counts.items()},
    }
    election = Election.from_frame(table, levels=LEVELS, candidates=tuple(dict.fromkeys(columns.values())),
                                   name=f"Sirekap Pemilu 2024, {BALLOT_NAMES[ballot]} ({root.name})", provenance=provenance)
    return BuiltSnapshot(election=election, rejects=parsed.rejects, votes_long=votes_long, counts=counts,
                         candidate_lists=None if lists is None else lists.lists, hhcd=stored_hhcd or None)


def with_dapil_check(built: BuiltSnapshot) -> BuiltSnapshot:
    """The build with ``dapil_check`` and ``dapil_rejects`` filled from its ``hhcd`` aggregates (unchanged without any).

    Kept apart from the build itself (``forensik build`` runs it after): the comparison is a pass over the
    per-candidate votes of its own, which the build's TPS rate does not include.
    """
    if not built.hhcd:
        return built
    election = built.election
    ballot = election.provenance.get("ballot") or "pdpr"
    totals, rejects = dapil_totals.read_hhcd(built.hhcd, ballot)
    check = dapil_totals.compare_with_tps(election.table, built.votes_long, totals, list(election.candidates))
    return replace(built, dapil_check=check, dapil_rejects=rejects,
                   counts={**built.counts, "hhcd_entries_rejected": len(rejects)})


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused, if it runs, for a snapshot build.

    A build makes some 30 short-lived containers per TPS (decoded bodies, manifest records, rows), none in
    a reference cycle: reference counting frees each. Left running, the collector passes over them again
    and again (about 110 times for 20,000 DPR RI bodies), and now and then over the caller's whole heap
    (60-90 ms in a small process). They are gone when the build returns (it leaves a few data frames), so
    no collection is put off until later: it is saved. Other threads' garbage waits for the build.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


try:  # numpy's switch for madvise(MADV_HUGEPAGE) on its new arrays of 4 MB and more (NUMPY_MADVISE_HUGEPAGE)
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:  # pragma: no cover - numpy 1.x
    try:
        from numpy.core.multiarray import _set_madvise_hugepage
    except ImportError:
        _set_madvise_hugepage = None
_PAGES_LOCK = threading.Lock()
_pages_state = {"builds": 0, "before": None}  # builds running, and numpy's setting before the first


@contextmanager
def _small_pages():
    """numpy's new arrays on ordinary pages, not transparent huge pages, while a snapshot build runs.

    A build's large arrays (long votes and their codes, ~100 MB for 20,000 DPR RI bodies) live for one
    step each, so nothing gains from huge pages, and each is new memory the kernel must zero on first
    touch, 2 MB at a time. On this project's 2-core VM that doubled the build's system time (0.39 s
    against 0.19 s, mean of 6 fresh processes each, 20,504 bodies of 18 parties x 7 candidates).
    The setting is numpy's and process-wide: other threads' new arrays get ordinary pages too while a
    build runs. Builds in several threads share it: the first saves numpy's setting, the last restores it.
    """
    if _set_madvise_hugepage is None:
        yield
        return
    with _PAGES_LOCK:
        if _pages_state["builds"] == 0:
            _pages_state["before"] = _set_madvise_hugepage(False)
        _pages_state["builds"] += 1
    try:
        yield
    finally:
        with _PAGES_LOCK:
            _pages_state["builds"] -= 1
            if _pages_state["builds"] == 0:
                _set_madvise_hugepage(_pages_state["before"])


class _OnDisk:
    """TPS bodies of a snapshot, read from disk as the parser comes to them: never all in memory at once.

    A body that cannot be read is a blank body, and its TPS's status becomes ``failed``.
    """

    def __init__(self, base: str, files: Mapping[str, tuple[Any, Any]], status: dict[str, str], blank: Mapping[str, Any]):
        self.base, self.files, self.status, self.blank = base, files, status, blank  # files: code -> (file, size)

    def __getitem__(self, code: str) -> Any:
        # _read_file, with its usual case (a relative file name and a size to read at once) written out: once per body.
        file, size = self.files[code]
        try:
            if type(file) is str and type(size) is int and 0 <= size <= _SIZE_HINT_LIMIT and file[:1] not in ("", os.sep):
                fd = _open(self.base + file)
                try:
                    body = os.read(fd, size + 1)
                    if len(body) > size:  # the file grew: read the rest
                        body = _read_rest(fd, [body])
                finally:
                    os.close(fd)
            else:
                body = _read_file(self.base, file, size)
        except (OSError, ValueError, TypeError):  # TypeError: a manifest line without a usable file name
            self.status[code] = "failed"
            return self.blank
        self.status[code] = "ok"
        return body

    def mapping(self, codes: list[str], bodies: Mapping[str, Any]) -> "_Bodies":
        return _Bodies(codes, self, bodies)


class _Bodies(abc.Mapping):
    """code -> body for the parser: stored bodies read on access, others from ``bodies``, else blank."""

    def __init__(self, codes: list[str], on_disk: _OnDisk, bodies: Mapping[str, Any]):
        self.codes, self.on_disk, self.bodies = codes, on_disk, bodies
        self.known = set(codes)

    def __contains__(self, code: object) -> bool:  # without reading the body
        return code in self.known

    def __getitem__(self, code: str) -> Any:
        if code not in self.known:
            raise KeyError(code)
        if code in self.on_disk.files:
            return self.on_disk[code]
        return self.bodies.get(code, self.on_disk.blank)

    def __iter__(self):
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def items(self):  # what the parser iterates: without a view's lookup per body
        stored, read, bodies, blank = self.on_disk.files, self.on_disk.__getitem__, self.bodies, self.on_disk.blank
        for code in self.codes:
            yield code, read(code) if code in stored else bodies.get(code, blank)


def _records_sha256(records: Mapping[str, Mapping[str, Any]]) -> str:
    """A SHA-256 over (path, body SHA-256) of every stored body: equal for equal snapshots."""
    text = "".join(f"{api_path}\0{records[api_path].get('sha256')!s}\n" for api_path in sorted(records)
                   if records[api_path].get("outcome") == "ok")
    return hashlib.sha256(text.encode()).hexdigest()


def _guess_ballot(records: Mapping[str, Any]) -> str:
    for api_path in records:
        kind, ballot, _ = endpoints.classify(api_path)
        if kind in ("tps", "hhcw") and ballot in endpoints.BALLOTS:
            return ballot
    raise ValueError("cannot tell the ballot of this snapshot; pass --ballot")
