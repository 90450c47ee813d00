"""The machine-readable summary each report writes at its end; the index page and the tests read it."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .folders import write_atomic

SUMMARY_KEYS = ("scope", "code", "name", "headline", "flags", "provenance", "parameters")
SCOPES = ("province", "national")


@dataclass(frozen=True)
class Flag:
    """One test of one region: its statistic, p- and q-value, and whether it is flagged."""

    test: str
    region: str
    statistic: float | None
    pvalue: float | None
    qvalue: float | None
    flagged: bool
    note: str = ""
    #: The p-value against the other regions of the page (``analysis.flagging``; None where not computed).
    pvalue_empirical: float | None = None
    #: The region's q-value across the page (Simes over its tests, then Benjamini-Hochberg).
    region_qvalue: float | None = None


FLAG_KEYS = tuple(f.name for f in fields(Flag) if f.default is MISSING or f.name == "note")


class SummaryError(ValueError):
    """A summary file is unreadable, is not JSON, or does not have the summary's shape."""


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars and arrays to Python, NaN/inf/NA to null, containers recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    import pandas as pd

    # pd.NA and pd.NaT are "missing": null, never the string "<NA>".
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def write_summary(path: str | Path, *, scope: str, code: str, name: str, headline: Mapping[str, Any],
                  flags: Sequence[Flag], provenance: Mapping[str, Any], parameters: Mapping[str, Any],
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write a report's summary as JSON, atomically (temp file + rename): NaN becomes null.

    ``extra``: further keys (``level``, ``flagged_regions``, ``procedure``, ``election_tests``, ``profile``).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    not_flags = [type(f).__name__ for f in flags if not isinstance(f, Flag)]
    if not_flags:
        raise TypeError(f"flags must be Flag objects, got {', '.join(sorted(set(not_flags)))}")
    body = {
        "scope": scope,
        "code": str(code),
        "name": str(name),
        "headline": _plain(dict(headline)),
        "flags": [_plain(asdict(f)) for f in flags],
        "provenance": _plain(dict(provenance)),
        "parameters": _plain(dict(parameters)),
    }
    clash = sorted(set(extra or {}) & set(body))
    if clash:
        raise ValueError(f"extra summary keys clash with the summary's own: {', '.join(clash)}")
    body.update(_plain(dict(extra or {})))
    text = json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False)
    return write_atomic(path, text)


def _shape_problems(body: Any) -> list[str]:
    """What is wrong with a parsed summary (empty when nothing is)."""
    if not isinstance(body, dict):
        return [f"top level is {type(body).__name__}, not an object"]
    problems = [f"lacks {key!r}" for key in SUMMARY_KEYS if key not in body]
    if problems:
        return problems
    if body["scope"] not in SCOPES:
        problems.append(f"scope is {body['scope']!r}, not one of {SCOPES}")
    for key in ("code", "name"):
        if not isinstance(body[key], str):
            problems.append(f"{key} is {type(body[key]).__name__}, not a string")
    for key in ("headline", "provenance", "parameters"):
        if not isinstance(body[key], dict):
            problems.append(f"{key} is {type(body[key]).__name__}, not an object")
    if isinstance(body["headline"], dict):
        odd = [k for k, v in body["headline"].items() if not (v is None or isinstance(v, (str, int, float)))]
        if odd:
            problems.append(f"headline values must be numbers or strings: {', '.join(odd)}")
    if not isinstance(body["flags"], list):
        problems.append(f"flags is {type(body['flags']).__name__}, not a list")
    else:
        for i, flag in enumerate(body["flags"]):
            missing = [k for k in FLAG_KEYS if not isinstance(flag, dict) or k not in flag]
            if missing:
                problems.append(f"flag {i} lacks {', '.join(missing)}")
            elif not isinstance(flag["flagged"], bool):
                problems.append(f"flag {i}: flagged is not true/false")
    return problems


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read a summary written by ``write_summary`` and check its shape; ``SummaryError`` says what is wrong."""
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SummaryError(f"{path}: not a readable summary ({err})") from None
    problems = _shape_problems(body)
    if problems:
        raise SummaryError(f"{path}: not a report summary: {'; '.join(problems)}")
    return body
