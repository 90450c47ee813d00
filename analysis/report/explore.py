"""The explorer behind ``notebooks/explore/explorer.ipynb``: one region's fingerprint, digits, flags and TPS.

Pick a ballot, a province and optionally a kabupaten/kota and a kecamatan; ``explore`` computes, for
that region, the checks the reports run, with the region's sub-regions as the units the flags
compare (kabupaten within a province, kecamatan within a kabupaten, desa within a kecamatan), and
lists the TPS behind the flags (forms that break a rule, TPS at >= 95 % turnout and share) with a
link to each TPS's page on the KPU's Sirekap site. ``widget`` puts dropdowns on it with ipywidgets;
without ipywidgets (or under papermill) the notebook runs on its parameters alone.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..election import Election
from ..display import frame_html

#: Ballot -> path of its result pages on the KPU's public site (only the presidential one is known here).
SIREKAP_PAGES = {"ppwp": "pilpres"}
SIREKAP_SITE = "https://pemilu2024.kpu.go.id"
TPS_CODE = re.compile(r"[0-9]{13}")
LEVELS = ("province", "regency", "district", "village")
LABELS = {"province": "provinsi", "regency": "kabupaten/kota", "district": "kecamatan", "village": "desa/kelurahan"}
#: For a region at a level: the level whose regions the flags compare, and the finer level the nulls group by.
CHILD = {"province": "regency", "regency": "district", "district": "village"}
GROUP = {"regency": "district", "district": "village", "village": "village"}
EXTREME = 0.95


def sirekap_url(unit_id: str, ballot: str = "ppwp") -> str | None:
    """The TPS's page on the KPU site (``/pilpres/hitung-suara/{p}/{k}/{c}/{d}/{tps}``), or None.

    Only for a 13-digit Sirekap TPS code and a ballot whose pages are known; codes are checked
    before they become part of a URL.
    """
    unit_id = str(unit_id)
    if ballot not in SIREKAP_PAGES or not TPS_CODE.fullmatch(unit_id):
        return None
    parts = (unit_id[:2], unit_id[:4], unit_id[:6], unit_id[:10], unit_id)
    return f"{SIREKAP_SITE}/{SIREKAP_PAGES[ballot]}/hitung-suara/" + "/".join(parts)


def ballot_files(data_path: str | Path) -> dict[str, Path]:
    """Ballot -> Election file: one file (its provenance's ballot, else "ppwp"), or every ``*.parquet`` of a folder."""
    from .data import provenance_of

    path = Path(data_path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"no election file at {path}")
    found: dict[str, Path] = {}
    for file in files:
        try:
            provenance = provenance_of(file)
        except Exception:  # noqa: BLE001 - a Parquet file that is not an Election is not a ballot
            continue
        ballot = str(provenance.get("ballot") or ("ppwp" if len(files) == 1 else file.stem))
        found.setdefault(ballot, file)
    if not found:
        raise FileNotFoundError(f"no Election file (written by forensik) at {path}")
    return found


def load(path: str | Path, province: str | None = None) -> Election:
    """The Election in ``path``; only ``province``'s TPS when given (a Parquet filter, not the whole table)."""
    import json

    import pyarrow.parquet as pq

    from ..election import METADATA_KEY
    from .runner import check_code

    if province is None:
        return Election.read_parquet(path)
    check_code(province)
    info = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    if info is None:
        raise ValueError(f"{Path(path).name} is not an Election file (no forensik metadata)")
    info = json.loads(info)
    arrow = pq.read_table(path, filters=[("province", "=", province)])
    # The recorded table hash is the whole table's: kept as the source's, not checked against this part.
    prov = {**info.get("provenance", {}), "selection": {"province": province}}
    return Election(table=arrow.to_pandas(), levels=tuple(info["levels"]), candidates=tuple(info["candidates"]),
                    name=info.get("name", ""), provenance=prov)


def choices(election: Election, **chosen: str) -> dict[str, list[tuple[str, str]]]:
    """Dropdown options per level, (label, code), for the levels under what is ``chosen`` (e.g. province="31")."""
    table = election.table
    out: dict[str, list[tuple[str, str]]] = {}
    for level in LEVELS:
        if level not in election.levels:
            break
        codes = table[level].dropna().unique()
        names = table.groupby(level, observed=True)[f"{level}_name"].first() if f"{level}_name" in table else None
        out[level] = sorted((f"{c} {names[c]}" if names is not None and pd.notna(names.get(c)) else str(c), str(c))
                            for c in codes)
        code = chosen.get(level, "")
        if not code:
            break
        table = table[table[level] == code]
    return out


@dataclass(frozen=True, eq=False)
class RegionView:
    """What the explorer shows for one region: headline, fingerprint, digit tests, flags, TPS behind them."""

    level: str
    code: str
    name: str
    ballot: str
    winner: str
    election: Election
    headline: pd.DataFrame
    fingerprint: Any
    digits: Any
    flags: pd.DataFrame
    tps: pd.DataFrame
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def tps_html(self, limit: int = 200) -> str:
        """The TPS table with each TPS code linked to its Sirekap page; every string escaped."""
        shown = self.tps.head(limit)
        rows = []
        for unit_id, row in shown.iterrows():
            url = row.get("sirekap")
            code = html.escape(str(unit_id))
            cell = f'<a href="{html.escape(url)}">{code}</a>' if url else code
            values = "".join(f"<td>{html.escape(_shown(row[c]))}</td>" for c in shown.columns if c != "sirekap")
            rows.append(f"<tr><td>{cell}</td>{values}</tr>")
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns if c != "sirekap")
        more = f"<p>{len(self.tps) - limit:,} more TPS not shown.</p>" if len(self.tps) > limit else ""
        return (f"<table><thead><tr><th>TPS</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")

    def _repr_html_(self) -> str:
        title = f"{LABELS[self.level]} {self.code} {self.name}".strip()
        child = LABELS.get(CHILD.get(self.level, ""), "TPS")
        flags = (frame_html(self.flags) if len(self.flags)
                 else f"<p>No {html.escape(child)} stands out (q &lt; {self.parameters.get('alpha', 0.05)}).</p>")
        return (f"<h3>{html.escape(title)} ({html.escape(self.ballot)}, leading candidate "
                f"{html.escape(self.winner)})</h3>" + frame_html(self.headline)
                + f"<h4>Flags among its {html.escape(child)}</h4>" + flags
                + f"<h4>TPS behind them ({len(self.tps):,})</h4>" + self.tps_html())


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.1f}"
    return str(value)


