"""Misreadings learned from KPU's own corrections: early Sirekap readings against the March 2024 table.

KPU corrected many OCR readings between February and March 2024. An early reading of a TPS (the
16 Feb Jakarta bodies, the 18-19 Feb list of TPS whose candidates did not add up) set beside the
same TPS in the table displayed on 17-20 March is a labelled pair: where a box changed, the early
number is what OCR read and the March number what KPU settled on. ``pair_readings`` pairs them by
TPS code and classifies each pair (unchanged, one box changed, several boxes changed) and each
changed box by the edit that turns the March number into the early one (``classify_edit``).

``learn_model`` estimates the finder's edit model (prior per edit kind, digit-confusion weights)
from the **training** split only, with add-one (Laplace) smoothing; the split is by a hash of the
kabupaten/kota code (``split_of``), so neighbouring TPS of one kabupaten never sit on both sides.
``evaluate_finder`` measures ``consistency.find_misreadings`` on the **held-out** split: the share
of corrected TPS whose early form broke a rule that the finder lists, and the share where one box
changed and the finder proposes the March number for that box, with Wilson 95 % intervals.

Caveat, stated wherever the figures are: the March reading is itself sometimes wrong (a form that
still breaks a rule in March, a box read as 0 in March). Pairs whose March form breaks a rule on the
compared boxes are counted but kept out of the exact-repair denominator ("label not trusted").
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from importlib.resources import files
from itertools import combinations
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .consistency import ALL_EDITS, EDITS, EXTRA_EDITS, POSITIONS, _position
from .display import frame_html

#: Boxes the March table publishes and an early reading may carry (Election column names).
BOXES = ("01", "02", "03", "valid", "invalid", "ballots", "voters", "dpt", "dptb_voters", "dpk_voters")
#: Edit kinds, from the March number (as written) to the early reading (as read), tried in this order.
EDIT_KINDS = ("digit substituted", "digit inserted", "digit dropped", "digits swapped", "two digits inserted",
              "two digits dropped", "box from another box", "read as zero", "March reading zero", "two edits", "other")
#: The kinds one OCR edit of one number produces (what ``find_misreadings`` searches by default).
ONE_EDIT = EDITS
#: Pair status.
STATUSES = ("unchanged", "one box changed", "several boxes changed", "nothing to compare")
#: Salt of the split hash; changing it changes which kabupaten are held out.
SPLIT_SALT = "forensik issue 21: corrections split"
#: Share of kabupaten/kota held out.
HELD_OUT_SHARE = 1 / 3
#: The shipped learned model (counts, not data).
MODEL_FILE = "misreading_model.json"


# ------------------------------------------------------------------------------------ edits
@dataclass(frozen=True)
class Edit:
    """What turned the written (March) number into the read (early) one."""

    kind: str
    detail: str = ""
    written: str = ""  # substitution: the written digit; insertion: ""; two digits inserted: ""
    read: str = ""     # substitution: the digit read; insertion: the digit(s) inserted
    other_box: str = ""  # "box from another box": which box the reading came from
    position: str = ""   # substituted / inserted / dropped digit: "start", "inside" or "end" of the number


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def _damerau(a: str, b: str) -> int:
    """Optimal-string-alignment distance (insert, delete, substitute, swap adjacent)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _neighbours(a: str) -> set[str]:
    """Numbers one edit (insert, drop, substitute, swap adjacent) from ``a``, written without leading zeros."""
    out = set()
    for i in range(len(a) + 1):
        for d in "0123456789":
            out.add(a[:i] + d + a[i:])
    for i in range(len(a)):
        out.add(a[:i] + a[i + 1:])
        for d in "0123456789":
            out.add(a[:i] + d + a[i + 1:])
    for i in range(len(a) - 1):
        out.add(a[:i] + a[i + 1] + a[i] + a[i + 2:])
    return {x for x in out if x and x != a and (x == "0" or x[0] != "0")}


def _two_edits(a: str, b: str) -> bool:
    """Is ``b`` two one-digit edits from ``a`` (through a number in between), and not one?"""
    return _damerau(a, b) > 1 and any(_damerau(mid, b) == 1 for mid in _neighbours(a))


