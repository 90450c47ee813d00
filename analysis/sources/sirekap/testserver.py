"""A local stand-in for the Sirekap data host: a tree in the real API shape, served on 127.0.0.1 with faults.

Used by the tests and the scrape benchmark, never against the internet. :func:`tree_from_election`
turns an Election (e.g. from :func:`analysis.synth.make_election`) into the ``wilayah`` lists, ``hhcw``
aggregates at every level, TPS bodies and candidate list of the API; :func:`legislative_tree` does the
same for a party ballot, with per-candidate votes inside each party as the legislative bodies carry
them, and the ballot's dapil lists and per-dapil candidate lists (:func:`legislative_candidates`).
:class:`TreeServer` serves such a tree with ``http.server`` in a thread and injects the faults the
scraper must survive: 503, 429 with Retry-After, bodies cut off mid-way, HTML error pages with status
200, slow answers, answers trickled a byte at a time, dropped connections, redirects, and (for paths
absent from the tree) permanent 404s. It counts every request per path.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from . import endpoints as ep
from .parse import ADMINISTRASI_FIELDS, PPWP_CANDIDATES

FAULTS = ("503", "429", "cut", "cut_chunked", "html200", "slow", "drop")
_LEVEL_COLUMNS = ("province", "regency", "district", "village")


def _dump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _wib(ts: Any) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert("Asia/Jakarta").strftime("%Y-%m-%d %H:%M:%S")


def _wilayah(table: pd.DataFrame) -> dict[str, bytes]:
    """wilayah lists: every region's children, sorted by name as the API does."""
    tree: dict[str, bytes] = {}
    codes = {"0": sorted(table["province"].unique())}
    for parent, child in zip(_LEVEL_COLUMNS, (*_LEVEL_COLUMNS[1:], None)):
        groups = table.groupby(parent, sort=True)
        for code, group in groups:
            codes[code] = sorted(group[child].unique()) if child else sorted(group.index)
    names = dict(zip(table["province"], table["province_name"])) if "province_name" in table else {}
    ident = 100000
    for parent, children in codes.items():
        items = []
        for child in children:
            ident += 1
            level = list(ep.LENGTHS).index(len(child)) + 1
            name = names.get(child) or (f"TPS {child[-3:]}" if len(child) == 13 else f"WILAYAH {child}")
            items.append({"nama": name, "id": ident, "kode": child, "tingkat": level})
        tree[ep.wilayah_path(parent)] = _dump(sorted(items, key=lambda item: item["nama"]))
    return tree


def _aggregates(ballot: str, table: pd.DataFrame, votes: pd.DataFrame, keys: Mapping[str, str], *, root: str = "hhcw",
                ts: str = "2024-02-20 13:00:00") -> dict[str, bytes]:
    """hhcw (or hr) bodies for the country and every region, each with a table keyed by child code."""
    path = ep.hhcw_path if root == "hhcw" else ep.hr_path
    columns = list(keys)
    frame = votes[columns].astype("float64").copy()
    frame.index = frame.index.rename(None)
    frame["_reported"] = votes[columns].notna().any(axis=1).to_numpy()
    frame["country"] = "0"
    for column in _LEVEL_COLUMNS:
        frame[column] = table[column].to_numpy()
    frame["unit_id"] = frame.index
    bodies: dict[str, dict[str, Any]] = {}
    pairs = list(zip(("country", *_LEVEL_COLUMNS), (*_LEVEL_COLUMNS, "unit_id")))
    for parent_col, child_col in pairs:
        grouped = frame.groupby([parent_col, child_col], sort=True)
        sums = grouped[columns].sum()
        reported = grouped["_reported"].agg(["any", "mean", "sum", "size"])
        for (parent, child), values, (anyr, mean, n_rep, size) in zip(sums.index, sums.to_numpy(), reported.to_numpy()):
            body = bodies.setdefault(parent, {"ts": ts, "psu": "Reguler", "mode": root, "chart": dict.fromkeys(keys.values(), 0),
                                              "table": {}, "progres": {"total": 0, "progres": 0}})
            entry: dict[str, Any] = {"psu": "Reguler"}
            if anyr:
                for column, value in zip(columns, values):
                    entry[keys[column]] = int(value)
            entry["persen"] = round(100 * float(mean), 2)
            entry["status_progress"] = bool(anyr)
            body["table"][child] = entry
            for column, value in zip(columns, values):
                body["chart"][keys[column]] += int(value)
            body["progres"]["total"] += int(size)
            body["progres"]["progres"] += int(n_rep)
    tree = {}
    for parent, body in bodies.items():
        body["chart"]["persen"] = round(100 * body["progres"]["progres"] / max(body["progres"]["total"], 1), 2)
        tree[path(ballot, parent)] = _dump(body)
    return tree


