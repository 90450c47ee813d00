"""A polite, resumable crawler of the Sirekap JSON tree (httpx, asyncio) into a snapshot store.

It walks ``wilayah`` under a region, fetches the candidate or party list, the ``hhcw`` aggregate of
every region, and either every TPS body (``level="tps"``) or only down to the desa tables
(``level="desa"``); ``official=True`` adds the ``hr`` recapitulation (ppwp: the region tree; DPR RI: the
only paths seen, ``pemilu/hr/pdpr/{dapil}dc.json`` and ``dd.json``; refused for the other ballots, whose
paths nobody recorded). For DPR RI and DPRD ballots it also fetches the dapil lists of the region, each
dapil's candidate list and its ``hhcd`` aggregate (Sirekap's per-dapil candidate totals; paths from public
scrapers of 2024, see ``endpoints``), so that a build can name the candidates and cross-check them. Trees
that do not exist (DKI Jakarta's DPRD kabupaten/kota, voters abroad but for president and DPR RI) are
recorded once as not applicable and never requested. Politeness and robustness
follow sirekap-api.md: browser-like headers with a Referer, a request-rate limit, bounded
concurrency, timeouts, retries with exponential backoff and jitter (honouring Retry-After) on 5xx,
429, timeouts, cut-off bodies and bodies that are not JSON; a 404 is recorded as not published.
It talks to its base URL only: no redirects are followed, every request's origin is checked, and
region codes from the network are validated before they become paths.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Callable

import httpx
import pandas as pd
from tqdm import tqdm

from . import endpoints as ep
from .store import SnapshotStore, read_meta, utc_now

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/122.0.0.0 Safari/537.36")
#: Bodies larger than this are refused (the national aggregate is ~9 KB, a TPS body ~1.3 KB).
MAX_BODY = 32 << 20
LEVELS = ("tps", "desa")


class HostError(RuntimeError):
    """A request to a host other than the configured base URL."""


@dataclass(frozen=True)
class ScrapeConfig:
    """What to scrape and how politely. Delays are in seconds; ``rate`` is requests per second."""

    ballot: str
    region: str = "0"
    level: str = "tps"
    base_url: str = ep.DATA_HOST
    out: str = "data/raw/sirekap"
    snapshot: str | None = None
    concurrency: int = 4
    rate: float = 5.0
    official: bool = False
    timeout: float = 30.0
    retries: int = 6
    backoff: float = 1.0
    max_backoff: float = 120.0
    max_retry_after: float = 600.0
    progress: bool = True
    referer: str = ep.REFERER

    def __post_init__(self):
        ep.check_ballot(self.ballot)
        ep.check_code(self.region)
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {self.level!r}")
        if not (1 <= self.concurrency <= 64):
            raise ValueError("concurrency must be between 1 and 64")
        if not (0 < self.rate <= 1000):
            raise ValueError("rate must be a positive number of requests per second (at most 1000)")
        if self.retries < 0 or self.timeout <= 0 or self.backoff < 0:
            raise ValueError("retries must be >= 0, timeout > 0, backoff >= 0")
        check_base_url(self.base_url)
        if self.official and self.ballot in ep.HR_REFUSAL:
            raise ValueError(ep.HR_REFUSAL[self.ballot])


def check_base_url(base_url: str) -> httpx.URL:
    """The base URL if it is https, or plain http to a loopback address (local tests); else ValueError."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base URL must be http(s)://host[:port]; got {base_url!r}")
    if url.scheme == "http" and not _loopback(url.host):
        raise ValueError("a plain-http base URL is allowed only for a loopback address (tests); use https")
    if url.query or url.fragment:
        raise ValueError("the base URL must not carry a query or fragment")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ScrapeSummary:
    """What one scrape did: counts per outcome, the failures with their reasons, and the traffic."""

    snapshot: str
    path: str
    known: int
    fetched: int
    unchanged: int
    resumed: int
    not_published: int
    failed: tuple[tuple[str, str], ...]
    requests: int
    retried: int
    bytes_received: int
    new_blob_bytes: int
    seconds: float
    walk_errors: tuple[tuple[str, str], ...] = ()
    not_modified: int = 0
    #: Trees that do not exist for the ballot (DKI Jakarta's DPRD kabupaten/kota, voters abroad but for
    #: president and DPR RI): recorded once at their root as not applicable, never requested.
    not_applicable: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.walk_errors

    def reasons(self) -> Counter:
        return Counter(reason for _, reason in (*self.failed, *self.walk_errors))

    def to_frame(self) -> pd.DataFrame:
        rows = [("known", self.known), ("fetched (new or changed)", self.fetched), ("unchanged", self.unchanged), ("of which not modified (304)", self.not_modified),
                ("already in this snapshot (resumed)", self.resumed), ("not published (404)", self.not_published),
                ("not applicable (no such tree, not requested)", self.not_applicable),
                ("failed", len(self.failed)), ("tree errors", len(self.walk_errors)), ("requests", self.requests),
                ("retried requests", self.retried), ("bytes received", self.bytes_received),
                ("new blob bytes", self.new_blob_bytes), ("seconds", round(self.seconds, 2))]
        return pd.DataFrame(rows, columns=["what", "count"]).set_index("what")

    def text(self, max_reasons: int = 10) -> str:
        lines = [f"snapshot {self.snapshot} in {self.path}",
                 f"  {self.known:,} files known: {self.fetched:,} fetched, {self.unchanged:,} unchanged ({self.not_modified:,} by 304), "
                 f"{self.resumed:,} already there (resumed), {self.not_published:,} not published, "
                 f"{self.not_applicable:,} not applicable (trees that do not exist, not requested), {len(self.failed):,} failed",
                 f"  {self.requests:,} requests ({self.retried:,} retries), {self.bytes_received:,} bytes received, "
                 f"{self.new_blob_bytes:,} new bytes stored, {self.seconds:.1f} s"]
        for reason, n in self.reasons().most_common(max_reasons):
            lines.append(f"  FAILED {n:,} x {reason}")
        for path, reason in [*self.failed, *self.walk_errors][:max_reasons]:
            lines.append(f"    e.g. {path}: {reason}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(escape=True)


class _Pacer:
    """Spaces request starts at least 1/rate seconds apart across all workers; a Retry-After pauses them all."""

    def __init__(self, rate: float, sleep: Callable = asyncio.sleep):
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.lock = asyncio.Lock()
        self.sleep = sleep

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            await self.sleep(start - now)

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds``: a server that asks one client to wait asks all of its workers."""
        self.next = max(self.next, time.monotonic() + seconds)


@dataclass
class _Result:
    outcome: str  # ok | not_published | failed
    status: int | None
    body: bytes | None = None
    data: Any = None
    reason: str = ""
    attempts: int = 1
    etag: str | None = None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class _Walk:
    config: ScrapeConfig
    store: SnapshotStore
    client: httpx.AsyncClient
    pacer: _Pacer
    queue: asyncio.LifoQueue = field(default_factory=asyncio.LifoQueue)
    seen: set = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    failed: list = field(default_factory=list)
    walk_errors: list = field(default_factory=list)
    bar: Any = None
    sleep: Callable = asyncio.sleep

    def add(self, path: str, kind: str, code: str | None = None) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        self.queue.put_nowait((path, kind, code))
        if self.bar is not None:
            self.bar.total = len(self.seen)

    def start(self) -> None:
        config, region = self.config, self.config.region
        provinces = [region[:2]] if region != "0" else []
        if region != "0" and ep.not_applicable(config.ballot, region):
            self.add(ep.hhcw_path(config.ballot, region), "not_applicable", region)
            return
        for path in ep.contestant_paths(config.ballot, provinces):
            self.add(path, "contestants")
        if config.ballot == "pdpr" and region == "0":  # Sirekap's national DPR RI totals by dapil
            self.add(ep.hhcd_path("pdpr", "0"), "hhcd", "0")
        for code in ("0", *ep.chain(region)):  # the dapil list at or above the region (the rest come with the walk)
            self._dapils(code)
        if len(region) == 13:
            self.add(ep.hhcw_path(config.ballot, region), "tps", region)
            return
        self._region(region)

    def _dapils(self, code: str) -> None:
        """The dapil list of a legislative ballot that belongs to this region, if there is one."""
        if self.config.ballot in ep.LEGISLATIVE_PARTY_BALLOTS:
            path = ep.dapil_list_path(self.config.ballot, code)
            if path is not None:
                self.add(path, "dapils", code)

    def _region(self, code: str) -> None:
        """The aggregate, the recapitulation and the children list of a region above TPS level.

        A region where the ballot has no tree (``endpoints.not_applicable``) is recorded as such at its
        aggregate's path, and nothing below it is asked for.
        """
        config = self.config
        if ep.not_applicable(config.ballot, code):
            self.add(ep.hhcw_path(config.ballot, code), "not_applicable", code)
            return
        self.add(ep.hhcw_path(config.ballot, code), "hhcw", code)
        if config.official and config.ballot == "ppwp":  # legislative hr is per dapil (expand_dapils)
            self.add(ep.hr_path(config.ballot, code), "hr", code)
        if not (config.level == "desa" and len(code) == 10):
            self.add(ep.wilayah_path(code), "wilayah", code)

    def expand(self, path: str, parent: str, data: Any) -> None:
        if not isinstance(data, list):
            self.walk_errors.append((path, "the wilayah list is not a JSON list"))
            return
        bad = 0
        for item in data:
            child = item.get("kode") if isinstance(item, dict) else None
            if not ep.is_child(parent, child):
                bad += 1
                continue
            if self.config.ballot == "pdpd" and len(child) == 2 and not ep.not_applicable("pdpd", child):
                for contestants in ep.contestant_paths("pdpd", [child]):
                    self.add(contestants, "contestants")
            self._dapils(child)
            if len(child) == 13:
                if self.config.level == "tps":
                    self.add(ep.hhcw_path(self.config.ballot, child), "tps", child)
            else:
                self._region(child)
        if bad:
            # A code that is not a child of this region never becomes a path (it could point anywhere).
            self.walk_errors.append((path, f"{bad} entries without a valid child code were not followed"))

    def expand_dapils(self, path: str, data: Any) -> None:
        """The candidate list of every dapil of a dapil list that the scraped region needs."""
        if not isinstance(data, list):
            self.walk_errors.append((path, "the dapil list is not a JSON list"))
            return
        bad = 0
        for item in data:
            dapil = ep.dapil_code_of(item)
            if dapil is None:
                bad += 1
            elif ep.dapil_in_region(self.config.ballot, self.config.region, dapil):
                self.add(ep.candidate_list_path(dapil), "candidates", dapil)
                try:  # Sirekap's candidate totals of the dapil, which a build compares with the sum of its TPS
                    self.add(ep.hhcd_path(self.config.ballot, dapil), "hhcd", dapil)
                    if self.config.official:
                        for path in ep.hr_dapil_paths(self.config.ballot, dapil):
                            self.add(path, "hr", dapil)
                except (ep.CodeError, ep.NoEvidencedPath) as err:
                    self.walk_errors.append((path, f"dapil {dapil}: {err}"))
        if bad:
            # Like a region code, a dapil code becomes a path only when it is plain digits.
            self.walk_errors.append((path, f"{bad} entries without a usable dapil code (kode_dapil or kode: "
                                           "a string of 2 to 13 digits) were not followed"))

    def follow(self, kind: str, path: str, code: str | None, data: Any) -> None:
        """Queue what a stored list names: a region list's children, a dapil list's candidate lists."""
        if kind == "wilayah":
            self.expand(path, code, data)
        elif kind == "dapils":
            self.expand_dapils(path, data)

    async def fetch(self, path: str, expect: type | tuple[type, ...] = (dict, list), etag: str | None = None) -> _Result:
        """GET one path with retries; ``expect`` is the JSON type a good body has (a list for wilayah).

        With the previous snapshot's ``etag`` the request is conditional: an unchanged file costs the
        server a 304 and no body.
        """
        config = self.config
        headers = {"If-None-Match": etag} if etag else None
        reason, status, attempt = "", None, 0
        for attempt in range(1, config.retries + 2):
            await self.pacer.wait()
            self.counts["requests"] += 1
            if attempt > 1:
                self.counts["retried"] += 1
            retry_after = None
            try:
                # httpx's timeout is per read; the overall deadline also stops a server that trickles bytes.
                async with asyncio.timeout(config.timeout * 4), self.client.stream("GET", path, headers=headers) as response:
                    status = response.status_code
                    if status == 304 and etag:
                        return _Result("not_modified", status, attempts=attempt, etag=etag)
                    if status == 200:
                        chunks, size = [], 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > MAX_BODY:
                                return _Result("failed", status, reason=f"body larger than {MAX_BODY:,} bytes", attempts=attempt)
                            chunks.append(chunk)
                        body = b"".join(chunks)
                        self.counts["bytes"] += len(body)
                        try:
                            data = json.loads(body)
                        except (ValueError, RecursionError):
                            reason = "HTTP 200 with a body that is not JSON (cut off or an error page)"
                        else:
                            if isinstance(data, expect):
                                return _Result("ok", status, body=body, data=data, attempts=attempt,
                                               etag=response.headers.get("etag"))
                            reason = f"HTTP 200 with JSON of the wrong shape ({type(data).__name__})"
                    elif status == 404:
                        return _Result("not_published", status, reason="HTTP 404 (not published)", attempts=attempt)
                    elif status in (408, 429) or status >= 500:
                        reason = f"HTTP {status}"
                        retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    elif 300 <= status < 400:
                        return _Result("failed", status, reason=f"HTTP {status} redirect not followed (only the base URL is used)", attempts=attempt)
                    else:
                        return _Result("failed", status, reason=f"HTTP {status}", attempts=attempt)
            except HostError as err:
                return _Result("failed", None, reason=str(err), attempts=attempt)
            except (httpx.TimeoutException, TimeoutError):
                reason, status = "timeout", None
            except httpx.HTTPError as err:  # connection refused or reset, body cut off (RemoteProtocolError), ...
                reason, status = f"transport error ({type(err).__name__})", None
            if attempt > config.retries:
                break
            cap = min(config.max_backoff, config.backoff * 2 ** (attempt - 1))
            delay = cap / 2 + random.uniform(0, cap / 2)  # exponential backoff with jitter
            if retry_after is not None:
                delay = max(delay, min(retry_after, config.max_retry_after))
                self.pacer.hold(min(retry_after, config.max_retry_after))
            await self.sleep(delay)
        return _Result("failed", status, reason=f"{reason} after {attempt} attempts", attempts=attempt)

    async def handle(self, path: str, kind: str, code: str | None) -> None:
        store = self.store
        if kind == "not_applicable":
            if store.settled(path):
                self.counts["resumed"] += 1
            else:
                store.miss(path, f"{self.config.base_url.rstrip('/')}/{path}", outcome="not_applicable", status=None,
                           reason=ep.not_applicable(self.config.ballot, code) or "not applicable", attempts=0)
            self.counts["not_applicable"] += 1
            return
        if store.settled(path):
            self.counts["resumed"] += 1
            if kind in ("wilayah", "dapils") and store.outcome(path) == "ok":
                try:
                    data = json.loads(store.read(path))
                except (OSError, ValueError):
                    data = None
                self.follow(kind, path, code, data)
            return
        expect = (list if kind in ("wilayah", "dapils") else dict if kind in ("tps", "hhcw", "hhcd", "hr", "candidates")
                  else (dict, list))
        result = await self.fetch(path, expect, store.previous_etag(path))
        url = f"{self.config.base_url.rstrip('/')}/{path}"
        if result.outcome == "not_modified":
            if store.put_not_modified(path, url, attempts=result.attempts) is not None:
                self.counts["unchanged"] += 1
                self.counts["not_modified"] += 1
                if kind in ("wilayah", "dapils"):
                    try:
                        data = json.loads(store.read(path))
                    except (OSError, ValueError):
                        data = None
                    self.follow(kind, path, code, data)
                return
            result = await self.fetch(path, expect)  # the previous body is gone from the store: ask for it whole
        if result.outcome == "ok":
            _, how = store.put(path, url, result.body, status=result.status, attempts=result.attempts, etag=result.etag)
            self.counts[how] += 1
            self.follow(kind, path, code, result.data)
        else:
            store.miss(path, url, outcome=result.outcome, status=result.status, reason=result.reason, attempts=result.attempts)
            if result.outcome == "not_published":
                self.counts["not_published"] += 1
            else:
                self.failed.append((path, result.reason))

    async def worker(self) -> None:
        while True:
            path, kind, code = await self.queue.get()
            try:
                await self.handle(path, kind, code)
            except Exception as err:  # noqa: BLE001 - one bad file (disk full, ...) is a failure, not a dead worker
                self.failed.append((path, f"{type(err).__name__}: {err}"[:200]))
            finally:
                self.queue.task_done()
                if self.bar is not None:
                    errors = len(self.failed) + len(self.walk_errors)
                    self.bar.set_postfix_str(f"errors={errors}", refresh=False)
                    self.bar.update(1)


def _client(config: ScrapeConfig) -> httpx.AsyncClient:
    base = check_base_url(config.base_url)
    origin = (base.scheme, base.host, base.port)

    async def only_base(request: httpx.Request) -> None:
        if (request.url.scheme, request.url.host, request.url.port) != origin:
            raise HostError(f"refused a request to {request.url.host} (only {base.host} is allowed)")

    headers = {"User-Agent": USER_AGENT, "Referer": config.referer, "Accept": "application/json, text/plain, */*",
               "Accept-Language": "id-ID,id;q=0.9,en;q=0.8"}
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    return httpx.AsyncClient(base_url=str(base).rstrip("/") + "/", headers=headers, timeout=config.timeout,
                             limits=limits, follow_redirects=False, verify=True, event_hooks={"request": [only_base]})


async def scrape_async(config: ScrapeConfig, *, sleep: Callable = asyncio.sleep) -> ScrapeSummary:
    """Run one scrape (or resume one: same ``snapshot``) and return its summary."""
    started = time.perf_counter()
    store = SnapshotStore(config.out, config.snapshot)
    meta = {"name": store.name, "ballot": config.ballot, "region": config.region, "level": config.level,
            "official": config.official, "base_url": config.base_url, "started_at": utc_now(),
            "previous_snapshot": store.previous_name, "rate": config.rate, "concurrency": config.concurrency}
    old = read_meta(store.path)
    if old.get("started_at"):
        meta["first_started_at"] = old.get("first_started_at", old["started_at"])
    store.write_meta(meta)
    async with _client(config) as client:
        walk = _Walk(config=config, store=store, client=client, pacer=_Pacer(config.rate, sleep), sleep=sleep)
        with tqdm(total=0, unit="file", desc=f"scrape {config.ballot} {config.region}", disable=not config.progress,
                  dynamic_ncols=True, smoothing=0.05) as bar:
            walk.bar = bar
            walk.start()
            workers = [asyncio.create_task(walk.worker()) for _ in range(config.concurrency)]
            try:
                await walk.queue.join()
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    store.close()
    counts = walk.counts
    summary = ScrapeSummary(
        snapshot=store.name, path=str(store.path), known=len(walk.seen), fetched=counts["fetched"],
        unchanged=counts["unchanged"], resumed=counts["resumed"], not_published=counts["not_published"],
        failed=tuple(walk.failed), requests=counts["requests"], retried=counts["retried"],
        bytes_received=counts["bytes"], new_blob_bytes=store.new_blob_bytes, seconds=time.perf_counter() - started,
        walk_errors=tuple(walk.walk_errors), not_modified=counts["not_modified"], not_applicable=counts["not_applicable"])
    store.write_meta({**meta, "finished_at": utc_now(), "complete": summary.ok, "summary": {
        "known": summary.known, "fetched": summary.fetched, "unchanged": summary.unchanged, "resumed": summary.resumed,
        "not_published": summary.not_published, "not_applicable": summary.not_applicable, "failed": len(summary.failed), "tree_errors": len(summary.walk_errors),
        "requests": summary.requests, "failure_reasons": dict(summary.reasons())}})
    return summary


def scrape(config: ScrapeConfig) -> ScrapeSummary:
    """Blocking wrapper around :func:`scrape_async`."""
    return asyncio.run(scrape_async(config))