def classify_edit(read: int, written: int, others: Mapping[str, int] | None = None) -> Edit:
    """The edit that turns ``written`` (the March number) into ``read`` (the early reading).

    One OCR edit first (substituted, inserted, dropped, two adjacent digits swapped), then a box
    read from another box (``read`` equals another box of the same form, ``others``: box -> value,
    zeros ignored), a box read as 0, a March reading of 0, two digits inserted or dropped, any two
    edits, other. ``read == written`` is "unchanged".
    """
    a, b = str(int(written)), str(int(read))
    if a == b:
        return Edit("unchanged")
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            i = diff[0]
            return Edit("digit substituted", f"{a[i]} read as {b[i]}", a[i], b[i], position=_position(i, len(a)))
        if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
            return Edit("digits swapped", f"{a[diff[0]]}{a[diff[1]]} read as {b[diff[0]]}{b[diff[1]]}")
    if len(b) == len(a) + 1:
        for i in range(len(b)):
            if b[:i] + b[i + 1:] == a:
                where = "at the start" if i == 0 else "at the end" if i == len(a) else "inside"
                return Edit("digit inserted", f"{b[i]} inserted {where}", "", b[i], position=_position(i, len(b)))
    if len(b) == len(a) - 1:
        for i in range(len(a)):
            if a[:i] + a[i + 1:] == b:
                where = "from the start" if i == 0 else "from the end" if i == len(b) else "inside"
                return Edit("digit dropped", f"{a[i]} dropped {where}", a[i], "", position=_position(i, len(a)))
    for box, value in (others or {}).items():
        if value is not None and not pd.isna(value) and int(value) != 0 and int(value) == int(read):
            return Edit("box from another box", f"read from {box} ({int(value)})", other_box=box)
    if int(read) == 0:
        return Edit("read as zero", f"{a} read as 0")
    if int(written) == 0:
        return Edit("March reading zero", f"{b} in February, 0 in March")
    if len(b) == len(a) + 2 and _subsequence(a, b):
        extra = next("".join(b[k] for k in range(len(b)) if k not in (i, j))
                     for i, j in combinations(range(len(b)), 2) if b[:i] + b[i + 1:j] + b[j + 1:] == a)
        return Edit("two digits inserted", f"{a} read as {b}", "", extra)
    if len(a) == len(b) + 2 and _subsequence(b, a):
        return Edit("two digits dropped", f"{a} read as {b}")
    if _two_edits(a, b):
        return Edit("two edits", f"{a} read as {b}")
    return Edit("other", f"{a} read as {b}")


# ------------------------------------------------------------------------------------ split
def split_of(codes: Sequence[str] | pd.Index | np.ndarray, *, width: int = 4, held_out_share: float = HELD_OUT_SHARE,
             salt: str = SPLIT_SALT) -> np.ndarray:
    """"train" or "held-out" per TPS code, by a SHA-256 hash of its first ``width`` characters
    (4: the kabupaten/kota), so every TPS of one kabupaten falls on the same side."""
    out = np.empty(len(codes), dtype=object)
    cache: dict[str, str] = {}
    for i, code in enumerate(codes):
        key = str(code)[:width]
        if key not in cache:
            h = int(hashlib.sha256(f"{salt}|{key}".encode()).hexdigest()[:12], 16) / 16**12
            cache[key] = "held-out" if h < held_out_share else "train"
        out[i] = cache[key]
    return out


# ------------------------------------------------------------------------------------ pairs
def _broken(election, codes: pd.Index, keep: Sequence[str] | None = None, mask: np.ndarray | None = None) -> pd.Series:
    """Does the form of each TPS in ``codes`` break a rule of ``default_rules`` (capacity 300)?

    ``keep``: only these count columns stay published (the others set to <NA>); ``mask`` (codes x
    keep, bool): further cells to treat as unpublished.
    """
    from dataclasses import replace

    from .consistency import check_consistency

    if not len(codes):
        return pd.Series([], dtype=bool, index=codes)
    table = election.table.loc[codes].copy()
    if keep is not None:
        for name in election.counts:
            if name in table.columns and name not in keep:
                table[name] = pd.array([pd.NA] * len(table), dtype="Int64")
        if mask is not None:
            for i, name in enumerate(keep):
                table[name] = table[name].astype("Int64").where(pd.Series(~mask[:, i], index=table.index), pd.NA)
    result = check_consistency(replace(election, table=table), capacity=300)
    return result.failed.any(axis=1).reindex(codes).fillna(False).astype(bool)


