"""Paths of the Sirekap public JSON API (sirekap-api.md of the shared docs), built from validated codes.

Every region code is checked against ``^[0-9]{2,13}$`` (or ``0``, the whole country) and against the
lengths of the hierarchy (2, 4, 6, 10, 13) before it becomes part of a path, so that nothing read from
the network can steer a path or a URL.
"""

from __future__ import annotations

import re
from typing import Iterable

#: Ballots of Pemilu 2024: president, DPR RI, DPD, DPRD provinsi, DPRD kabupaten/kota.
BALLOTS: tuple[str, ...] = ("ppwp", "pdpr", "pdpd", "pdprdp", "pdprdk")
LEGISLATIVE_PARTY_BALLOTS: tuple[str, ...] = ("pdpr", "pdprdp", "pdprdk")
CODE = re.compile(r"^[0-9]{2,13}$")
#: Code length -> level name; the parent of a code is its prefix of the previous length.
LENGTHS: dict[int, str] = {2: "province", 4: "regency", 6: "district", 10: "village", 13: "tps"}
_PREFIXES = (2, 4, 6, 10, 13)
DATA_HOST = "https://sirekap-obj-data.kpu.go.id"
REFERER = "https://pemilu2024.kpu.go.id/"
#: The region tree is one for every ballot; public scrapers of 2024 walked it under ``ppwp``.
WILAYAH_BALLOT = "ppwp"


class CodeError(ValueError):
    """A region code that may not be used in a path or URL."""


def check_ballot(ballot: str) -> str:
    if ballot not in BALLOTS:
        raise ValueError(f"unknown ballot {ballot!r}; one of {', '.join(BALLOTS)}")
    return ballot


def check_code(code: object) -> str:
    """The code as a str if it is ``0`` or a region code of 2, 4, 6, 10 or 13 digits; else CodeError."""
    text = code if isinstance(code, str) else None
    if text == "0":
        return text
    if text is None or not CODE.fullmatch(text) or len(text) not in LENGTHS:
        raise CodeError(f"region code must be '0' or a string of 2, 4, 6, 10 or 13 digits; got {str(code)[:40]!r}")
    return text


def level_of(code: str) -> str:
    """``country`` for ``0``, else province / regency / district / village / tps."""
    code = check_code(code)
    return "country" if code == "0" else LENGTHS[len(code)]


def chain(code: str) -> list[str]:
    """The codes from the province down to ``code`` (``3101011001`` -> 31, 3101, 310101, 3101011001)."""
    code = check_code(code)
    if code == "0":
        return []
    return [code[:n] for n in _PREFIXES if n <= len(code)]


#: Code length of a region -> code length of its children ("0", the country, has provinces).
_CHILD_LENGTH = {1: 2, **dict(zip(_PREFIXES, _PREFIXES[1:]))}


def is_child(parent: str, child: str) -> bool:
    """Whether ``child`` is a direct child code of ``parent`` in the hierarchy.

    Plain string tests, no exception or regex: a snapshot build asks this of every TPS in the tree.
    """
    if type(child) is not str or type(parent) is not str:
        return False
    if parent == "0":
        parent = ""
    elif not (parent.isascii() and parent.isdigit()):
        return False
    return (len(child) == _CHILD_LENGTH.get(len(parent) or 1) and child.startswith(parent)
            and child.isascii() and child.isdigit())


def _tree(root: str, code: str) -> str:
    code = check_code(code)
    return f"{root}/0.json" if code == "0" else f"{root}/{'/'.join(chain(code))}.json"


def wilayah_path(code: str) -> str:
    """The list of children of a region: ``wilayah/pemilu/ppwp/{p}/{k}.json``."""
    return _tree(f"wilayah/pemilu/{WILAYAH_BALLOT}", code)


def hhcw_path(ballot: str, code: str) -> str:
    """Sirekap's reading for a region (a table of its children) or a TPS body (13-digit code)."""
    check_ballot(ballot)
    code = check_code(code)
    return f"pemilu/hhcw/{ballot}.json" if code == "0" else f"pemilu/hhcw/{ballot}/{'/'.join(chain(code))}.json"


def hr_path(ballot: str, code: str) -> str:
    """The official tiered recapitulation (``hr``) for a region."""
    check_ballot(ballot)
    code = check_code(code)
    return f"pemilu/hr/{ballot}.json" if code == "0" else f"pemilu/hr/{ballot}/{'/'.join(chain(code))}.json"


def contestant_paths(ballot: str, provinces: Iterable[str] = ()) -> list[str]:
    """The candidate or party lists a ballot needs: ``pemilu/ppwp.json``, ``pemilu/partai.json`` or the DPD lists."""
    check_ballot(ballot)
    if ballot == "ppwp":
        return ["pemilu/ppwp.json"]
    if ballot == "pdpd":
        # DPD candidates stand per province (the province is the electoral district).
        return [f"pemilu/caleg/dpd/{check_code(p)}.json" for p in provinces if len(p) == 2]
    return ["pemilu/partai.json"]


_TPS_BODY = re.compile(r"^pemilu/hhcw/(?P<ballot>[a-z]+)/(?:[0-9]+/){4}(?P<code>[0-9]{13})\.json$")
_WILAYAH = re.compile(r"^wilayah/pemilu/[a-z]+/(?:(?P<code>(?:[0-9]+/)*[0-9]+)|0)\.json$")
_HHCW = re.compile(r"^pemilu/hhcw/(?P<ballot>[a-z]+)(?:/(?P<code>(?:[0-9]+/)*[0-9]+))?\.json$")


def tps_body_pattern(ballot: str) -> re.Pattern:
    """The paths ``classify`` calls TPS bodies of ``ballot``, with the TPS code as group ``code``."""
    return re.compile(_TPS_BODY.pattern.replace("(?P<ballot>[a-z]+)", re.escape(check_ballot(ballot))))


def classify(path: str) -> tuple[str, str | None, str | None]:
    """(kind, ballot, code) of a stored API path; kind is tps, hhcw, wilayah, hr, contestants or other."""
    match = _TPS_BODY.match(path)
    if match:
        return "tps", match["ballot"], match["code"]
    match = _WILAYAH.match(path)
    if match:
        code = match["code"]
        return "wilayah", None, code.rsplit("/", 1)[-1] if code else "0"
    match = _HHCW.match(path)
    if match:
        code = match["code"]
        return "hhcw", match["ballot"], code.rsplit("/", 1)[-1] if code else "0"
    if path.startswith("pemilu/hr/"):
        return "hr", None, None
    if path in ("pemilu/ppwp.json", "pemilu/partai.json") or path.startswith("pemilu/caleg/"):
        return "contestants", None, None
    return "other", None, None
