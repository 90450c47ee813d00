"""Election profiles: what an election's forms promise, so that each check is applied only where it holds.

A profile says which arithmetic and capacity rules a correct form satisfies (``rules``), whether a
unit is one polling station or an aggregate of stations (``unit``), the most voters one station
serves (``capacity``; None where unknown), whether the numbers were read by OCR from photographed
forms (``ocr``: only then are "misreadings" a question), and which turnout definitions the table
supports. Sirekap TPS 2024, Indonesian aggregates (Sirekap and KawalPemilu desa / kecamatan tables)
and a generic polling-station profile for imported tables ship; a mapping names its profile and
may add limits (``max_registered``: the largest roll of one station).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

#: Columns that only a Sirekap TPS table has (administrasi block): they identify the profile.
SIREKAP_MARKERS = ("dpt", "pemilih_dpt_j")
#: A Sirekap TPS code: 13 characters, digits but for the letters of an overseas (99) country code.
SIREKAP_TPS_CODE = r"[0-9]{2}[0-9A-Z]{11}"


class ProfileError(ValueError):
    """An unknown profile, an unknown limit, or a profile that does not fit the table."""


@dataclass(frozen=True)
class Profile:
    """What an election's forms promise (see the module docstring)."""

    name: str
    description: str
    #: "station": one row is one polling station; "aggregate": a row sums several stations.
    unit: str
    #: Which rule set ``consistency.rules_for`` builds: "sirekap", "generic" or "aggregate".
    rules: str
    #: The most voters on one station's roll (Sirekap: 300 on the DPT); None: no such limit is known.
    capacity: int | None = None
    #: Reserve ballots as a share of the roll (Sirekap: 2 %).
    reserve: float = 0.0
    #: Voters allowed above a full station before a number is impossible (DPTb + DPK in Sirekap).
    headroom: int = 0
    #: Numbers read by OCR from photographed forms: misreadings and their TSM synthesis apply.
    ocr: bool = False
    #: The table's turnout definitions (``turnout.TURNOUT_DEFINITIONS`` keys).
    turnout_definitions: tuple[str, ...] = ("registered",)
    #: Column holding the number of stations an aggregate unit sums (None: unknown).
    stations_column: str | None = None
    #: Columns a table must have to fit the profile (beyond the contract's own).
    requires: tuple[str, ...] = ()
    #: A pattern every unit id must match to fit the profile (Sirekap: the 13-digit TPS code); None: any.
    unit_pattern: str | None = None

    @property
    def single_station(self) -> bool:
        """Whether a unit is one polling station (digit nulls for counts of one station apply)."""
        return self.unit == "station"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["turnout_definitions"] = list(self.turnout_definitions)
        return out

    def label(self) -> str:
        """One line for a page: the profile, the unit, and its limits."""
        limits = f"; at most {self.capacity:,} on one station's roll" if self.capacity else ""
        kind = "one polling station per row" if self.single_station else "aggregates of polling stations"
        return f"{self.name} ({self.description}; {kind}{limits})"


PROFILES: dict[str, Profile] = {
    "sirekap_tps_2024": Profile(
        "sirekap_tps_2024", "Sirekap C.Hasil forms of one TPS, Indonesia 2024: 22 arithmetic and capacity rules",
        unit="station", rules="sirekap", capacity=300, reserve=0.02, headroom=100, ocr=True,
        turnout_definitions=("registered", "dpt"), unit_pattern=SIREKAP_TPS_CODE),
    "indonesia_aggregate": Profile(
        "indonesia_aggregate", "Indonesian desa or kecamatan totals (Sirekap or KawalPemilu aggregates)",
        unit="aggregate", rules="aggregate", ocr=False, stations_column="stations"),
    "polling_station": Profile(
        "polling_station", "an imported polling-station table: candidates sum to valid, valid + invalid = voters, "
        "voters <= registered", unit="station", rules="generic"),
}
#: Limits a mapping may set on top of its profile.
LIMIT_KEYS = ("max_registered",)


def get_profile(name: str, **limits: Any) -> Profile:
    """A shipped profile by name, with a mapping's limits (``max_registered``) applied."""
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; shipped: {', '.join(PROFILES)}")
    unknown = sorted(set(limits) - set(LIMIT_KEYS))
    if unknown:
        raise ProfileError(f"unknown profile limits {', '.join(unknown)}; allowed: {', '.join(LIMIT_KEYS)}")
    profile = PROFILES[name]
    if limits.get("max_registered") is not None:
        value = limits["max_registered"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProfileError(f"max_registered must be a positive whole number, got {value!r}")
        profile = replace(profile, capacity=value)
    return profile


def check_fits(profile: Profile, columns, unit_ids=None) -> None:
    """``ProfileError`` when a table does not fit its profile: a column it needs is missing, or a unit id
    is not of the profile's kind (a Sirekap TPS profile on a table whose units are not 13-digit TPS codes)."""
    missing = [c for c in profile.requires if c not in set(columns)]
    if missing:
        raise ProfileError(f"profile {profile.name} does not fit this table: it needs {', '.join(missing)} "
                           f"(its columns: {', '.join(map(str, columns))})")
    if profile.unit_pattern and unit_ids is not None:
        import pandas as pd

        ids = pd.Series(pd.Index(unit_ids).astype(str))
        wrong = ids[~ids.str.fullmatch(profile.unit_pattern)]
        if len(wrong):
            raise ProfileError(f"profile {profile.name} does not fit this table: {len(wrong):,} unit ids are not "
                               f"{profile.unit_pattern} (e.g. {wrong.iloc[0]!r})")


def profile_spec(profile: Profile) -> dict[str, Any]:
    """What an Election stores in its metadata: the profile's name and any limit that differs from the shipped one."""
    spec: dict[str, Any] = {"name": profile.name}
    if profile.capacity != PROFILES[profile.name].capacity:
        spec["max_registered"] = profile.capacity
    return spec


def infer_profile(columns, unit_ids=None) -> Profile:
    """The profile of a table that does not name one: Sirekap TPS when it has the administrasi block or
    its units are all 13-digit TPS codes, else generic."""
    columns = set(columns)
    if any(c in columns for c in SIREKAP_MARKERS):
        return PROFILES["sirekap_tps_2024"]
    if unit_ids is not None and len(unit_ids):
        import pandas as pd

        if pd.Series(pd.Index(unit_ids).astype(str)).str.fullmatch(SIREKAP_TPS_CODE).all():
            return PROFILES["sirekap_tps_2024"]
    return PROFILES["polling_station"]


def profile_of(election) -> Profile:
    """The Election's profile: the one its metadata names, else ``infer_profile`` of its columns."""
    spec: Mapping[str, Any] = getattr(election, "profile", None) or {}
    if spec:
        spec = dict(spec)
        return get_profile(spec.pop("name"), **spec)
    return infer_profile(election.table.columns, election.table.index)
