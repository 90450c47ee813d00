"""Scraping against the local test server, and building an Election from the snapshot it leaves.

Figures: files per second and CPU per file of the scraper (in a process of its own, so the server's
CPU is not counted), its peak memory, TPS per second of ``read_snapshot`` (disk, manifest, parse;
target >= 20,000 TPS/s per core, design.md) for the presidential snapshot the scraper left and for a
DPR RI snapshot of the same TPS (18 parties, each with its total, party-only votes and 3 or 7 candidates
(DPR RI 2024: 6.6 per party and dapil), and the administration page; stored with the scraper's SnapshotStore rather than scraped again, which
would take minutes more and is measured once already), and what a full national scrape would take at
the default rate. Parsing alone is measured by ``bench_parse.py``.
Run: ``.venv/bin/python benchmarks/bench_scrape.py [--scale 0.025]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.sources.sirekap import endpoints  # noqa: E402
from analysis.sources.sirekap.scrape import ScrapeConfig  # noqa: E402
from analysis.sources.sirekap.store import SnapshotStore  # noqa: E402
from analysis.sources.sirekap.testserver import TreeServer, legislative_tree, tree_from_election  # noqa: E402
from analysis.synth import make_election  # noqa: E402

WILAYAH = REPO.parent / "shared" / "data" / "sirekap" / "wilayah_ppwp_all_levels.csv.gz"
BUILD_TARGET = 20_000
#: Universe of March 2024 (sirekap-api.md) when the shared region tree is absent.
UNIVERSE = {"province": 39, "regency": 514, "district": 7_405, "village": 83_859, "tps": 823_378}

CHILD = r"""
import asyncio, json, resource, sys, time
from analysis.sources.sirekap.scrape import ScrapeConfig, scrape_async
config = ScrapeConfig(**json.loads(sys.argv[1]))
cpu0, wall0 = time.process_time(), time.perf_counter()
summary = asyncio.run(scrape_async(config))
print(json.dumps({"cpu": time.process_time() - cpu0, "wall": time.perf_counter() - wall0, "files": summary.known,
                  "requests": summary.requests, "ok": summary.ok, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


#: Regions of DKI Jakarta (31) and abroad (99) when the shared region tree is absent (its counts, March 2024).
PROVINCE_UNIVERSE = {"31": {"province": 1, "regency": 6, "district": 44, "village": 267, "tps": 30_766},
                     "99": {"province": 1, "regency": 129, "district": 128, "village": 128, "tps": 1_955}}
#: Dapils of 2024 (KPU: 84 DPR RI, 301 DPRD provinsi, 2,325 DPRD kabupaten/kota; not in the shared data) and the
#: dapil lists (DPR RI: one; DPRD provinsi: one per province but 99; DPRD kabupaten/kota: one per kabupaten but
#: DKI's and 99's): the scraper fetches each list, each dapil's candidate list and (since issue 19) its hhcd.
DAPILS = {"pdpr": 84, "pdprdp": 301, "pdprdk": 2_325}
DAPIL_LISTS = {"pdpr": 1, "pdprdp": 38, "pdprdk": 508}
_NAMES = {2: "province", 4: "regency", 6: "district", 10: "village", 13: "tps"}


def universe(prefix: str = "") -> dict[str, int]:
    """Regions per level of the country (or of the province ``prefix``), from the shared region tree."""
    if not WILAYAH.exists():
        return dict(PROVINCE_UNIVERSE[prefix] if prefix else UNIVERSE)
    import pandas as pd

    codes = pd.read_csv(WILAYAH, usecols=["kode"], dtype=str)["kode"]
    lengths = codes[codes.str.startswith(prefix)].str.len().value_counts()
    return {_NAMES[n]: int(lengths.get(n, 0)) for n in _NAMES}


def walk_requests(u: dict[str, int], level: str, *, country: bool = True) -> int:
    """Requests of walking a tree of regions: the aggregate and the children list of each region, and the TPS bodies."""
    regions = int(country) + u["province"] + u["regency"] + u["district"] + u["village"]
    hhcw = regions
    if level == "tps":
        return regions + hhcw + u["tps"]  # every list down to the TPS of each desa
    return (regions - u["village"]) + hhcw  # no desa lists, no TPS bodies


def national_requests(u: dict[str, int], level: str, ballot: str = "ppwp", *, after: bool = True,
                      provinces: dict[str, dict[str, int]] | None = None) -> int:
    """Requests of a national scrape of ``ballot``. ``after=False``: the scraper before issue 19, which walked
    every province for every ballot and fetched no hhcd; ``after``: trees that do not exist are recorded without a
    request (their root only), and each dapil's hhcd aggregate is fetched (DPR RI: also the national one)."""
    n = 1 + walk_requests(u, level)  # the candidate or party list
    if ballot in DAPILS:
        n += DAPIL_LISTS[ballot] + DAPILS[ballot]  # dapil lists, each dapil's candidate list
        if after:
            n += DAPILS[ballot] + (ballot == "pdpr")  # hhcd of each dapil (and pemilu/hhcd/pdpr/0.json)
    if after:
        for prefix, ballots in endpoints.NOT_APPLICABLE.items():
            if ballot in ballots:
                n -= walk_requests((provinces or {})[prefix] if provinces else universe(prefix), level, country=False)
    return n


def store_tree(tree: dict[str, bytes], election, out: Path, ballot: str) -> Path:
    """A snapshot of ``tree`` as the scraper stores it: every file with its manifest line, unpublished TPS as 404s."""
    store = SnapshotStore(out, "bench")
    meta = {"name": "bench", "ballot": ballot, "region": "0", "level": "tps", "official": False,
            "base_url": "http://127.0.0.1:0", "started_at": "2024-02-15T10:00:00.000Z"}
    store.write_meta(meta)
    for path, body in tree.items():
        store.put(path, f"http://127.0.0.1:0/{path}", body, status=200, attempts=1)
    for code in election.table.index:
        path = endpoints.hhcw_path(ballot, code)
        if endpoints.not_applicable(ballot, code):
            continue  # the scraper never lists a TPS of a tree that does not exist
        if path not in tree:
            store.miss(path, f"http://127.0.0.1:0/{path}", outcome="not_published", status=404, reason="HTTP 404", attempts=1)
    store.write_meta({**meta, "finished_at": "2024-02-15T11:00:00.000Z", "complete": True})
    store.close()
    return store.path


def build(path: Path, what: str, runs: int = 3) -> None:
    """``runs`` builds of one snapshot, judged on the median rate (one build varies by ~5 % on this VM)."""
    from analysis.sources.sirekap.parse import read_snapshot

    rates, walls = [], []
    for _ in range(runs):
        started = time.perf_counter()
        cpu = time.process_time()
        built = read_snapshot(path)
        walls.append(time.perf_counter() - started)
        rates.append(len(built.election) / (time.process_time() - cpu))
    rate = statistics.median(rates)
    print(f"build from snapshot, {what}, {len(built.election):,} TPS   {rate:,.0f} TPS/s per core, median of {runs} builds "
          f"({min(rates):,.0f}-{max(rates):,.0f}; {len(built.election) / rate:.2f} s CPU, {statistics.median(walls):.2f} s wall)   "
          f"target >= {BUILD_TARGET:,} TPS/s per core   {'ok' if rate >= BUILD_TARGET else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.025, help="synthetic election scale (0.025 is ~20,000 TPS)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--python-reader", action="store_true",
                        help="read party charts in Python, as an install without a C compiler does")
    args = parser.parse_args()
    from analysis.sources.sirekap import parse

    if args.python_reader:
        parse._party_chart_compiled = parse._party_row_compiled = None
    reader = "compiled party reader" if parse._party_chart_compiled else "party bodies read in Python"

    started = time.perf_counter()
    election = make_election(scale=args.scale, min_tps=30, seed=7).election
    tree = tree_from_election(election, unpublished=0.02, seed=1)
    print(f"# local tree: {len(tree):,} files ({len(election):,} TPS), made in {time.perf_counter() - started:.0f} s")
    with tempfile.TemporaryDirectory() as out:
        with TreeServer(tree) as server:
            config = ScrapeConfig(ballot="ppwp", region="0", base_url=server.url, out=out, snapshot="bench",
                                  rate=1000.0, concurrency=args.concurrency, progress=False)
            result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config.__dict__)], cwd=REPO,
                                    capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        assert figures["ok"], result.stdout
        files_per_s = figures["files"] / figures["wall"]
        cpu_ms = 1000 * figures["cpu"] / figures["files"]
        default = ScrapeConfig(ballot="ppwp")
        print(f"scrape, local server, {figures['files']:,} files   {files_per_s:,.0f} files/s at concurrency {args.concurrency} "
              f"({figures['wall']:.1f} s)   target >= {10 * default.rate:,.0f} files/s (10x the default rate)   "
              f"{'ok' if files_per_s >= 10 * default.rate else 'MISSED'}")
        print(f"scrape, CPU per file   {cpu_ms:.2f} ms   target <= 5 ms   {'ok' if cpu_ms <= 5 else 'MISSED'}")
        print(f"scrape, peak memory   {figures['peak_rss_mb']:,.0f} MB for {figures['files']:,} files   target <= 2,000 MB   "
              f"{'ok' if figures['peak_rss_mb'] <= 2000 else 'MISSED'}")

        build(Path(out) / "bench", "presidential (scraped)")
    # DPR RI 2024 had 9,917 candidates in 84 dapils: 6.6 per party and dapil; 3 is the tests' smaller body.
    for per_party in (3, 7):
        with tempfile.TemporaryDirectory() as out:
            tree, _ = legislative_tree(election, ballot="pdpr", unpublished=0.02, seed=1, candidates_per_party=per_party)
            path = store_tree(tree, election, Path(out), "pdpr")
            del tree
            build(path, f"DPR RI (18 parties x {per_party} candidates, {reader})")

    u = universe()
    provinces = {prefix: universe(prefix) for prefix in endpoints.NOT_APPLICABLE}
    for ballot in endpoints.BALLOTS:
        for level in ("tps", "desa"):
            before = national_requests(u, level, ballot, after=False, provinces=provinces)
            n = national_requests(u, level, ballot, provinces=provinces)
            hours = n / default.rate / 3600
            cpu_h = n * cpu_ms / 1000 / 3600
            print(f"national scrape {ballot} --level {level}: {n:,} requests (before issue 19: {before:,}; {n - before:+,})   "
                  f"{hours:,.1f} h at the default {default.rate:g} req/s ({hours / 24:.1f} days), scraper CPU {cpu_h:.1f} h   "
                  f"(estimate, no target)")


if __name__ == "__main__":
    main()
