"""Paths of the Sirekap public JSON API (sirekap-api.md of the shared docs), built from validated codes.

Every region code is checked against ``^[0-9]{2,13}$`` (or ``0``, the whole country) and against the
lengths of the hierarchy (2, 4, 6, 10, 13) before it becomes part of a path, so that nothing read from
the network can steer a path or a URL.

The candidate lists of the legislative ballots are not in sirekap-api.md: their paths come from
public scrapers of 2024. The electoral districts (dapil) of a ballot are listed in
``wilayah/pemilu/pdpr/dapil_dpr.json`` (DPR RI, items ``{"nama", "id", "kode"}``),
``wilayah/pemilu/pdprdp/{p}.json`` (DPRD provinsi) and ``wilayah/pemilu/pdprdk/{p}/{k}.json``
(DPRD kabupaten/kota; items ``{"id_dapil", "kode_dapil", "nama_dapil"}``), and the candidates of a
dapil in ``pemilu/caleg/partai/{dapil}.json`` as ``{party number: {candidate id: {"nama",
"nomor_urut", "jenis_kelamin", "tempat_tinggal"}}}``. Dapil codes are digit strings, checked like
region codes (:func:`check_dapil`) before they become paths.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

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


def chain(code: str) -> list[str]:
    """The codes from the province down to ``code`` (``3101011001`` -> 31, 3101, 310101, 3101011001)."""
    code = check_code(code)
    if code == "0":
        return []
    return [code[:n] for n in _PREFIXES if n <= len(code)]


#: Code length of a region -> code length of its children ("0", the country, has provinces).
_CHILD_LENGTH = {1: 2, **dict(zip(_PREFIXES, _PREFIXES[1:]))}


def _child_rule(parent: Any) -> tuple[str, int] | None:
    """(prefix, length) of a region's child codes, or None if ``parent`` is no region code."""
    if type(parent) is not str:
        return None
    if parent == "0":
        return "", _CHILD_LENGTH[1]
    if not (parent.isascii() and parent.isdigit()):  # "" too
        return None
    return parent, _CHILD_LENGTH.get(len(parent), -1)


def _fits(child: Any, prefix: str, width: int) -> bool:
    """Whether ``child`` is a code of ``width`` ASCII digits beginning with ``prefix`` (a rule of ``_child_rule``)."""
    return type(child) is str and len(child) == width and child.startswith(prefix) and child.isascii() and child.isdigit()


def is_child(parent: str, child: str) -> bool:
    """Whether ``child`` is a direct child code of ``parent`` in the hierarchy.

    Plain string tests, no exception or regex: a snapshot build asks this of every TPS in the tree.
    """
    rule = _child_rule(parent)
    return rule is not None and _fits(child, *rule)


def children(parent: str, items: Any) -> list[tuple[str, Any]]:
    """(``kode``, ``nama``) of the items of a region list that are direct children of ``parent`` (``is_child``).

    The parent's rule is made once for the list: a snapshot build reads a list per desa, ~10^5 of them.
    """
    rule = _child_rule(parent)
    if rule is None or not isinstance(items, list):
        return []
    return [(item["kode"], item.get("nama")) for item in items if isinstance(item, dict) and _fits(item.get("kode"), *rule)]


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


class NoEvidencedPath(ValueError):
    """A path of the API that no public evidence of 2024 shows: the scraper refuses to guess it."""


def hr_path(ballot: str, code: str) -> str:
    """The official tiered recapitulation (``hr``) of the presidential ballot for a region.

    Only ppwp's ``hr`` follows the region chain (confirmed down to kabupaten); the legislative ``hr`` is
    keyed by dapil (:func:`hr_dapil_paths`), and no path is known for DPD: those raise NoEvidencedPath.
    """
    check_ballot(ballot)
    code = check_code(code)
    if ballot != "ppwp":
        raise NoEvidencedPath(HR_REFUSAL.get(ballot, f"no evidenced hr path for {ballot}"))
    return f"pemilu/hr/{ballot}.json" if code == "0" else f"pemilu/hr/{ballot}/{'/'.join(chain(code))}.json"


#: Why the official recapitulation of a ballot is not fetched (sirekap-api.md: only ppwp's region chain and
#: DPR RI's ``pemilu/hr/pdpr/{dapil}dc.json`` / ``{dapil}dd.json`` were seen).
HR_REFUSAL = {
    "pdpd": "no path of the official recapitulation (hr) of the DPD ballot is known from 2024; --official is refused for pdpd",
    "pdprdp": "no path of the official recapitulation (hr) of DPRD provinsi is known from 2024 (only DPR RI's "
              "pemilu/hr/pdpr/{dapil}dc.json and {dapil}dd.json were seen); --official is refused for pdprdp",
    "pdprdk": "no path of the official recapitulation (hr) of DPRD kabupaten/kota is known from 2024 (only DPR RI's "
              "pemilu/hr/pdpr/{dapil}dc.json and {dapil}dd.json were seen); --official is refused for pdprdk",
}


