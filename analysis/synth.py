"""Synthetic Sirekap-shaped elections, clean or with planted irregularities and their ground truth.

The clean model: DPT per TPS (at most 300), turnout and candidate shares on the logit scale with
random effects at every level (province, regency, district, village, TPS), binomial / multinomial
votes, DPTb and DPK voters, invalid ballots. National shares are calibrated to the 2024 official
result (24.95 / 58.59 / 16.47 %). Irregularities follow the literature's models:
- OCR misreadings: one digit inserted, dropped or confused in one number of a form;
- incremental ballot stuffing (Klimek et al. 2012, PNAS 109:16469, the f_i / alpha model);
- extreme stuffing: a cluster of TPS at ~100 % turnout and ~100 % for one candidate (f_e);
- fabricated round percentages (Kobak, Shpilkin & Pshenichnikov 2016, Ann. Appl. Stat. 10:54);
- directional misreadings: OCR-like edits (a digit inserted, or confused upwards) that only ever
  inflate one candidate's number, in one province: the "systematic" pattern the TSM synthesis
  (analysis/tsm.py) must tell apart from the symmetric OCR noise above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .election import Election, table_sha256
from .sources.sirekap.parse import ADMINISTRASI_FIELDS

#: Official national shares (KPU decree 360/2024), used to calibrate the synthetic election.
OFFICIAL_SHARES = {"01": 0.2495, "02": 0.5859, "03": 0.1647}
CANDIDATES = tuple(OFFICIAL_SHARES)
LEVELS = ("province", "regency", "district", "village")

#: Which province carries which planted irregularity by default (all others are clean apart
#: from OCR misreadings, which are spread everywhere).
DEFAULT_PLAN: Mapping[str, str] = {
    "incremental_stuffing": "73",  # Sulawesi Selatan
    "extreme_cluster": "18",  # Lampung
    "round_percentages": "61",  # Kalimantan Barat
    "directional_misreading": "35",  # Jawa Timur
}
#: Plants that change what OCR read (after the form was written), not the form itself.
MISREADING_KINDS = ("ocr_misreading", "directional_misreading")

# OCR confusions of handwritten digits: pairs seen in Sirekap complaints ("1 became 4", 1/7,
# 3/8, 0/8) are more likely than others.
_CONFUSIONS = {
    "0": "86", "1": "747", "2": "7", "3": "88", "4": "11", "5": "6", "6": "50", "7": "11",
    "8": "3300", "9": "4",
}



def provinces() -> pd.DataFrame:
    """The 38 provinces of 2024 with their Sirekap codes, names and real region/TPS counts."""
    path = files("analysis") / "data" / "provinces.csv"
    with path.open("r", encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"code": str, "name": str})
    return table.set_index("code")


@dataclass(frozen=True)
class SyntheticElection:
    """A synthetic election, the irregularities planted in it, and the parameters that made it."""

    election: Election
    truth: pd.DataFrame
    parameters: Mapping[str, object] = field(default_factory=dict)

    def planted_provinces(self) -> dict[str, list[str]]:
        """Irregularity kind -> provinces where it was planted (OCR misreadings excluded)."""
        kinds = self.truth[self.truth["kind"] != "ocr_misreading"]
        return {k: sorted(g["province"].unique()) for k, g in kinds.groupby("kind")}

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write the election to ``path`` and the ground truth beside it (``*-truth.csv``)."""
        path = Path(path)
        self.election.to_parquet(path)
        truth_path = path.with_name(path.stem + "-truth.csv")
        self.truth.to_csv(truth_path, index=False)
        return path, truth_path