@dataclass(frozen=True, eq=False)
class Corrections:
    """Early readings paired with the March table, by TPS code; what changed and by which edit.

    ``pairs``: one row per (source, TPS): ``unit_id, source, regency, split, status, compared,
    changed, boxes_changed, early_broken`` (the early form breaks a rule), ``march_broken`` (the
    March form, on the same boxes, breaks one: its label is not trusted), ``early_ts, march_ts``.
    ``changes``: one row per changed box: ``unit_id, source, split, box, early, march, kind,
    detail, written, read, other_box``.
    """

    pairs: pd.DataFrame
    changes: pd.DataFrame
    sources: Mapping[str, str] = field(default_factory=dict)  # source -> description

    def to_frame(self) -> pd.DataFrame:
        return self.pairs.copy()

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, split: str | None = None, source: str | None = None) -> "Corrections":
        keep_p = np.ones(len(self.pairs), dtype=bool)
        keep_c = np.ones(len(self.changes), dtype=bool)
        if split is not None:
            keep_p &= (self.pairs["split"] == split).to_numpy()
            keep_c &= (self.changes["split"] == split).to_numpy()
        if source is not None:
            keep_p &= (self.pairs["source"] == source).to_numpy()
            keep_c &= (self.changes["source"] == source).to_numpy()
        return Corrections(self.pairs[keep_p].reset_index(drop=True), self.changes[keep_c].reset_index(drop=True),
                           self.sources)

    def status_counts(self) -> pd.DataFrame:
        """Pairs per status, per split and source."""
        out = (self.pairs.groupby(["source", "split", "status"]).size().unstack("status", fill_value=0)
               .reindex(columns=list(STATUSES), fill_value=0))
        out["corrected, early form broke a rule"] = (
            self.pairs[(self.pairs["changed"] > 0) & self.pairs["early_broken"]].groupby(["source", "split"]).size()
        ).reindex(out.index, fill_value=0)
        return out

    def kind_counts(self, *, by: str | None = "split") -> pd.DataFrame:
        """Changed boxes per edit kind (and per ``by``), with the share of each kind."""
        keys = ["kind"] if by is None else ["kind", by]
        counts = self.changes.groupby(keys).size()
        out = counts.unstack(by, fill_value=0) if by else counts.to_frame("boxes")
        out = out.reindex(list(EDIT_KINDS), fill_value=0)
        out["all"] = out.sum(axis=1) if by else out["boxes"]
        out["share"] = out["all"] / max(int(out["all"].sum()), 1)
        return out

    def substitutions(self, split: str | None = None) -> pd.DataFrame:
        """10 x 10 counts of digit substitutions: row = written (March) digit, column = digit read early."""
        c = self.changes if split is None else self.changes[self.changes["split"] == split]
        c = c[c["kind"] == "digit substituted"]
        m = pd.crosstab(c["written"], c["read"]).reindex(index=list("0123456789"), columns=list("0123456789"),
                                                          fill_value=0)
        m.index.name, m.columns.name = "written", "read"
        return m

    def not_one_edit(self) -> pd.DataFrame:
        """Corrected TPS no single edit of one box repairs: several boxes changed, or one box by more than one edit."""
        p = self.pairs
        c = self.changes
        single = c[c["kind"].isin(ONE_EDIT)].groupby(["source", "unit_id"]).size()
        p = p[p["changed"] > 0].set_index(["source", "unit_id"])
        one = (p["changed"] == 1) & single.reindex(p.index, fill_value=0).eq(1)
        out = p[~one].reset_index()
        kinds = c.groupby(["source", "unit_id"])["kind"].agg(lambda k: "; ".join(k))
        out["kinds"] = kinds.reindex(list(zip(out["source"], out["unit_id"]))).to_numpy()
        out["reason"] = np.where(out["changed"] > 1, "several boxes changed", "one box, not one edit: " + out["kinds"])
        return out

    def _repr_html_(self) -> str:
        head = (f"{len(self.pairs):,} early readings paired with the March table; "
                f"{int((self.pairs['changed'] > 0).sum()):,} corrected, {len(self.changes):,} boxes changed.")
        return (f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.status_counts())
                + frame_html(self.kind_counts()))


