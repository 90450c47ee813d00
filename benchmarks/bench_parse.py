"""Sirekap TPS bodies -> Election: TPS per second per core (target >= 20,000, design.md).

Rates are per CPU second of this process (``time.process_time``), so that other work on a shared
machine does not count against them; the wall time is printed beside.
"""

import json
import time

import numpy as np

from analysis.sources.sirekap.parse import PARTY_COLUMNS, parse_tps_bodies, to_election

TARGET = 20_000
N = 200_000
N_PARTY = 50_000
CANDIDATES_PER_PARTY = 7


def bodies(n: int, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        code = f"31{i // 100000:02d}{(i // 1000) % 100:02d}{(i // 10) % 100:04d}{i % 1000:03d}"
        votes = rng.integers(0, 150, 3)
        valid = int(votes.sum())
        body = {"chart": {"100025": int(votes[0]), "100026": int(votes[1]), "100027": int(votes[2]), "null": None},
                "images": [f"https://x/{code}-20240215-101421--uuid.jpg", None, None],
                "administrasi": {name: int(rng.integers(0, 300)) for name in (
                    "pemilih_dpt_j", "pemilih_dpt_l", "pemilih_dpt_p", "pengguna_dpt_j", "pengguna_dpt_l",
                    "pengguna_dpt_p", "pengguna_dptb_j", "pengguna_dptb_l", "pengguna_dptb_p", "pengguna_non_dpt_j",
                    "pengguna_non_dpt_l", "pengguna_non_dpt_p", "pengguna_total_j", "pengguna_total_l",
                    "pengguna_total_p", "suara_tidak_sah", "suara_total")} | {"suara_sah": valid},
                "psu": None, "ts": "2024-02-15 23:29:50", "status_suara": True, "status_adm": True}
        out[code] = json.dumps(body).encode()
    return out


def party_bodies(n: int, seed: int = 0) -> dict[str, bytes]:
    """DPR/DPRD TPS bodies as served from 18 Feb 2024: 18 parties' totals and party-only votes in ``chart``,
    7 candidates each in ``caleg`` (issue 19 sets the target at 7) (with its ``"null": null``), and ``kode_dapil``."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        code = f"33{i // 100000:02d}{(i // 1000) % 100:02d}{(i // 10) % 100:04d}{i % 1000:03d}"
        chart, caleg = {}, {}
        for party in (*range(1, 18), 24):
            split = rng.integers(0, 12, 1 + CANDIDATES_PER_PARTY)
            chart[str(party)] = {"jml_suara_total": int(split.sum()), "jml_suara_partai": int(split[0])}
            caleg[str(party)] = {**{str(party * 1000 + k): int(split[k]) for k in range(1, 1 + CANDIDATES_PER_PARTY)}, "null": None}
        out[code] = json.dumps({"chart": chart, "images": [None, None, None], "kode_dapil": code[:4], "administrasi": None,
                                "caleg": caleg, "psu": None, "ts": "2024-02-15 23:29:50", "status_suara": True,
                                "status_adm": False}).encode()
    return out


if __name__ == "__main__":
    import sys

    from analysis.sources.sirekap import parse

    if "--python-reader" in sys.argv[1:]:  # as an install without a C compiler reads party charts
        parse._party_chart_compiled = parse._party_row_compiled = None
    raw = bodies(N)
    started, cpu = time.perf_counter(), time.process_time()
    election = to_election(parse_tps_bodies(raw))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rate = len(election) / cpu
    verdict = "ok" if rate >= TARGET else "MISSED"
    print(f"parse, {N:,} TPS bodies   {rate:,.0f} TPS/s on one core ({cpu:.1f} s CPU, {seconds:.1f} s wall)   target >= {TARGET:,} TPS/s per core   {verdict}")

    raw = party_bodies(N_PARTY)
    started, cpu = time.perf_counter(), time.process_time()
    parsed = parse_tps_bodies(raw, candidates=PARTY_COLUMNS, parties=True)
    to_election(parsed, candidates=PARTY_COLUMNS)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    rate = N_PARTY / cpu
    verdict = "ok" if rate >= TARGET else "MISSED"
    reader = "compiled party reader" if parse._party_chart_compiled else "party bodies read in Python"
    print(f"parse, {N_PARTY:,} DPR/DPRD bodies (18 parties x {CANDIDATES_PER_PARTY} candidates, {len(parsed.votes_long):,} long rows, {reader})   "
          f"{rate:,.0f} TPS/s on one core ({cpu:.1f} s CPU, {seconds:.1f} s wall)   target >= {TARGET:,} TPS/s per core   {verdict}")
