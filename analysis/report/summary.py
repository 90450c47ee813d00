"""The machine-readable summary each report writes beside its HTML; the index and tests read it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

SUMMARY_KEYS = ("scope", "code", "name", "headline", "flags", "provenance", "parameters")


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


class SummaryError(ValueError):
    """A summary file is missing keys or is not JSON."""


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to null, containers recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def write_summary(path: str | Path, *, scope: str, code: str, name: str, headline: Mapping[str, Any],
                  flags: Sequence[Flag], provenance: Mapping[str, Any], parameters: Mapping[str, Any]) -> Path:
    """Write a report summary as JSON, atomically (temp file + rename)."""
    if scope not in ("province", "national"):
        raise ValueError(f"scope must be 'province' or 'national', got {scope!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "scope": scope, "code": str(code), "name": str(name), "headline": _plain(dict(headline)),
        "flags": [_plain(asdict(f)) for f in flags], "provenance": _plain(dict(provenance)),
        "parameters": _plain(dict(parameters)),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read and check a summary written by ``write_summary``."""
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SummaryError(f"{path}: not a readable summary ({err})") from None
    missing = [k for k in SUMMARY_KEYS if k not in body] if isinstance(body, dict) else list(SUMMARY_KEYS)
    if missing:
        raise SummaryError(f"{path}: summary lacks {', '.join(missing)}")
    return body