def tps_behind(election: Election, checks, winner: str, *, ballot: str = "ppwp",
               regions: list[str] | None = None, level: str | None = None) -> pd.DataFrame:
    """TPS with a reason to look at them: forms that break a rule, turnout and share both >= 95 %.

    Only TPS in ``regions`` (codes at ``level``) when given; most reasons first; with a Sirekap link.
    """
    table = election.table
    voters, registered = election.column("voters"), election.column("registered")
    votes, valid = election.column(winner), election.column("valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        turnout = np.where(registered > 0, voters / registered, np.nan)
        share = np.where(valid > 0, votes / valid, np.nan)
    reasons = pd.Series([[] for _ in range(len(table))], index=table.index, dtype=object)
    if len(checks.violations):
        broken = checks.violations.groupby("unit_id")["rule"].agg(lambda r: sorted(set(r)))
        for unit_id, rules in broken.items():
            if unit_id in reasons.index:
                reasons[unit_id] = reasons[unit_id] + [f"breaks {', '.join(rules)}"]
    extreme = (turnout >= EXTREME) & (share >= EXTREME)
    for unit_id in table.index[extreme]:
        reasons[unit_id] = reasons[unit_id] + [f"turnout and {winner}'s share >= {EXTREME:.0%}"]
    frame = pd.DataFrame({
        **{lvl: table[lvl] for lvl in election.levels if lvl != "province"},
        "registered": table["registered"], "voters": table["voters"], winner: table[winner],
        "turnout %": 100 * turnout, "share %": 100 * share,
        "reasons": reasons.map("; ".join), "n": reasons.map(len),
    }, index=table.index)
    frame = frame[frame["n"] > 0]
    if regions is not None and level is not None:
        frame = frame[table.loc[frame.index, level].isin(regions)]
    frame = frame.sort_values(["n", "turnout %"], ascending=[False, False]).drop(columns="n")
    frame["sirekap"] = [sirekap_url(u, ballot) for u in frame.index]
    return frame


def explore(election: Election, *, province: str, regency: str = "", district: str = "", ballot: str = "ppwp",
            seed: int = 2024, n_sim: int = 200, alpha: float = 0.05, n_resamples: int = 50) -> RegionView:
    """Everything the explorer shows for the deepest region chosen (a province, kabupaten or kecamatan).

    The flags are the pages' flags: the page battery (``battery.run_battery``, without the TSM
    synthesis) over the region's sub-regions, decided together as a province page decides them
    (``sections.province_flags``). ``n_resamples``: the spikes test's resamples per sub-region.
    """
    from .. import consistency, turnout
    from . import sections
    from .battery import run_battery
    from .runner import check_code

    chosen = {"province": province, "regency": regency, "district": district}
    level, code = "province", check_code(province)
    for lvl in ("regency", "district"):
        if chosen[lvl]:
            if not str(chosen[lvl]).startswith(code):
                raise ValueError(f"{LABELS[lvl]} {chosen[lvl]!r} is not inside {LABELS[level]} {code}")
            level, code = lvl, check_code(chosen[lvl])
    region = election.select(**{level: code})
    if not len(region):
        raise ValueError(f"no TPS of {LABELS[level]} {code} in this election")
    child = CHILD[level]
    winner = sections.leading_candidate(region)
    checks = consistency.check_consistency(region)
    fp = turnout.fingerprint(region.column("registered"), region.column("voters"), region.column(winner),
                             region.column("valid"))
    battery = run_battery(region, child, winner=winner, group=GROUP[child], seed=seed, n_sim=n_sim,
                          n_resamples=n_resamples, alpha=alpha, checks=checks, with_tsm=False)
    flags = sections.flag_table(sections.province_flags(battery.forms, *battery.tables()[:-1], alpha=alpha),
                                region, child)
    flagged = sorted(set(flags["region"])) if len(flags) else None
    tps = tps_behind(region, checks, winner, ballot=ballot, regions=flagged, level=child if flagged else None)
    return RegionView(level=level, code=code, name=sections.region_name(region, level, code), ballot=ballot,
                      winner=winner, election=region, headline=sections.headline_frame(region), fingerprint=fp,
                      digits=battery.digits, flags=flags, tps=tps,
                      parameters={"seed": seed, "n_sim": n_sim, "alpha": alpha, "n_resamples": n_resamples})


def widget(files: Mapping[str, Path], *, ballot: str = "ppwp", province: str = "", regency: str = "",
           district: str = "", seed: int = 2024, n_sim: int = 200, alpha: float = 0.05):
    """Dropdowns for ballot, province, kabupaten/kota and kecamatan over ``files`` (``ballot_files``), and the
    region's view below them; a sentence instead when ipywidgets is not installed."""
    try:
        import ipywidgets as w
    except ImportError:
        from IPython.display import Markdown

        return Markdown("ipywidgets is not installed (`pip install 'forensik[explore]'`): change the parameters "
                        "in the first cell and run the notebook again.")
    from IPython.display import display

    from .. import plots

    cache: dict[tuple[str, str], Election] = {}

    def region_data(b: str, p: str) -> Election:
        if (b, p) not in cache:
            cache[(b, p)] = load(files[b], p)
        return cache[(b, p)]

    all_provinces = choices(load(files[ballot] if ballot in files else next(iter(files.values())), None))["province"]
    pick = {
        "ballot": w.Dropdown(options=sorted(files), value=ballot if ballot in files else sorted(files)[0],
                             description="ballot"),
        "province": w.Dropdown(options=all_provinces, value=province or all_provinces[0][1], description="provinsi"),
        "regency": w.Dropdown(options=[("(all)", "")], value="", description="kab/kota"),
        "district": w.Dropdown(options=[("(all)", "")], value="", description="kecamatan"),
    }
    out = w.Output()

    def refresh_options(*_):
        data = region_data(pick["ballot"].value, pick["province"].value)
        options = choices(data, province=pick["province"].value, regency=pick["regency"].value)
        for level in ("regency", "district"):
            keep = pick[level].value
            pick[level].options = [("(all)", "")] + options.get(level, [])
            pick[level].value = keep if keep in [c for _, c in pick[level].options] else ""

    def show(*_):
        out.clear_output(wait=True)
        with out:
            try:
                view = explore(region_data(pick["ballot"].value, pick["province"].value),
                               province=pick["province"].value, regency=pick["regency"].value,
                               district=pick["district"].value, ballot=pick["ballot"].value, seed=seed,
                               n_sim=n_sim, alpha=alpha)
            except (ValueError, KeyError) as err:
                print(f"cannot show this region: {err}")
                return
            display(view)
            display(plots.fingerprint_plot(view.fingerprint, title=f"{view.code}, candidate {view.winner}"))

    refresh_options()
    pick["regency"].value = regency if regency in [c for _, c in pick["regency"].options] else ""
    refresh_options()
    pick["district"].value = district if district in [c for _, c in pick["district"].options] else ""
    for name in ("ballot", "province", "regency"):
        pick[name].observe(refresh_options, names="value")
    button = w.Button(description="show")
    button.on_click(show)
    return w.VBox([w.HBox(list(pick.values())), button, out])