def pair_readings(early, march, *, source: str, boxes: Sequence[str] = BOXES, description: str = "") -> Corrections:
    """Pair an early Election (TPS bodies, the flagged list) with the March Election by TPS code.

    Only boxes published in both (and present in both tables) are compared; a box missing early
    and published in March is not a change. Each changed box is classified with ``classify_edit``
    (the other boxes of the March form and of the early form are the candidates for "box from
    another box").
    """
    et, mt = early.table, march.table
    codes = et.index.intersection(mt.index)
    boxes = [b for b in boxes if b in et.columns and b in mt.columns]
    e = et.loc[codes, boxes].apply(pd.to_numeric, errors="coerce").astype("Float64")
    m = mt.loc[codes, boxes].apply(pd.to_numeric, errors="coerce").astype("Float64")
    both = (e.notna() & m.notna()).to_numpy()
    ev = e.to_numpy(dtype=float, na_value=np.nan)
    mv = m.to_numpy(dtype=float, na_value=np.nan)
    changed = both & (ev != mv)
    # The early form as the finder sees it (all its boxes); the March form on the compared boxes only.
    early_broken = _broken(early, codes)
    march_broken = _broken(march, codes, keep=boxes, mask=np.isnan(ev))
    split = split_of(codes)
    n_changed = changed.sum(axis=1)
    status = np.where(both.sum(axis=1) == 0, "nothing to compare",
                      np.where(n_changed == 0, "unchanged", np.where(n_changed == 1, "one box changed",
                                                                      "several boxes changed")))
    names = np.array(boxes, dtype=object)
    pairs = pd.DataFrame({
        "unit_id": pd.array(codes.astype(str), dtype="str"), "source": source,
        "regency": pd.array(codes.astype(str).str[:4], dtype="str"), "split": split, "status": status,
        "compared": both.sum(axis=1), "changed": n_changed,
        "boxes_changed": [", ".join(names[row]) for row in changed],
        "early_broken": early_broken.to_numpy(dtype=bool), "march_broken": march_broken.to_numpy(dtype=bool),
        "early_ts": et.loc[codes, "ts"].astype(str).to_numpy() if "ts" in et.columns else "",
        "march_ts": mt.loc[codes, "ts"].astype(str).to_numpy() if "ts" in mt.columns else "",
    })
    # Exposure: the digits of each compared box (March number), so a box's misreadings become a rate per digit.
    with np.errstate(invalid="ignore", divide="ignore"):
        digits = np.where(both, np.floor(np.log10(np.maximum(np.nan_to_num(mv), 1))) + 1, 0).astype(np.int64)
    for k, box in enumerate(boxes):
        pairs[f"digits {box}"] = digits[:, k]
    rows = []
    for r, c in zip(*np.nonzero(changed)):
        others = {f"{boxes[k]} (March)": mv[r, k] for k in range(len(boxes)) if k != c and not np.isnan(mv[r, k])}
        others.update({f"{boxes[k]} (early)": ev[r, k] for k in range(len(boxes))
                       if k != c and not np.isnan(ev[r, k]) and not changed[r, k]})
        edit = classify_edit(int(ev[r, c]), int(mv[r, c]), others)
        rows.append({"unit_id": str(codes[r]), "source": source, "split": split[r], "box": boxes[c],
                     "early": int(ev[r, c]), "march": int(mv[r, c]), "kind": edit.kind, "detail": edit.detail,
                     "written": edit.written, "read": edit.read, "other_box": edit.other_box,
                     "position": edit.position,
                     "pair_status": status[r], "march_broken": bool(march_broken.iloc[r])})
    changes = pd.DataFrame(rows, columns=["unit_id", "source", "split", "box", "early", "march", "kind", "detail",
                                          "written", "read", "other_box", "position", "pair_status", "march_broken"])
    return Corrections(pairs, changes, {source: description or source})


def combine(*parts: Corrections) -> Corrections:
    """Several sources' pairs as one set (a TPS in two sources is two pairs, on the same side of the split)."""
    return Corrections(pd.concat([p.pairs for p in parts], ignore_index=True),
                       pd.concat([p.changes for p in parts], ignore_index=True),
                       {k: v for p in parts for k, v in p.sources.items()})