# ------------------------------------------------------------------------------------ structure
def _hierarchy(rng: np.random.Generator, table: pd.DataFrame, scale: float, min_tps: int) -> pd.DataFrame:
    """Codes that nest like Sirekap's: 2 / 4 / 6 / 10 / 13 digits, TPS numbered within a desa."""
    frames = []
    for code, row in table.iterrows():
        n_tps = max(min_tps, int(round(row["tps"] * scale)))
        n_regency = int(min(row["regencies"], max(2, n_tps // 60)))
        n_district = int(min(row["districts"], max(n_regency, n_tps // 15)))
        n_village = int(min(row["villages"], max(n_district, n_tps // 5)))
        # Kabupaten are numbered from 01, kota from 71, as in Sirekap.
        n_kota = n_regency // 5
        regency_codes = [f"{code}{i:02d}" for i in range(1, n_regency - n_kota + 1)]
        regency_codes += [f"{code}{71 + i:02d}" for i in range(n_kota)]
        district_of = rng.integers(0, n_regency, n_district)
        district_of[:n_regency] = np.arange(n_regency)  # every regency has a district
        district_codes = []
        for d_index, r in enumerate(np.sort(district_of)):
            district_codes.append(regency_codes[r])
        district_codes = _number_children(district_codes, 2)
        village_of = rng.integers(0, n_district, n_village)
        village_of[:n_district] = np.arange(n_district)
        village_parent = [district_codes[d] for d in np.sort(village_of)]
        village_codes = _number_children(village_parent, 4, start=2001)
        # TPS per desa varies (big desa have more); every desa gets at least one.
        weights = rng.gamma(2.0, 1.0, n_village)
        tps_of = np.concatenate([np.arange(n_village), rng.choice(n_village, n_tps - n_village, p=weights / weights.sum())])
        tps_parent = [village_codes[v] for v in np.sort(tps_of)]
        tps_codes = _number_children(tps_parent, 3, start=1)
        frames.append(pd.DataFrame({
            "unit_id": tps_codes,
            "province": code,
            "province_name": row["name"],
        }))
    units = pd.concat(frames, ignore_index=True)
    units["regency"] = units["unit_id"].str[:4]
    units["district"] = units["unit_id"].str[:6]
    units["village"] = units["unit_id"].str[:10]
    return units


def _number_children(parents: Sequence[str], width: int, start: int = 1) -> list[str]:
    """Append a running number within each parent (parents must be grouped together)."""
    out, counter, previous = [], start, None
    for parent in parents:
        counter = start if parent != previous else counter + 1
        previous = parent
        out.append(f"{parent}{counter:0{width}d}")
    return out


def _effects(rng: np.random.Generator, units: pd.DataFrame, sds: Sequence[float], dim: int = 1) -> np.ndarray:
    """Sum of normal random effects per level (province ... village) plus a TPS effect."""
    total = np.zeros((len(units), dim))
    for level, sd in zip(LEVELS, sds[:-1]):
        codes, index = np.unique(units[level].to_numpy(), return_inverse=True)
        total += rng.normal(0.0, sd, (len(codes), dim))[index]
    total += rng.normal(0.0, sds[-1], (len(units), dim))
    return total


def _softmax(eta: np.ndarray) -> np.ndarray:
    eta = eta - eta.max(axis=1, keepdims=True)
    expd = np.exp(eta)
    return expd / expd.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------ clean model
def _clean_votes(rng: np.random.Generator, units: pd.DataFrame) -> pd.DataFrame:
    n = len(units)
    # Most TPS are drawn up near the 300 cap; a tail of small ones (remote desa).
    dpt = np.clip(np.round(300 * rng.beta(5.0, 1.6, n)), 20, 300).astype(np.int64)
    turnout_logit = np.log(0.82 / 0.18) + _effects(rng, units, (0.30, 0.20, 0.15, 0.10, 0.20))[:, 0]
    dpt_voters = rng.binomial(dpt, 1 / (1 + np.exp(-turnout_logit)))
    dptb_voters = rng.poisson(1.5, n)
    dpk_voters = rng.poisson(1.0, n)
    voters = dpt_voters + dptb_voters + dpk_voters
    invalid_logit = np.log(0.025 / 0.975) + _effects(rng, units, (0.25, 0.15, 0.10, 0.05, 0.20))[:, 0]
    invalid = rng.binomial(voters, 1 / (1 + np.exp(-invalid_logit)))
    valid = voters - invalid

    # Candidate log-ratios with strong regional differences (Aceh and Java differ as much as
    # real provinces do), calibrated so the vote-weighted national shares hit the official ones.
    effects = _effects(rng, units, (0.60, 0.30, 0.20, 0.10, 0.25), dim=3)
    target = np.array(list(OFFICIAL_SHARES.values()))
    base = np.log(target)
    for _ in range(50):
        probs = _softmax(base + effects)
        achieved = (probs * valid[:, None]).sum(axis=0) / valid.sum()
        base += np.log(target / achieved)
        if np.abs(achieved - target).max() < 1e-5:
            break
    votes = rng.multinomial(valid, _softmax(base + effects))

    frame = pd.DataFrame({
        "dpt": dpt, "dpt_voters": dpt_voters, "dptb_voters": dptb_voters, "dpk_voters": dpk_voters,
        "voters": voters, "invalid": invalid, "valid": valid,
    }, index=units.index)
    for k, candidate in enumerate(CANDIDATES):
        frame[candidate] = votes[:, k]
    return frame


# ------------------------------------------------------------------------------------ irregularities
def _plant_incremental(rng, counts, rows, winner, f_i, theta, alpha):
    """Klimek's incremental fraud: a share x of non-voters become winner votes, and x^alpha of
    the other candidates' votes move to the winner; the form still balances."""
    chosen = rows[rng.random(len(rows)) < f_i]
    x = np.minimum(np.abs(rng.normal(0.0, theta, len(chosen))), 1.0)
    block = counts.loc[chosen]
    stuffed = np.round(x * (block["dpt"] - block["dpt_voters"]).to_numpy()).astype(np.int64)
    others = [c for c in CANDIDATES if c != winner]
    moved = {c: np.round(x**alpha * block[c].to_numpy()).astype(np.int64) for c in others}
    new_winner = block[winner].to_numpy() + stuffed + sum(moved.values())
    records = [
        (unit, winner, int(old), int(new), f"x={share:.3f}, stuffed {s}, moved {m}")
        for unit, old, new, share, s, m in zip(chosen, block[winner], new_winner, x, stuffed, sum(moved.values()))
    ]
    counts.loc[chosen, winner] = new_winner
    for c, m in moved.items():
        counts.loc[chosen, c] = block[c].to_numpy() - m
    for name in ("dpt_voters", "voters", "valid"):
        counts.loc[chosen, name] = block[name].to_numpy() + stuffed
    return records


def _plant_extreme(rng, counts, units, rows, winner, share_of_tps):
    """A cluster (whole districts, so spatially structured) of TPS at 100 % turnout, ~100 % winner."""
    districts = units.loc[rows, "district"]
    order = rng.permutation(districts.unique())
    target = max(1, int(round(share_of_tps * len(rows))))
    chosen: list = []
    for district in order:
        members = districts.index[districts == district].tolist()
        chosen.extend(members)
        if len(chosen) >= target:
            break
    records = []
    for unit in chosen[:target]:
        row = counts.loc[unit]
        voters = int(row["dpt"] + row["dptb_voters"] + row["dpk_voters"])
        invalid = int(rng.integers(0, 2))
        valid = voters - invalid
        stray = int(rng.integers(0, 3))
        new = {c: 0 for c in CANDIDATES}
        new[winner] = valid - stray
        new[[c for c in CANDIDATES if c != winner][0]] = stray
        records.append((unit, winner, row[winner], new[winner], f"turnout 100 %, {new[winner]} of {valid} valid"))
        counts.loc[unit, ["dpt_voters", "voters", "invalid", "valid"]] = [row["dpt"], voters, invalid, valid]
        for c in CANDIDATES:
            counts.loc[unit, c] = new[c]
    return records


def _whole_percent(total: int, target: float, window: int = 3) -> int | None:
    """A count out of ``total`` whose percentage is within 0.05 pp of a whole number near ``target``."""
    for step in range(window + 1):
        for percent in sorted({round(target) - step, round(target) + step}):
            if not 1 <= percent <= 99:
                continue
            count = int(round(percent * total / 100))
            if abs(100 * count / total - percent) < 0.05:
                return count
    return None


def _plant_round(rng, counts, rows, winner, share_of_tps):
    """Fabricated forms: turnout and the winner's share written as whole percentages where the
    TPS's numbers allow it (Kobak et al. 2016's signature); the form still balances."""
    chosen = rows[rng.random(len(rows)) < share_of_tps]
    records = []
    others = [c for c in CANDIDATES if c != winner]
    for unit in chosen:
        row = counts.loc[unit]
        registered = int(row["dpt"] + row["dptb_voters"])
        voters = _whole_percent(registered, 100 * row["voters"] / registered)
        if voters is None or voters <= row["invalid"] + row["dptb_voters"] + row["dpk_voters"]:
            voters = int(row["voters"])
        valid = voters - int(row["invalid"])
        winner_votes = _whole_percent(valid, 100 * row[winner] / max(row["valid"], 1))
        if winner_votes is None:
            continue
        rest = valid - winner_votes
        other_total = sum(row[c] for c in others) or 1
        first = int(round(rest * row[others[0]] / other_total))
        new = {winner: winner_votes, others[0]: first, others[1]: rest - first}
        detail = f"turnout {100 * voters / registered:.2f} %, share {100 * winner_votes / valid:.2f} %"
        records.append((unit, winner, int(row[winner]), winner_votes, detail))
        counts.loc[unit, ["voters", "valid", "dpt_voters"]] = [
            voters, valid, voters - int(row["dptb_voters"]) - int(row["dpk_voters"])]
        for c in CANDIDATES:
            counts.loc[unit, c] = new[c]
    return records


def _misread(rng: np.random.Generator, value: int) -> tuple[int, str]:
    """One OCR edit of a number's digits: inserted, dropped or confused."""
    digits = str(int(value))
    kind = rng.choice(["inserted", "dropped", "substituted"], p=[0.35, 0.2, 0.45])
    if kind == "dropped" and len(digits) < 2:
        kind = "substituted"
    pos = int(rng.integers(0, len(digits) + (kind == "inserted")))
    if kind == "inserted":
        new = digits[:pos] + str(int(rng.integers(0, 10))) + digits[pos:]
    elif kind == "dropped":
        new = digits[:pos] + digits[pos + 1:]
    else:
        options = _CONFUSIONS[digits[pos]]
        new = digits[:pos] + options[int(rng.integers(0, len(options)))] + digits[pos + 1:]
    new = new.lstrip("0") or "0"
    return int(new), str(kind)


def _inflating_misread(rng: np.random.Generator, value: int) -> tuple[int, str]:
    """An OCR-like edit that makes a number larger: a digit inserted ("78" -> "780") or a digit
    confused with a larger one ("1" -> "4" or "7", "3" -> "8", "0" -> "8" or "6", ...)."""
    digits = str(int(value))
    upward = [(pos, new) for pos, d in enumerate(digits) for new in _CONFUSIONS[d] if new > d]
    if upward and rng.random() < 0.5:
        pos, new = upward[int(rng.integers(0, len(upward)))]
        return int(digits[:pos] + new + digits[pos + 1:]), "substituted"
    pos = int(rng.integers(0, len(digits) + 1))
    digit = str(int(rng.integers(1 if pos == 0 else 0, 10)))  # a leading 0 would change nothing
    return int(digits[:pos] + digit + digits[pos:]), "inserted"


def _plant_directional(rng, counts, rows, candidate, share_of_tps, skip):
    """Misreadings in one direction: ``candidate``'s number read larger than written at a share
    of the province's TPS (never a TPS that already has a random misreading)."""
    chosen = rows[(rng.random(len(rows)) < share_of_tps) & ~rows.isin(list(skip))]
    records = []
    for unit in chosen:
        original = int(counts.at[unit, candidate])
        reported, edit = _inflating_misread(rng, original)
        counts.at[unit, candidate] = reported
        records.append((unit, candidate, original, reported, edit))
    return records


def _plant_ocr(rng, counts, share_of_tps):
    fields = list(CANDIDATES) + ["valid", "invalid", "voters", "dpt"]
    weights = np.array([3, 3, 3, 2, 1, 1, 1], dtype=float)
    chosen = counts.index[rng.random(len(counts)) < share_of_tps]
    records = []
    for unit in chosen:
        name = fields[int(rng.choice(len(fields), p=weights / weights.sum()))]
        original = int(counts.at[unit, name])
        reported, edit = _misread(rng, original)
        if reported == original:
            continue
        counts.at[unit, name] = reported
        records.append((unit, name, original, reported, edit))
    return records


# ------------------------------------------------------------------------------------ assembly
def make_election(
    *,
    scale: float = 0.02,
    seed: int = 2024,
    min_tps: int = 400,
    provinces_only: Sequence[str] | None = None,
    plan: Mapping[str, str] | None = None,
    ocr_rate: float = 0.004,
    incremental: Mapping[str, float] | None = None,
    extreme_share: float = 0.04,
    round_share: float = 0.2,
    directional_share: float = 0.015,
    missing_chart: float = 0.03,
    missing_administrasi: float = 0.05,
    winner: str = "02",
) -> SyntheticElection:
    """A synthetic Sirekap-shaped presidential election; same arguments, same data.

    ``scale=1.0`` gives the real number of TPS per province (~820,000); ``min_tps`` keeps small
    provinces analysable at small scales. ``plan`` maps irregularity kind -> province code
    (``DEFAULT_PLAN``; pass ``{}`` for a clean election apart from OCR misreadings, and
    ``ocr_rate=0`` for a fully clean one). ``directional_share`` of the TPS of the
    ``directional_misreading`` province get ``winner``'s number misread upwards; its random
    numbers come from a generator of their own (seed ``[seed, 7]``), so adding or removing it
    leaves every other draw, and hence every other plant, as it was.
    """
    rng = np.random.default_rng(seed)
    plan = dict(DEFAULT_PLAN if plan is None else plan)
    incremental = dict({"f_i": 0.5, "theta": 0.3, "alpha": 2.0}, **(incremental or {}))
    table = provinces()
    if provinces_only is not None:
        wanted = [str(p) for p in provinces_only]
        unknown = sorted(set(wanted) - set(table.index))
        if unknown:
            raise ValueError(f"unknown province codes: {', '.join(unknown)}")
        table = table.loc[wanted]
    units = _hierarchy(rng, table, scale, min_tps).set_index("unit_id")
    counts = _clean_votes(rng, units)

    records: list[tuple] = []
    for kind, province in plan.items():
        rows = units.index[units["province"] == province]
        if len(rows) == 0 or kind == "directional_misreading":  # planted after the forms are written
            continue
        if kind == "incremental_stuffing":
            found = _plant_incremental(rng, counts, rows, winner, **incremental)
        elif kind == "extreme_cluster":
            found = _plant_extreme(rng, counts, units, rows, winner, extreme_share)
        elif kind == "round_percentages":
            found = _plant_round(rng, counts, rows, winner, round_share)
        else:
            raise ValueError(f"unknown irregularity kind {kind!r}")
        records += [(unit, kind, fld, orig, rep, detail) for unit, fld, orig, rep, detail in found]
    # Ballots (suara_total) are written on the form before OCR reads it, so a misread number
    # breaks the form's arithmetic as it does in Sirekap; registered (DPT + DPTb) is derived
    # from what was read, as the Sirekap parser derives it.
    counts["ballots"] = counts["valid"] + counts["invalid"]
    as_written = counts.copy()
    records += [(unit, "ocr_misreading", fld, orig, rep, edit) for unit, fld, orig, rep, edit in _plant_ocr(rng, counts, ocr_rate)]
    if "directional_misreading" in plan:
        rows = units.index[units["province"] == plan["directional_misreading"]]
        misread = {r[0] for r in records if r[1] == "ocr_misreading"}
        found = _plant_directional(np.random.default_rng([seed, 7]), counts, rows, winner, directional_share, misread)
        records += [(unit, "directional_misreading", fld, orig, rep, edit) for unit, fld, orig, rep, edit in found]
    counts["registered"] = counts["dpt"] + counts["dptb_voters"]

    table_out = units.join(counts)
    _add_sirekap_extras(rng, table_out, as_written)
    _blank_unpublished(rng, table_out, missing_chart, missing_administrasi)
    columns = ["province", "province_name", "regency", "district", "village", "registered", "voters",
               "valid", "invalid", "ballots", *CANDIDATES, "dpt", "dpt_voters", "dptb_voters", "dpk_voters",
               *[c for c in ADMINISTRASI_FIELDS], "psu", "ts", "status_suara", "status_adm"]
    table_out = table_out[columns]
    truth = pd.DataFrame(records, columns=["unit_id", "kind", "field", "original", "reported", "detail"])
    truth.insert(1, "province", truth["unit_id"].str[:2])
    parameters = {
        "scale": scale, "seed": seed, "min_tps": min_tps, "plan": plan, "ocr_rate": ocr_rate,
        "incremental": incremental, "extreme_share": extreme_share, "round_share": round_share,
        "directional_share": directional_share,
        "missing_chart": missing_chart, "missing_administrasi": missing_administrasi, "winner": winner,
    }
    provenance = {
        "source": "synthetic (analysis.synth.make_election)",
        "parameters": parameters,
        "truth_sha256": table_sha256(truth.set_index("unit_id")),
    }
    election = Election.from_frame(
        table_out, levels=LEVELS, candidates=CANDIDATES,
        name=f"Synthetic Pemilu 2024 (scale {scale:g}, seed {seed})", provenance=provenance,
    )
    return SyntheticElection(election=election, truth=truth, parameters=parameters)


def _add_sirekap_extras(rng: np.random.Generator, table: pd.DataFrame, as_written: pd.DataFrame) -> None:
    """The administrasi page as Sirekap names it. The male / female boxes add up on the form as
    written; the totals are what OCR read, so a misread total breaks X_j = X_l + X_p as in Sirekap."""
    pairs = {
        "pemilih_dpt": "dpt", "pengguna_dpt": "dpt_voters",
        "pengguna_dptb": "dptb_voters", "pengguna_non_dpt": "dpk_voters",
    }
    for prefix, source in pairs.items():
        written = as_written[source].to_numpy()
        male = rng.binomial(written, 0.5)
        table[f"{prefix}_j"], table[f"{prefix}_l"], table[f"{prefix}_p"] = table[source].to_numpy(), male, written - male
    table["pengguna_total_j"] = table["voters"]
    table["pengguna_total_l"] = table[[f"{p}_l" for p in ("pengguna_dpt", "pengguna_dptb", "pengguna_non_dpt")]].sum(axis=1)
    table["pengguna_total_p"] = as_written["voters"].to_numpy() - table["pengguna_total_l"]
    table["suara_sah"], table["suara_tidak_sah"], table["suara_total"] = table["valid"], table["invalid"], table["ballots"]
    table["psu"] = pd.Series(pd.NA, index=table.index, dtype="str")
    start = pd.Timestamp("2024-02-14 16:00:00", tz="Asia/Jakarta")
    hours = np.sort(rng.exponential(30.0, len(table)))
    table["ts"] = (start + pd.to_timedelta(np.round(hours * 4) / 4, unit="h"))[rng.permutation(len(table))]
    table["status_suara"] = True
    table["status_adm"] = True


def _blank_unpublished(rng, table: pd.DataFrame, missing_chart: float, missing_administrasi: float) -> None:
    """Sirekap publishes half-filled forms: the vote page or the administrasi page may be missing."""
    for name in [*CANDIDATES, *ADMINISTRASI_FIELDS, "registered", "voters", "valid", "invalid", "ballots",
                 "dpt", "dpt_voters", "dptb_voters", "dpk_voters"]:
        table[name] = table[name].astype("Int64")
    no_chart = rng.random(len(table)) < missing_chart
    table.loc[no_chart, list(CANDIDATES)] = pd.NA
    table.loc[no_chart, "status_suara"] = False
    no_adm = rng.random(len(table)) < missing_administrasi
    adm = [*ADMINISTRASI_FIELDS, "registered", "voters", "valid", "invalid", "ballots",
           "dpt", "dpt_voters", "dptb_voters", "dpk_voters"]
    table.loc[no_adm, adm] = pd.NA
    table.loc[no_adm, "status_adm"] = False
    table["status_suara"] = table["status_suara"].astype("boolean")
    table["status_adm"] = table["status_adm"].astype("boolean")


# ------------------------------------------------------------------------------------ aggregate series
def synthetic_series(*, regions: int = 4, intervals: int = 300, contestants: int = 5, tps_per_interval: float = 100,
                     decay: float = 60.0, voters: int = 220, concentration: float = 30.0, drift: float = 0.02,
                     seed: int = 0, inject: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None):
    """A clean aggregate series (for ``dynamics``) built from whole TPS, optionally with skewed increments injected.

    Interval t adds Poisson(``tps_per_interval`` x exp(-t / ``decay``)) TPS per region (reporting
    slows down as in Sirekap, so increments range from thousands of votes to a few); a TPS's shares are
    Dirichlet(``concentration`` x the region's current shares) and its votes Multinomial(voters);
    the region's shares drift as a random walk on the log scale (sd ``drift`` per interval).
    ``inject={"region": "1", "interval": 150, "contestant": "01", "votes": 2000}`` adds ``votes``
    to one contestant's increment at one interval (the irregularity to detect); a list of such
    mappings injects several. Returns an
    ``AggregateSeries`` with regions "1".., contestants "01".. and exact TPS progress.
    """
    import math

    from .sources.sirekap.aggregates import PROGRESS_COLUMNS, VOTE_COLUMNS, AggregateSeries

    rng = np.random.default_rng(seed)
    injections = [inject] if isinstance(inject, Mapping) else list(inject or [])
    names = [f"{k + 1:02d}" for k in range(contestants)]
    times = pd.date_range("2024-02-15 20:00", periods=intervals + 1, freq="h", tz="Asia/Jakarta")
    vote_rows, prog_rows = [], []
    for r in range(regions):
        region = str(r + 1)
        logit = rng.normal(0, 0.6, contestants)
        total = np.zeros(contestants, dtype=np.int64)
        reported = 0
        for t in range(intervals + 1):
            if t > 0:
                logit = logit + rng.normal(0, drift, contestants)
            p = np.exp(logit) / np.exp(logit).sum()
            m = rng.poisson(tps_per_interval * (5 if t == 0 else math.exp(-t / decay)))
            if m:
                shares = rng.dirichlet(concentration * p, size=m)
                total += np.array([rng.multinomial(voters, s) for s in shares]).sum(axis=0)
            for plant in injections:
                if str(plant["region"]) == region and int(plant["interval"]) == t:
                    total[names.index(plant["contestant"])] += int(plant["votes"])
            reported += m
            for k, c in enumerate(names):
                vote_rows.append((times[t], pd.NaT, region, "province", c, int(total[k])))
            prog_rows.append((times[t], region, "province", np.nan, 10 ** 6, reported, True))
    votes = pd.DataFrame(vote_rows, columns=VOTE_COLUMNS).astype({"votes": "Int64"})
    progress = pd.DataFrame(prog_rows, columns=PROGRESS_COLUMNS).astype({"tps_total": "Int64", "tps_reported": "Int64"})
    return AggregateSeries("synthetic", votes, progress, pd.DataFrame(columns=["source", "row", "reason"]),
                           contestants=tuple(names), labels={c: c for c in names},
                           source=f"synthetic_series(seed={seed})")
