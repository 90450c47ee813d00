"""Raw Sirekap TPS bodies (``pemilu/hhcw/ppwp/.../{tps}.json``) into an Election, with a rejects table.

Every quirk of sirekap-api.md is handled: ``chart`` or ``administrasi`` may be null independently,
each administrasi number may be null, ``chart`` carries a spurious ``"null": null`` key, ``psu`` is
null or a re-vote kind, ``ts`` is WIB without a zone, photo upload times sit in the image names.
Unpublished numbers are ``<NA>``, never 0. Every body ends in exactly one of the table or the
rejects, with a reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ...election import Election

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


def _code(key: str) -> str:
    match = TPS_CODE.search(str(key).replace("\\", "/").rsplit("/", 1)[-1])
    if not match:
        raise BodyError("the name does not end in a 13-digit TPS code")
    return match.group(1)


def _count(value: Any, where: str) -> int | None:
    """A published count: a non-negative whole number, or None when unpublished."""
    if value is None:
        return None
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


def _photo_time(url: Any) -> pd.Timestamp | None:
    if not isinstance(url, str):
        return None
    match = PHOTO_TIME.search(url)
    if not match:
        return None
    try:
        return pd.Timestamp(f"{match.group(2)} {match.group(3)}")
    except ValueError:
        return None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _row(code: str, body: Any, candidates: Mapping[str, str]) -> dict[str, Any]:
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
    unknown = sorted(set(chart) - set(candidates))
    if unknown:
        raise BodyError(f"chart has unknown candidate ids: {', '.join(map(str, unknown))[:80]}")
    for sirekap_id, number in candidates.items():
        row[number] = _count(chart.get(sirekap_id), f"chart[{sirekap_id}]")

    administrasi = body.get("administrasi")
    if administrasi is not None and not isinstance(administrasi, dict):
        raise BodyError(f"administrasi is a {type(administrasi).__name__}, not an object")
    administrasi = administrasi or {}
    for name in ADMINISTRASI_FIELDS:
        row[name] = _count(administrasi.get(name), f"administrasi.{name}")
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
    for i in range(3):
        row[f"photo_{i + 1}_time"] = _photo_time(images[i]) if i < len(images) else None
    return row


def parse_tps_bodies(bodies: Mapping[str, bytes | str | dict | None], *,
                     candidates: Mapping[str, str] = PPWP_CANDIDATES) -> ParsedTps:
    """Parse raw TPS bodies keyed by TPS code or file name; each ends in ``table`` or ``rejects``."""
    rows, rejects, seen = [], [], set()
    for key, body in bodies.items():
        source = str(key)
        try:
            code = _code(source)
            if code in seen:
                raise BodyError("a second body for the same TPS code")
            rows.append(_row(code, body, candidates))
            seen.add(code)
        except BodyError as err:
            match = TPS_CODE.search(source.replace("\\", "/").rsplit("/", 1)[-1])
            rejects.append({"unit_id": match.group(1) if match else source[:200], "source": source[:500], "reason": str(err)})
        except Exception as err:  # noqa: BLE001 - an unforeseen shape is a reject, never a crash
            rejects.append({"unit_id": source[:200], "source": source[:500], "reason": f"unreadable body ({type(err).__name__})"})
    table = _frame(rows, candidates)
    rejects_frame = pd.DataFrame(rejects, columns=["unit_id", "source", "reason"])
    counts = {"bodies": len(bodies), "rows": len(table), "rejected": len(rejects_frame)}
    return ParsedTps(table=table, rejects=rejects_frame, counts=counts)


def _frame(rows: list[dict[str, Any]], candidates: Mapping[str, str]) -> pd.DataFrame:
    numbers = list(candidates.values())
    columns = ["unit_id", *numbers, *ADMINISTRASI_FIELDS, "has_chart", "has_administrasi", "psu", "ts",
               "status_suara", "status_adm", "photo_1_time", "photo_2_time", "photo_3_time"]
    raw = pd.DataFrame(rows, columns=columns)
    table = pd.DataFrame(index=pd.Index(raw["unit_id"].astype(str), name="unit_id"))
    code = table.index.to_series()
    table["province"], table["regency"] = code.str[:2].to_numpy(), code.str[:4].to_numpy()
    table["district"], table["village"] = code.str[:6].to_numpy(), code.str[:10].to_numpy()
    ints = {name: pd.array(raw[name].to_numpy(), dtype="Int64") for name in [*numbers, *ADMINISTRASI_FIELDS]}
    table["registered"] = ints["pemilih_dpt_j"] + ints["pengguna_dptb_j"]
    table["voters"] = ints["pengguna_total_j"]
    table["valid"] = ints["suara_sah"]
    table["invalid"] = ints["suara_tidak_sah"]
    table["ballots"] = ints["suara_total"]
    for number in numbers:
        table[number] = ints[number]
    table["dpt"] = ints["pemilih_dpt_j"]
    table["dpt_voters"] = ints["pengguna_dpt_j"]
    table["dptb_voters"] = ints["pengguna_dptb_j"]
    table["dpk_voters"] = ints["pengguna_non_dpt_j"]
    for name in ADMINISTRASI_FIELDS:
        table[name] = ints[name]
    table["has_chart"] = raw["has_chart"].astype(bool).to_numpy()
    table["has_administrasi"] = raw["has_administrasi"].astype(bool).to_numpy()
    table["psu"] = pd.array(raw["psu"].to_numpy(), dtype="str")
    # Sirekap's ts is a WIB (UTC+7) publication time written without a zone.
    table["ts"] = pd.to_datetime(raw["ts"], errors="coerce", format="%Y-%m-%d %H:%M:%S").dt.tz_localize("Asia/Jakarta").to_numpy()
    for name in ("status_suara", "status_adm"):
        table[name] = pd.array(raw[name].to_numpy(), dtype="boolean")
    for i in range(1, 4):
        times = pd.to_datetime(raw[f"photo_{i}_time"], errors="coerce")
        table[f"photo_{i}_time"] = times.dt.tz_localize("Asia/Jakarta").to_numpy()
    return table


def to_election(parsed: ParsedTps, *, name: str = "", provenance: Mapping[str, Any] | None = None,
                candidates: Mapping[str, str] = PPWP_CANDIDATES) -> Election:
    """The parsed rows as an Election with levels province / regency / district / village."""
    prov = {"source": "Sirekap hhcw TPS bodies", **dict(provenance or {}), **{f"bodies_{k}": v for k, v in parsed.counts.items()}}
    return Election.from_frame(parsed.table, levels=LEVELS, candidates=tuple(candidates.values()),
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
    """A folder (searched recursively for ``*.json``) or a zip of TPS bodies -> (Election, rejects)."""
    path = Path(path)
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