# ------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class EditModel:
    """Counts of real OCR edits and the finder's model from them (add-one smoothing).

    ``kind_counts``: changed boxes per edit kind (training split); ``substitutions``: (written,
    read) digit -> count; ``priors``: smoothed share of each kind the finder searches;
    ``confusions``: ordered pair (written, read) -> count + 1, the finder's ``confusions``.
    """

    kind_counts: Mapping[str, int]
    substitutions: Mapping[tuple[str, str], int]
    searched: tuple[str, ...]
    smoothing: float = 1.0
    description: str = ""
    n_pairs: int = 0
    inserted: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (position, digit) -> count
    dropped: Mapping[tuple[str, str], int] = field(default_factory=dict)   # (position, digit) -> count
    boxes: Mapping[str, int] = field(default_factory=dict)  # box -> changed boxes of one-box pairs
    box_digits: Mapping[str, int] = field(default_factory=dict)  # box -> digits compared in that box (exposure)
    per_digit: bool = True  # a number is misread in proportion to its digits
    substituted: Mapping[str, int] = field(default_factory=dict)  # position class -> substitutions there
    use_positions: bool = True  # weigh substitutions by position class

    @property
    def substituted_at(self) -> dict[str, float] | None:
        if not self.use_positions:
            return None
        return {pos: self.substituted.get(pos, 0) + self.smoothing for pos in POSITIONS}

    @property
    def box_weights(self) -> dict[str, float]:
        """Relative chance that a box is the misread one (one-box corrections + smoothing; "*" = any other box).

        With ``box_digits`` (the digits compared per box, the exposure) it is a rate per written
        digit, (corrections + smoothing) / digits, since the finder multiplies by the repaired
        number's digits (``per_digit``); without it, corrections + smoothing (the older model).
        """
        if not self.boxes:
            return {"*": 1.0}
        if self.box_digits:
            exposed = {b: d for b, d in self.box_digits.items() if d > 0}
            out = {b: (self.boxes.get(b, 0) + self.smoothing) / d for b, d in exposed.items()}
            out["*"] = self.smoothing / max(float(np.median(list(exposed.values()))), 1.0)
            total = sum(out.values())
            return {b: v / total for b, v in out.items()}
        out = {b: n + self.smoothing for b, n in self.boxes.items()}
        out["*"] = self.smoothing
        total = sum(out.values())
        return {b: v / total for b, v in out.items()}

    @property
    def priors(self) -> dict[str, float]:
        n = {k: self.kind_counts.get(k, 0) + self.smoothing for k in self.searched}
        total = sum(n.values())
        return {k: v / total for k, v in n.items()}

    @property
    def confusions(self) -> dict[tuple[str, str], float]:
        return {(a, b): self.substitutions.get((a, b), 0) + self.smoothing
                for a in "0123456789" for b in "0123456789" if a != b}

    @property
    def insertions(self) -> dict[tuple[str, str], float]:
        return {(pos, d): self.inserted.get((pos, d), 0) + self.smoothing for pos in POSITIONS for d in "0123456789"}

    @property
    def drops(self) -> dict[tuple[str, str], float]:
        return {(pos, d): self.dropped.get((pos, d), 0) + self.smoothing for pos in POSITIONS for d in "0123456789"}

    def search(self) -> dict[str, Any]:
        """Keyword arguments for ``find_misreadings``."""
        return {"priors": self.priors, "confusions": self.confusions, "insertions": self.insertions,
                "drops": self.drops, "substituted_at": self.substituted_at}

    def to_json(self) -> str:
        return json.dumps({
            "description": self.description, "smoothing": self.smoothing, "n_pairs": self.n_pairs,
            "searched": list(self.searched), "kind_counts": dict(self.kind_counts),
            "substitutions": {f"{a}>{b}": int(n) for (a, b), n in sorted(self.substitutions.items()) if n},
            "inserted": {f"{p}:{d}": int(n) for (p, d), n in sorted(self.inserted.items()) if n},
            "dropped": {f"{p}:{d}": int(n) for (p, d), n in sorted(self.dropped.items()) if n},
            "boxes": {b: int(n) for b, n in sorted(self.boxes.items())}, "per_digit": self.per_digit,
            "box_digits": {b: int(n) for b, n in sorted(self.box_digits.items())},
            "substituted": {p: int(n) for p, n in sorted(self.substituted.items())}, "use_positions": self.use_positions,
        }, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EditModel":
        d = json.loads(text)
        subs = {tuple(k.split(">")): int(v) for k, v in d["substitutions"].items()}
        return cls(kind_counts={k: int(v) for k, v in d["kind_counts"].items()}, substitutions=subs,
                   searched=tuple(d["searched"]), smoothing=float(d["smoothing"]),
                   description=d.get("description", ""), n_pairs=int(d.get("n_pairs", 0)),
                   inserted={tuple(k.split(":")): int(v) for k, v in d.get("inserted", {}).items()},
                   dropped={tuple(k.split(":")): int(v) for k, v in d.get("dropped", {}).items()},
                   boxes={k: int(v) for k, v in d.get("boxes", {}).items()},
                   box_digits={k: int(v) for k, v in d.get("box_digits", {}).items()}, per_digit=bool(d.get("per_digit", True)),
                   substituted={k: int(v) for k, v in d.get("substituted", {}).items()},
                   use_positions=bool(d.get("use_positions", True)))

    def to_frame(self) -> pd.DataFrame:
        p = self.priors
        return pd.DataFrame({"boxes": [int(self.kind_counts.get(k, 0)) for k in EDIT_KINDS],
                             "prior": [p.get(k, np.nan) for k in EDIT_KINDS]}, index=pd.Index(EDIT_KINDS, name="kind"))


def learn_model(corrections: Corrections, *, split: str = "train", searched: Sequence[str] | None = None,
                smoothing: float = 1.0, trusted_only: bool = True, per_digit: bool = True,
                use_positions: bool = False, box_rates: bool = True) -> EditModel:
    """The edit model from the changed boxes of one split (never the held-out one).

    Every changed box of a pair counts (one box changed or several); ``trusted_only`` drops pairs
    whose March form still breaks a rule (their label may be the wrong one). ``searched``: the
    kinds the finder will try (default: the one-edit kinds plus "two digits inserted" and "box from
    another box"); their counts + ``smoothing`` make the priors; substitution counts + ``smoothing``
    make the confusion weights; inserted and dropped digits are counted by position class and digit,
    and one-box corrections by box. ``use_positions`` (off: in a 2-fold split of the training pairs
    it changed the exact share by one form in 241) also weighs substitutions by position class.
    """
    c = corrections.changes[corrections.changes["split"] == split]
    if trusted_only:
        c = c[~c["march_broken"].astype(bool)]
    searched = tuple(searched) if searched is not None else ALL_EDITS
    kinds = c["kind"].value_counts().to_dict()
    s = c[c["kind"] == "digit substituted"]
    subs = s.groupby(["written", "read"]).size().to_dict()
    ins = c[c["kind"] == "digit inserted"].groupby(["position", "read"]).size().to_dict()
    drp = c[c["kind"] == "digit dropped"].groupby(["position", "written"]).size().to_dict()
    one = c[c["pair_status"] == "one box changed"]
    p = corrections.pairs[corrections.pairs["split"] == split]
    if trusted_only and "march_broken" in p.columns:
        p = p[~p["march_broken"].astype(bool)]
    exposure = {col[len("digits "):]: int(p[col].sum()) for col in p.columns if col.startswith("digits ")}
    return EditModel(kind_counts={k: int(v) for k, v in kinds.items()},
                     boxes={str(b): int(n) for b, n in one["box"].value_counts().items()}, per_digit=per_digit,
                     box_digits={b: n for b, n in exposure.items() if n > 0} if box_rates else {},
                     substituted={str(k): int(v) for k, v in s["position"].value_counts().items()},
                     use_positions=use_positions,
                     inserted={(str(p), str(d)): int(n) for (p, d), n in ins.items()},
                     dropped={(str(p), str(d)): int(n) for (p, d), n in drp.items()},
                     substitutions={(str(a), str(b)): int(n) for (a, b), n in subs.items()}, searched=searched,
                     smoothing=smoothing, n_pairs=int(c[["source", "unit_id"]].drop_duplicates().shape[0]),
                     description=f"learned from the {split} split ({', '.join(sorted(corrections.sources))}), "
                                 f"{len(c)} changed boxes" + (", March forms that balance" if trusted_only else ""))


def load_learned_model(path: str | Path | None = None) -> EditModel:
    """The edit model shipped in ``analysis/data/misreading_model.json`` (or one at ``path``)."""
    if path is None:
        return EditModel.from_json((files("analysis") / "data" / MODEL_FILE).read_text(encoding="utf-8"))
    return EditModel.from_json(Path(path).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ evaluation
def _wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    return tuple(proportion_confint(k, n, alpha=0.05, method="wilson")) if n else (np.nan, np.nan)


@dataclass(frozen=True, eq=False)
class FinderEvaluation:
    """How the finder does on corrected TPS: listed, explained, right box, March number proposed.

    ``rows``: one per corrected pair whose early form broke a rule, with what the finder said.
    ``figures``: measure, count, of, share, ci_low, ci_high (Wilson 95 %).
    """

    rows: pd.DataFrame
    figures: pd.DataFrame
    label: str = ""

    def to_frame(self) -> pd.DataFrame:
        return self.figures.copy()

    def share(self, measure: str) -> float:
        return float(self.figures.loc[measure, "share"])

    def _repr_html_(self) -> str:
        return (f"<p><b>{html.escape(self.label or 'Finder on corrected TPS')}</b></p>"
                + frame_html(self.figures))


FLAGGED = "flagged (listed as a suspected misreading)"
EXACT = "exact (one box changed: that box, March number proposed)"


def score_found(corrections: Corrections, found) -> pd.DataFrame:
    """One row per corrected pair whose early form broke a rule, with what ``found`` (the finder's
    result on that source's early Election) said: listed, excluded, explained, right box, exact."""
    p = corrections.pairs
    p = p[(p["changed"] > 0) & p["early_broken"]].copy()
    t = found.table.drop_duplicates("unit_id").set_index("unit_id")
    excluded = set(found.excluded["unit_id"].astype(str))
    c = corrections.changes
    one = c[c["pair_status"] == "one box changed"].drop_duplicates(["source", "unit_id"]).set_index(["source", "unit_id"])
    listed, explained, right_box, exact, field_, proposed_, edit_ = [], [], [], [], [], [], []
    for src, u, boxes in zip(p["source"], p["unit_id"], p["boxes_changed"]):
        in_t = u in t.index
        f = t.at[u, "field"] if in_t else ""
        pr = t.at[u, "proposed"] if in_t else pd.NA
        ex = bool(t.at[u, "explained"]) if in_t else False
        listed.append(in_t)
        explained.append(ex)
        right_box.append(in_t and f in boxes.split(", "))
        ok = False
        if (src, u) in one.index and in_t and ex:
            row = one.loc[(src, u)]
            ok = f == row["box"] and pd.notna(pr) and int(pr) == int(row["march"])
        exact.append(ok)
        field_.append(f)
        proposed_.append(pr)
        edit_.append(t.at[u, "edit"] if in_t else "")
    for name, values in (("listed", listed), ("explained", explained), ("right_box", right_box), ("exact", exact)):
        p[name] = np.array(values, dtype=bool)
    p["excluded"] = p["unit_id"].isin(excluded)
    p["found_field"], p["proposed"], p["found_edit"] = field_, pd.array(proposed_, dtype="Int64"), edit_
    p["one_box"] = p["status"] == "one box changed"
    one_kind = one["kind"].reindex(list(zip(p["source"], p["unit_id"])))
    p["one_box_kind"] = one_kind.fillna("").to_numpy()
    return p.reset_index(drop=True)


def figures(rows: pd.DataFrame) -> pd.DataFrame:
    """Shares with Wilson 95 % intervals from ``score_found`` rows."""
    n = len(rows)
    trusted_one = rows["one_box"] & ~rows["march_broken"]
    one_edit = trusted_one & rows["one_box_kind"].isin(ONE_EDIT)
    measures = [
        (FLAGGED, int(rows["listed"].sum()), n),
        ("set aside (re-vote, half-published)", int(rows["excluded"].sum()), n),
        ("explained (a repair proposed)", int(rows["explained"].sum()), n),
        ("right box (the box named changed)", int(rows["right_box"].sum()), n),
        (EXACT, int(rows.loc[trusted_one, "exact"].sum()), int(trusted_one.sum())),
        ("exact, where the change is one edit", int(rows.loc[one_edit, "exact"].sum()), int(one_edit.sum())),
        ("exact, untrusted March labels counted too", int(rows.loc[rows["one_box"], "exact"].sum()),
         int(rows["one_box"].sum())),
    ]
    out = []
    for name, k, of in measures:
        low, high = _wilson(k, of)
        out.append({"measure": name, "count": k, "of": of, "share": k / of if of else np.nan,
                    "ci_low": low, "ci_high": high})
    return pd.DataFrame(out).set_index("measure")


def evaluate_finder(corrections: Corrections, early: Mapping[str, Any], *, split: str = "held-out",
                    label: str = "", neighbours: pd.DataFrame | None = None, **search: Any) -> FinderEvaluation:
    """Run ``find_misreadings`` (with ``search``: ``model=``, ``priors=``, ...) on each source's early
    forms of one split and score it against the March numbers.

    Denominator of every share but the exact ones: corrected TPS (a box changed) whose early form
    broke a rule. Flagged: the finder lists the TPS (not set aside as a re-vote or as a
    half-published form). Exact: among those where exactly one box changed and the March form
    balances on the compared boxes (its label trusted), the finder's best repair is that box with
    the March number. The finder sees only the early readings of that split (no label).
    ``neighbours`` (``neighbour_forms``): forms of other TPS the finder's chart prior may take the
    regions' shares from, as it does from the whole table in the real report; every paired TPS is
    removed from it first.
    """
    from .consistency import find_misreadings

    parts = []
    for source, election in early.items():
        sub = early_subset(election, corrections, split, source)
        if neighbours is not None:  # the region's other TPS: never a paired one, so no label is seen
            search["neighbours"] = neighbours[~neighbours.index.isin(set(corrections.pairs["unit_id"]))]
        found = find_misreadings(sub, **search)
        parts.append(score_found(corrections.subset(split=split, source=source), found))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return FinderEvaluation(rows, figures(rows), label)


def early_subset(early, corrections: Corrections, split: str, source: str):
    """The early Election restricted to one split's TPS of one source (what the finder is run on)."""
    from dataclasses import replace

    codes = corrections.pairs.loc[(corrections.pairs["split"] == split) & (corrections.pairs["source"] == source),
                                  "unit_id"]
    return replace(early, table=early.table.loc[early.table.index.isin(set(codes))])


# ------------------------------------------------------------------------------------ the real pairs
#: Where the real pairs live, relative to ``../shared``.
JAKARTA_BODIES = Path("data/sirekap/tps_json_dki_sample.zip")
FLAGGED_FOLDER = Path("data/sirekap/flagged_tps")
MARCH_TABLE = Path("data/sirekap/tps_ppwp_2024/ppwp_tps_36_regions_20240320.csv.gz")
SOURCES = {"dki_bodies_16feb": "1,000 Jakarta TPS bodies fetched 16 Feb 2024 (tps_json_dki_sample.zip)",
           "flagged_18feb": "TPS whose candidates did not add up, 18-19 Feb 2024 (flagged_tps/)"}


def real_pairs(shared: str | Path, *, neighbours: bool = False) -> tuple:
    """The two early sources of ``../shared`` paired with the March table: (corrections, early Elections by source),
    and with ``neighbours`` the March table's levels and candidates too (``neighbour_forms``)."""
    from .sources.sirekap.flagged import read_flagged
    from .sources.sirekap.parse import read_tps_bodies
    from .sources.tabular import read_table

    shared = Path(shared)
    march, _ = read_table(shared / MARCH_TABLE, "sirekap_tps_2024")
    bodies, _ = read_tps_bodies(shared / JAKARTA_BODIES)
    flagged, _ = read_flagged(shared / FLAGGED_FOLDER)
    early = {"dki_bodies_16feb": bodies, "flagged_18feb": flagged}
    corrections = combine(*(pair_readings(e, march, source=name, description=SOURCES[name]) for name, e in early.items()))
    if neighbours:
        return corrections, early, neighbour_forms(march, corrections)
    return corrections, early


def neighbour_forms(march, corrections: Corrections) -> pd.DataFrame:
    """The March forms of every TPS that is in no pair (levels and candidates): the context from which the
    finder's chart prior takes each region's shares, as it does from the whole table in the real report.
    No paired TPS is in it, so no label (a March number of a corrected TPS) reaches the finder."""
    table = march.table[[*march.levels, *march.candidates]]
    return table[~table.index.isin(set(corrections.pairs["unit_id"]))]


def synthetic_recovery(*, scale: float = 0.02, seed: int = 2024, ocr_rate: float = 0.01, **search: Any) -> pd.DataFrame:
    """``misreading_recovery`` on a synthetic election (the project's generator), to set beside the real figures."""
    from .consistency import find_misreadings, misreading_recovery
    from .synth import make_election

    made = make_election(scale=scale, plan={}, ocr_rate=ocr_rate, seed=seed)
    return misreading_recovery(made.election, made.truth, find_misreadings(made.election, **search))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.corrections SHARED [--write-model]``: pairs, kinds, the learned model, held-out figures."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.corrections", description=main.__doc__)
    parser.add_argument("shared", help="the ../shared folder")
    parser.add_argument("--write-model", metavar="PATH", help="write the model learned from the training split here")
    parser.add_argument("--synthetic", action="store_true", help="also measure both models on synthetic forms")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    corrections, early, neighbours = real_pairs(args.shared, neighbours=True)
    print(corrections.status_counts().to_string(), "\n")
    print(corrections.kind_counts().to_string(), "\n")
    model = learn_model(corrections, split="train")
    if args.write_model:
        Path(args.write_model).write_text(model.to_json() + "\n", encoding="utf-8")
    print(model.to_frame().to_string(), "\n")
    for name, search in (("hand-set model", {}), ("learned model", {"model": model})):
        for context, nb in (("the finder sees the early forms only", None),
                            ("with the March forms of unpaired TPS as the regions' context", neighbours)):
            result = evaluate_finder(corrections, early, split="held-out", label=name, neighbours=nb, **search)
            print(f"held-out, {name}, {context}\n{result.figures.to_string()}\n")
        if args.synthetic:
            print(f"synthetic, {name}\n{synthetic_recovery(**search).to_string()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