def _administrasi(row: pd.Series) -> dict[str, int | None] | None:
    values = {name: _int(row.get(name)) for name in ADMINISTRASI_FIELDS}
    return None if all(v is None for v in values.values()) else values


def tree_from_election(election, *, unpublished: float = 0.0, seed: int = 0, official: bool = False) -> dict[str, bytes]:
    """The presidential API tree of an Election with Sirekap columns; ``unpublished`` TPS are listed but 404."""
    table = election.table
    rng = np.random.default_rng(seed)
    ids = {number: sirekap_id for sirekap_id, number in PPWP_CANDIDATES.items()}
    tree = _wilayah(table)
    tree["pemilu/ppwp.json"] = _dump({sid: {"ts": "2024-02-14 18:44:00", "nama": f"PASLON {num}", "warna": "#000000",
                                            "nomor_urut": int(num)} for sid, num in PPWP_CANDIDATES.items()})
    hidden = set(table.index[rng.random(len(table)) < unpublished])
    records = table.to_dict("index")
    for code, row in records.items():
        if code in hidden:
            continue
        votes = {ids[n]: _int(row.get(n)) for n in ids}
        chart = None if all(v is None for v in votes.values()) else {"null": None, **votes}
        images = [f"https://sirekap-obj-formc.kpu.go.id/204f/pemilu/ppwp/{code[:2]}/{code[2:4]}/{code[4:6]}/{code[6:8]}/"
                  f"{code[8:10]}/{code}-20240215-101421--0000.jpg", None, None]
        psu = row.get("psu")
        body = {"chart": chart, "images": images, "administrasi": _administrasi(row),
                "psu": psu if isinstance(psu, str) else None, "ts": _wib(row.get("ts")) or "2024-02-15 07:00:44",
                "status_suara": chart is not None, "status_adm": _administrasi(row) is not None}
        tree[ep.hhcw_path("ppwp", code)] = _dump(body)
    served = table.loc[~table.index.isin(hidden), list(ids)].astype("Float64")
    served = served.reindex(table.index)
    tree.update(_aggregates("ppwp", table, served, {n: ids[n] for n in ids}))
    if official:
        tree.update(_aggregates("ppwp", table, served, {n: ids[n] for n in ids}, root="hr"))
    return tree


#: National parties (1-17, 24) and Aceh's local parties (18-23).
PARTIES = tuple(str(n) for n in (*range(1, 18), 24))


def legislative_dapils(election, ballot: str = "pdpr") -> pd.Series:
    """unit_id -> dapil code of a party ballot: neighbouring regions alternate between two dapils.

    DPR RI dapils group a province's kabupaten (codes as the real ones: province and number, ``3101``),
    DPRD provinsi dapils likewise (``PP00NN``, ``320012``), DPRD kabupaten/kota dapils a kabupaten's
    kecamatan (``KKKKNN``, ``360202``), in the formats of the real candidate lists and dapil aggregates.
    """
    ep.check_ballot(ballot)
    table = election.table
    parent, child = ("regency", "district") if ballot == "pdprdk" else ("province", "regency")
    pairs = table[[parent, child]].drop_duplicates().sort_values([parent, child])
    rank = pairs.groupby(parent).cumcount()
    number = (1 + (rank + 1) % 2).astype(int)  # 02, 01, 02, ...: a dapil's number is not its first region's
    middle = {"pdpr": "", "pdprdp": "00", "pdprdk": ""}[ballot]
    of_child = dict(zip(pairs[child], [f"{p}{middle}{n:02d}" for p, n in zip(pairs[parent], number)]))
    return pd.Series([of_child[c] for c in table[child]], index=table.index, name="dapil", dtype=object)