def hr_dapil_paths(ballot: str, dapil: str) -> list[str]:
    """The DPR RI official recapitulation of a dapil: ``pemilu/hr/pdpr/{dapil}dc.json`` and ``{dapil}dd.json``
    (the only legislative ``hr`` paths seen in 2024; what ``dc`` and ``dd`` stand for is not documented)."""
    check_ballot(ballot)
    if ballot != "pdpr":
        raise NoEvidencedPath(HR_REFUSAL.get(ballot, f"{ballot} has no dapil recapitulation path"))
    dapil = check_dapil(dapil)
    return [f"pemilu/hr/pdpr/{dapil}dc.json", f"pemilu/hr/pdpr/{dapil}dd.json"]


def hhcd_path(ballot: str, dapil: str) -> str:
    """Sirekap's per-dapil candidate totals: ``pemilu/hhcd/pdpr/{dapil}.json`` (``0``: national, by dapil),
    ``pemilu/hhcd/pdprdp/{p}/{dapil}.json``, ``pemilu/hhcd/pdprdk/{p}/{k}/{dapil}.json``."""
    check_ballot(ballot)
    if ballot not in LEGISLATIVE_PARTY_BALLOTS:
        raise ValueError(f"{ballot} has no dapil aggregates (hhcd)")
    if ballot == "pdpr" and dapil == "0":
        return "pemilu/hhcd/pdpr/0.json"
    dapil = check_dapil(dapil)
    if ballot == "pdpr":
        return f"pemilu/hhcd/pdpr/{dapil}.json"
    if ballot == "pdprdp":
        return f"pemilu/hhcd/pdprdp/{dapil[:2]}/{dapil}.json"
    if len(dapil) < 5:
        raise CodeError(f"a DPRD kabupaten/kota dapil code has 6 digits (kabupaten and number); got {dapil!r}")
    return f"pemilu/hhcd/pdprdk/{dapil[:2]}/{dapil[:4]}/{dapil}.json"


#: Trees that do not exist (sirekap-api.md): DKI Jakarta (31) elects no DPRD kabupaten/kota; voters abroad
#: (99) vote for president and DPR RI only. Region prefix -> the ballots it has no tree for.
NOT_APPLICABLE = {"31": ("pdprdk",), "99": ("pdpd", "pdprdp", "pdprdk")}


def not_applicable(ballot: str, code: str) -> str | None:
    """Why ``ballot`` has no tree at region ``code`` (a reason to record), or None where it has one."""
    check_ballot(ballot)
    code = check_code(code)
    if code == "0" or ballot not in NOT_APPLICABLE.get(code[:2], ()):
        return None
    if code.startswith("31"):
        return "not applicable: DKI Jakarta (31) elects no DPRD kabupaten/kota"
    return f"not applicable: voters abroad (99) vote only for president and DPR RI, not {ballot}"


#: A dapil code: digits only (DPR RI dapils are 4 digits, the province code and a number: ``3101``).
DAPIL_CODE = re.compile(r"^[0-9]{2,13}$")
#: DPR RI dapil of the voters abroad (province 99): DKI Jakarta II.
OVERSEAS_DPR_DAPIL = "3102"
DPR_DAPILS_PATH = "wilayah/pemilu/pdpr/dapil_dpr.json"


def check_dapil(code: object) -> str:
    """The dapil code as a str if it is 2 to 13 ASCII digits; else CodeError."""
    if not (isinstance(code, str) and code.isascii() and DAPIL_CODE.fullmatch(code)):
        raise CodeError(f"dapil code must be a string of 2 to 13 digits; got {str(code)[:40]!r}")
    return code


def dapil_list_path(ballot: str, code: str = "0") -> str | None:
    """The list of the dapils of a legislative ballot in a region, or None where the ballot has no such list.

    DPR RI has one national list (any ``code``); DPRD provinsi one per province (``code`` is a province),
    DPRD kabupaten/kota one per kabupaten (``code`` is a kabupaten). Voters abroad (99) elect no DPRD.
    """
    check_ballot(ballot)
    code = check_code(code)
    if ballot == "pdpr":
        return DPR_DAPILS_PATH
    if ballot == "pdprdp" and len(code) == 2 and code != "99":
        return f"wilayah/pemilu/pdprdp/{code}.json"
    if ballot == "pdprdk" and len(code) == 4 and not code.startswith("99"):
        return f"wilayah/pemilu/pdprdk/{code[:2]}/{code}.json"
    return None