def legislative_candidates(election, ballot: str = "pdpr", candidates_per_party: int = 3) -> pd.DataFrame:
    """The candidates of every dapil of the election: dapil, party, candidate (id), number, name, gender.

    Ids are unique across dapils, as Sirekap's are. Each dapil's first candidate has a name with HTML
    and quotes in it, as an untrusted scraped string can.
    """
    rows, ident = [], 100000
    for dapil in sorted(set(legislative_dapils(election, ballot))):
        for party in PARTIES:
            for k in range(1, candidates_per_party + 1):
                ident += 1
                name = f'Hj. CALON <b>{ident}</b> & "ANAK", S.H.' if party == PARTIES[0] and k == 1 else f"CALON {ident}"
                rows.append((dapil, party, str(ident), k, name, "LP"[ident % 2]))
    return pd.DataFrame(rows, columns=["dapil", "party", "candidate", "number", "name", "gender"])


def legislative_votes(election, *, ballot: str = "pdpr", seed: int = 0, candidates_per_party: int = 3) -> pd.DataFrame:
    """Long per-TPS votes of a party ballot (party-only and per-candidate), splitting each TPS's valid ballots.

    The candidates of a TPS are those of its dapil (:func:`legislative_candidates`).
    """
    rng = np.random.default_rng(seed)
    table = election.table
    valid = table["valid"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    weights = rng.dirichlet(np.full(len(PARTIES), 2.0))
    dapils = legislative_dapils(election, ballot)
    candidates = legislative_candidates(election, ballot, candidates_per_party)
    ids = {key: list(group["candidate"]) for key, group in candidates.groupby(["dapil", "party"], sort=False)}
    rows = []
    for code, total, dapil in zip(table.index, valid, dapils):
        if np.isnan(total):
            continue
        per_party = rng.multinomial(int(total), weights)
        for party, n in zip(PARTIES, per_party):
            split = rng.multinomial(int(n), np.full(candidates_per_party + 1, 1 / (candidates_per_party + 1)))
            rows.append((code, party, "", int(split[0])))
            for candidate, votes in zip(ids[dapil, party], split[1:]):
                rows.append((code, party, candidate, int(votes)))
    return pd.DataFrame(rows, columns=["unit_id", "party", "candidate", "votes"])


def _dapil_lists(election, ballot: str, candidates: pd.DataFrame) -> dict[str, bytes]:
    """The dapil lists (in the shapes public scrapers of 2024 met) and each dapil's candidate list."""
    tree: dict[str, bytes] = {}
    dapils = sorted(set(candidates["dapil"]))
    if ballot == "pdpr":  # one national list, items {"nama", "id", "kode"}
        tree[ep.DPR_DAPILS_PATH] = _dump([{"nama": f"DAPIL DPR {d}", "id": 5001 + i, "kode": d} for i, d in enumerate(dapils)])
    else:  # per province (DPRD provinsi) or kabupaten (DPRD kabupaten/kota); items {"id_dapil", "kode_dapil", "nama_dapil"}
        owner = 2 if ballot == "pdprdp" else 4
        for i, d in enumerate(dapils):
            path = ep.dapil_list_path(ballot, d[:owner])
            items = json.loads(tree.get(path, b"[]"))
            items.append({"id_dapil": 7001 + i, "kode_dapil": d, "nama_dapil": f"DAPIL {d}"})
            tree[path] = _dump(items)
    for dapil, group in candidates.groupby("dapil", sort=True):
        body = {party: {c: {"nama": name, "nomor_urut": int(number), "jenis_kelamin": gender, "tempat_tinggal": "KOTA"}
                        for c, number, name, gender in zip(sub["candidate"], sub["number"], sub["name"], sub["gender"])}
                for party, sub in group.groupby("party", sort=False)}
        tree[ep.candidate_list_path(dapil)] = _dump(body)
    return tree


def _applicable(election, ballot: str):
    """The election without the regions where the ballot has no tree (DKI Jakarta for DPRD kabupaten/kota,
    voters abroad for all but president and DPR RI), as the real API has no files there."""
    table = election.table
    keep = np.array([ep.not_applicable(ballot, p) is None for p in table["province"]], dtype=bool)
    if keep.all():
        return election
    from dataclasses import replace

    return replace(election, table=table[keep])


def _photos(ballot: str, code: str, n: int) -> list[str | None]:
    """Photo URLs of a TPS in the real naming (its code, an upload time, a uuid), one page in three left null."""
    base = f"https://sirekap-obj-formc.kpu.go.id/204f/pemilu/{ballot}/{code[:2]}/{code[2:4]}/{code[4:6]}/{code[6:8]}/{code[8:10]}"
    return [None if k % 3 == 2 else f"{base}/{code}-20240215-1{k}1421--0000-{k}.jpg" for k in range(n)]


def _hhcd(ballot: str, served: pd.DataFrame, ts: str = "2024-02-19 19:00:00") -> dict[str, bytes]:
    """The dapil aggregates ``hhcd`` of the votes served, in the shape of the real ``hhcd/pdprdk/36/3602/360202``:
    ``table{party: {caleg_id: n, ..., "jml_suara_total": n, "jml_suara_partai": n}}`` and the parties' totals in
    ``chart``; for DPR RI also the national ``hhcd/pdpr/0`` keyed by dapil. Unpublished votes count as nothing."""
    tree: dict[str, bytes] = {}
    national: dict[str, dict[str, Any]] = {}
    votes = served.assign(votes=served["votes"].astype("Float64").fillna(0).astype(int))
    for dapil, group in votes.groupby("dapil", sort=True):
        table, chart = {}, {}
        for party, sub in group.groupby("party", sort=False):
            entry = {c: int(v) for c, v in sub[sub["candidate"] != ""].groupby("candidate", sort=False)["votes"].sum().items()}
            entry["jml_suara_total"] = int(sub["votes"].sum())
            entry["jml_suara_partai"] = int(sub.loc[sub["candidate"] == "", "votes"].sum())
            table[party] = entry
            chart[party] = entry["jml_suara_total"]
        units = group["unit_id"].nunique()
        tree[ep.hhcd_path(ballot, dapil)] = _dump({"ts": ts, "mode": "hhcw", "chart": {**chart, "persen": 100.0},
                                                   "table": table, "progres": {"total": units, "progres": units}})
        national[dapil] = {**chart, "persen": 100.0}
    if ballot == "pdpr":
        total = {p: sum(row.get(p, 0) for row in national.values()) for p in PARTIES}
        tree[ep.hhcd_path("pdpr", "0")] = _dump({"ts": ts, "mode": "hhcw", "chart": total, "table": national,
                                                 "progres": {"total": int(votes["unit_id"].nunique()), "progres": int(votes["unit_id"].nunique())}})
    return tree


def legislative_tree(election, *, ballot: str = "pdpr", seed: int = 0, unpublished: float = 0.0,
                     candidates_per_party: int = 3, flat: float = 0.0, nulls: float = 0.0,
                     official: bool = False) -> tuple[dict[str, bytes], pd.DataFrame]:
    """The API tree of a party ballot and the long votes it serves (the ground truth for ``build``).

    TPS bodies have the shape served from 18 Feb 2024 (sirekap-api.md, "Legislative ballots as served"):
    ``chart{party: {jml_suara_total, jml_suara_partai}}``, the candidates' votes in a separate
    ``caleg{party: {caleg_id: n, ..., "null": null}}`` and ``kode_dapil``; a share ``flat`` of them the early
    shape of 16 Feb (``chart{party: n}``, no caleg, no kode_dapil: no candidate votes served), and a share
    ``nulls`` of the candidate votes null (as from 5 Mar). Regions where the ballot has no tree are left
    out (``endpoints.not_applicable``). Also the dapil aggregates ``hhcd`` of the votes served, and with
    ``official`` DPR RI's ``hr/pdpr/{dapil}dc.json`` / ``dd.json`` (their shape is not known: a stand-in).
    The served votes carry, per candidate, the dapil, number and name of the candidate lists in the tree.
    """
    tree = _wilayah(election.table)  # the region tree is one for every ballot, Jakarta and abroad included
    election = _applicable(election, ballot)
    table = election.table
    rng = np.random.default_rng(seed + 1)
    long = legislative_votes(election, ballot=ballot, seed=seed, candidates_per_party=candidates_per_party)
    candidates = legislative_candidates(election, ballot, candidates_per_party)
    dapils = legislative_dapils(election, ballot)
    tree.update(_dapil_lists(election, ballot, candidates))
    tree["pemilu/partai.json"] = _dump({p: {"ts": "2024-02-14 18:44:00", "id_partai": int(p), "id_pilihan": int(p),
                                            "is_aceh": int(p) in range(18, 24), "nama": f"PARTAI {p}",
                                            "nama_lengkap": f"PARTAI NOMOR {p}", "nomor_urut": int(p), "warna": "#000000"}
                                        for p in PARTIES})
    hidden = set(table.index[rng.random(len(table)) < unpublished])
    early = set(table.index[rng.random(len(table)) < flat])
    if nulls > 0:
        is_null = (rng.random(len(long)) < nulls) & (long["candidate"] != "").to_numpy()
        long["votes"] = long["votes"].astype("Int64").mask(is_null)
    grouped = {code: group for code, group in long.groupby("unit_id", sort=False)}
    records = table.to_dict("index")
    for code, row in records.items():
        if code in hidden:
            continue
        group = grouped.get(code)
        chart, caleg = None, None
        if group is not None:
            chart, caleg = {}, {}
            for party, sub in group.groupby("party", sort=False):
                votes = sub["votes"].tolist()
                only = [int(v) for c, v in zip(sub["candidate"], votes) if c == ""]
                total = int(sum(0 if pd.isna(v) else int(v) for v in votes))
                chart[party] = {"jml_suara_total": total, "jml_suara_partai": only[0] if only else 0}
                caleg[party] = {**{c: None if pd.isna(v) else int(v) for c, v in zip(sub["candidate"], votes) if c != ""},
                                "null": None}
        administrasi = _administrasi(row)
        if code in early:  # 16 Feb 2024: party totals alone
            body = {"chart": None if chart is None else {p: e["jml_suara_total"] for p, e in chart.items()},
                    "images": _photos(ballot, code, 3), "administrasi": administrasi, "psu": None,
                    "ts": "2024-02-16 08:00:00", "status_suara": chart is not None, "status_adm": administrasi is not None}
        else:
            body = {"chart": chart, "images": _photos(ballot, code, 3), "kode_dapil": dapils[code], "administrasi": administrasi,
                    "caleg": caleg, "psu": None, "ts": _wib(row.get("ts")) or "2024-02-19 07:00:44",
                    "status_suara": chart is not None, "status_adm": administrasi is not None}
        tree[ep.hhcw_path(ballot, code)] = _dump(body)
    totals = long.assign(votes=long["votes"].astype("Float64").fillna(0)).groupby(["unit_id", "party"])["votes"].sum()
    totals = totals.unstack("party").reindex(index=table.index, columns=list(PARTIES))
    totals.loc[totals.index.isin(hidden)] = np.nan
    tree.update(_aggregates(ballot, table, totals.astype("Float64"), {p: p for p in PARTIES}))
    served = long[~long["unit_id"].isin(hidden)].merge(candidates.drop(columns="party"), on="candidate", how="left")
    served["dapil"] = served["unit_id"].map(dapils)  # the candidate's dapil, or the TPS's for party-only votes
    tree.update(_hhcd(ballot, served[~served["unit_id"].isin(early)]))
    if official and ballot == "pdpr":
        for dapil in sorted(set(dapils)):
            for path in ep.hr_dapil_paths("pdpr", dapil):
                tree[path] = _dump({"ts": "2024-03-20 00:00:00", "chart": {}, "table": {}})
    served = served[~served["unit_id"].isin(early)]  # flat bodies serve party totals alone: no row of the long votes
    return tree, served.astype({"number": "Int64", "votes": "Int64"}).reset_index(drop=True)


def dpd_tree(election, *, seed: int = 0, candidates: int = 4) -> tuple[dict[str, bytes], pd.DataFrame]:
    """The API tree of the DPD ballot (candidates stand per province) and its per-TPS votes by ballot number."""
    table = election.table
    rng = np.random.default_rng(seed)
    tree = _wilayah(table)
    numbers = [f"{k:02d}" for k in range(1, candidates + 1)]
    ids = {p: [f"{p}{k:02d}07" for k in range(1, candidates + 1)] for p in table["province"].unique()}
    for province, own in ids.items():
        tree[f"pemilu/caleg/dpd/{province}.json"] = _dump({cid: {"nama": f"CALON {cid}", "nomor_urut": k + 1, "jenis_kelamin": "L",
                                                                  "tempat_tinggal": "KOTA"} for k, cid in enumerate(own)})
    valid = table["valid"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    votes = pd.DataFrame(np.nan, index=table.index, columns=numbers)
    by_id = pd.DataFrame(np.nan, index=table.index, columns=[c for own in ids.values() for c in own])
    for i, (code, total) in enumerate(zip(table.index, valid)):
        if np.isnan(total):
            continue
        split = rng.multinomial(int(total), np.full(candidates, 1 / candidates))
        own = ids[code[:2]]
        votes.iloc[i] = split
        by_id.loc[code, own] = split
        body = {"chart": {"null": None, **{cid: int(v) for cid, v in zip(own, split)}}, "images": [None, None, None],
                "administrasi": _administrasi(table.loc[code]), "psu": None, "ts": "2024-02-15 07:00:44",
                "status_suara": True, "status_adm": True}
        tree[ep.hhcw_path("pdpd", code)] = _dump(body)
    tree.update(_aggregates("pdpd", table, by_id.astype("Float64"), {c: c for c in by_id.columns}))
    return tree, votes.astype("Int64")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up on a slow answer is expected
        pass


class TreeServer:
    """Serve ``tree`` (API path -> bytes) on 127.0.0.1 with injected faults; use as a context manager.

    ``faults`` maps a path to the faults of its successive requests (e.g. ``["503", "429"]``: the
    first two requests fail, the third is served). ``fault_rate`` adds a random fault from ``mix``
    to that share of first requests of each path (seeded). ``delay`` slows every answer; ``slow``
    is how long a "slow" fault sleeps (longer than the client's timeout in tests).
    """

    def __init__(self, tree: Mapping[str, bytes], *, faults: Mapping[str, Iterable[str]] | None = None,
                 fault_rate: float = 0.0, mix: Iterable[str] = FAULTS, seed: int = 0, delay: float = 0.0,
                 slow: float = 1.0, retry_after: str = "1", redirect_to: str | None = None):
        self.tree = dict(tree)
        self.faults: dict[str, list[str]] = defaultdict(list, {k: list(v) for k, v in (faults or {}).items()})
        rng = random.Random(seed)
        mix = list(mix)
        if fault_rate > 0:
            for path in sorted(self.tree):
                if rng.random() < fault_rate:
                    self.faults[path].append(rng.choice(mix))
        self.delay, self.slow, self.retry_after, self.redirect_to = delay, slow, retry_after, redirect_to
        self.requests: Counter = Counter()
        self.served: Counter = Counter()
        self.not_modified: Counter = Counter()
        self.injected: Counter = Counter()
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "TreeServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go out as separate writes: without NODELAY, Nagle and delayed ACKs add ~40 ms each.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}, close: bool = False):
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200 else "text/html")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].lstrip("/")
                with owner.lock:
                    owner.requests[path] += 1
                    if len(owner.headers) < 50:
                        owner.headers.append(dict(self.headers))
                    fault = owner.faults[path].pop(0) if owner.faults.get(path) else None
                    if fault:
                        owner.injected[fault] += 1
                if owner.delay:
                    time.sleep(owner.delay)
                body = owner.tree.get(path)
                if fault == "redirect" and owner.redirect_to:
                    return self._send(302, b"", {"Location": f"{owner.redirect_to}/{path}"})
                if fault == "503":
                    return self._send(503, b"<html><body>503 Service Unavailable</body></html>")
                if fault == "429":
                    return self._send(429, b"<html>Too Many Requests</html>", {"Retry-After": owner.retry_after})
                if fault == "html200":
                    return self._send(200, b"<!DOCTYPE html><html><body>Sedang pemeliharaan</body></html>")
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "slow":
                    time.sleep(owner.slow)
                if body is None:
                    return self._send(404, b"<html>404 Not Found</html>")
                if fault == "cut":
                    # Content-Length promises the whole body; the connection closes half-way through.
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "trickle":
                    # Every read gets a byte in time, so only an overall deadline ends the wait.
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        time.sleep(owner.slow / 10)
                    return
                if fault == "cut_chunked":
                    # No length at all: the client only sees that the JSON stops half-way.
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                # Object stores answer a matching If-None-Match with 304 and no body; so does this server.
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    with owner.lock:
                        owner.not_modified[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with owner.lock:
                    owner.served[path] += 1
                return self._send(200, body, {"ETag": etag})

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