def dapil_code_of(item: object) -> str | None:
    """The checked dapil code of an item of a dapil list (``kode_dapil``, else ``kode``), or None."""
    if not isinstance(item, dict):
        return None
    code = item.get("kode_dapil", item.get("kode"))
    try:
        return check_dapil(code)
    except CodeError:
        return None


def dapil_in_region(ballot: str, region: str, dapil: str) -> bool:
    """Whether a scrape of ``region`` needs the candidates of ``dapil`` (an item of the ballot's dapil list).

    DPR RI dapil codes begin with their province's code, so the national list is cut to the region's
    province (abroad: DKI Jakarta II). DPRD lists are per province or kabupaten already and are taken
    whole: a region below them (a kecamatan, say) gets every dapil of its province or kabupaten, since
    the lists do not say which kecamatan a dapil covers.
    """
    region = check_code(region)
    if ballot != "pdpr" or region == "0":
        return True
    if region.startswith("99"):
        return dapil == OVERSEAS_DPR_DAPIL
    return dapil.startswith(region[:2])


def candidate_list_path(dapil: str) -> str:
    """The candidates of a dapil by party: ``pemilu/caleg/partai/{dapil}.json`` (DPR RI and DPRD alike)."""
    return f"pemilu/caleg/partai/{check_dapil(dapil)}.json"


def contestant_paths(ballot: str, provinces: Iterable[str] = ()) -> list[str]:
    """The candidate or party lists a ballot needs: ``pemilu/ppwp.json``, ``pemilu/partai.json`` or the DPD lists."""
    check_ballot(ballot)
    if ballot == "ppwp":
        return ["pemilu/ppwp.json"]
    if ballot == "pdpd":
        # DPD candidates stand per province (the province is the electoral district).
        return [f"pemilu/caleg/dpd/{check_code(p)}.json" for p in provinces if len(p) == 2]
    return ["pemilu/partai.json"]


_DAPILS = re.compile(r"wilayah/pemilu/(?:pdpr/dapil_dpr|pdprdp/(?P<p>[0-9]{2})|pdprdk/(?P<kp>[0-9]{2})/(?P<k>[0-9]{4}))\.json")
_CANDIDATES = re.compile(r"pemilu/caleg/partai/(?P<dapil>[0-9]{2,13})\.json")
#: Every path _DAPILS or _CANDIDATES matches begins with one of these (a cheap filter before classify).
LIST_PREFIXES = ("wilayah/pemilu/pdpr", "pemilu/caleg/partai/")
_TPS_BODY = re.compile(r"^pemilu/hhcw/(?P<ballot>[a-z]+)/(?:[0-9]+/){4}(?P<code>[0-9]{13})\.json$")
#: Region lists live under the one tree the scraper walks (``WILAYAH_BALLOT``); the legislative
#: ballots' trees beside it hold dapil lists, never read as regions.
_WILAYAH = re.compile(rf"^wilayah/pemilu/{WILAYAH_BALLOT}/(?:(?P<code>(?:[0-9]+/)*[0-9]+)|0)\.json$")
_HHCD = re.compile(r"pemilu/hhcd/(?P<ballot>pdpr|pdprdp|pdprdk)/(?:[0-9]{2}/(?:[0-9]{4}/)?)?(?P<dapil>[0-9]{1,13})\.json")
_HHCW = re.compile(r"^pemilu/hhcw/(?P<ballot>[a-z]+)(?:/(?P<code>(?:[0-9]+/)*[0-9]+))?\.json$")


def tps_body_pattern(ballot: str) -> re.Pattern:
    """The paths ``classify`` calls TPS bodies of ``ballot``, with the TPS code as group ``code``."""
    return re.compile(_TPS_BODY.pattern.replace("(?P<ballot>[a-z]+)", re.escape(check_ballot(ballot))))


def classify(path: str) -> tuple[str, str | None, str | None]:
    """(kind, ballot, code) of a stored API path.

    kind is tps, hhcw, wilayah (region lists), dapils (a dapil list: code is its province or kabupaten,
    ``0`` for DPR RI), candidates (a dapil's candidate list: code is the dapil), hr, contestants or other.
    """
    match = _DAPILS.fullmatch(path)
    if match and (not match["k"] or match["k"].startswith(match["kp"])):
        ballot = "pdprdk" if match["k"] else "pdprdp" if match["p"] else "pdpr"
        return "dapils", ballot, match["k"] or match["p"] or "0"
    match = _CANDIDATES.fullmatch(path)
    if match:
        return "candidates", None, match["dapil"]
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
    match = _HHCD.fullmatch(path)
    if match:
        return "hhcd", match["ballot"], match["dapil"]
    if path in ("pemilu/ppwp.json", "pemilu/partai.json") or path.startswith("pemilu/caleg/"):
        return "contestants", None, None
    return "other", None, None
