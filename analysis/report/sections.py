"""Small pieces every report shows: headline numbers, provenance, and the region's display name."""

from __future__ import annotations

import html
import platform
from dataclasses import dataclass, fields
from typing import Any, Mapping

import pandas as pd

from ..election import Election
from ..flagging import outside_flags
from ..display import frame_html


def region_name(election: Election, level: str, code: str) -> str:
    """The display name of a region (``<level>_name`` when the table has it), else its code."""
    column = f"{level}_name"
    if column in election.table.columns:
        names = election.table.loc[election.table[level] == code, column].dropna()
        if len(names):
            return str(names.iloc[0])
    return str(code)


def headline(election: Election) -> dict[str, Any]:
    """Stations, reporting coverage, turnout and each candidate's share: the numbers a reader sees first."""
    table = election.table
    votes = table[list(election.candidates)]
    complete = table[["registered", "voters"]].notna().all(axis=1)
    registered = table.loc[complete, "registered"].sum()
    voters = table.loc[complete, "voters"].sum()
    total_votes = votes.sum()
    out: dict[str, Any] = {
        "stations": int(len(table)),
        "stations_with_votes": int(votes.notna().all(axis=1).sum()),
        "stations_with_administration": int(complete.sum()),
        "turnout_percent": round(100 * float(voters) / float(registered), 2) if registered else None,
    }
    denominator = float(total_votes.sum())
    for candidate in election.candidates:
        out[f"share_{candidate}_percent"] = round(100 * float(total_votes[candidate]) / denominator, 2) if denominator else None
    return out


def headline_frame(election: Election) -> pd.DataFrame:
    """``headline`` as a two-column table for the report."""
    values = headline(election)
    labels = {
        "stations": "polling stations (TPS)",
        "stations_with_votes": "TPS with all candidate votes published",
        "stations_with_administration": "TPS with registered and voters published",
        "turnout_percent": "turnout, % (voters / registered, where both are published)",
    }
    def shown(value: Any) -> str:
        if value is None:
            return "not published"
        return f"{value:,}" if isinstance(value, int) else f"{value:.2f}"

    rows = [(labels.get(k, k.replace("share_", "share of ").replace("_percent", ", %")), shown(v)) for k, v in values.items()]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def provenance_frame(election: Election, parameters: Mapping[str, Any]) -> pd.DataFrame:
    """What this report was made from: data file and hashes, source, snapshot and fetch times, code, parameters.

    The batch runner's province files carry the national file's name and SHA-256 as read
    (``data_file``, ``data_sha256``) and the national table's hash (``source_table_sha256``).
    """
    prov = dict(election.provenance)
    selection = prov.get("selection")
    rows = [
        ("election", election.name),
        ("data file", prov.get("data_file", "")),
        ("data file SHA-256 (as read)", prov.get("data_sha256", "")),
        ("source", prov.get("source", "")),
        ("input SHA-256", prov.get("input_sha256", "")),
        ("national table SHA-256", prov.get("source_table_sha256", "")),
        ("table SHA-256" + (" (this selection)" if "source_table_sha256" in prov else ""), prov.get("table_sha256", "")),
        ("selection", ", ".join(f"{k} {v}" for k, v in selection.items()) if isinstance(selection, Mapping) else ""),
        ("snapshot time", prov.get("snapshot", "")),
        ("fetch time", prov.get("fetched", "")),
        ("table created", prov.get("created", "")),
        ("forensik version", prov.get("code_version", "")),
        ("python", platform.python_version()),
    ]
    rows = [(k, v) for k, v in rows if v not in (None, "")]
    rows += [(f"parameter {key}", value) for key, value in parameters.items()]
    return pd.DataFrame([(k, str(v)) for k, v in rows], columns=["", "value"]).set_index("")


def title(scope: str, code: str, name: str, level: str = "province"):
    """The report's heading, with the region's code and name escaped (they came from outside)."""
    from IPython.display import HTML

    label = ("National report" if scope == "national"
             else f"{html.escape(level.replace('_', ' ').capitalize())} {html.escape(code)}")
    if str(name) == str(code) and scope != "national":  # a table whose codes are names (Poland's voivodeships)
        return HTML(f"<h1>{label}</h1>")
    return HTML(f"<h1>{label}: {html.escape(str(name))}</h1>")


def leading_candidate(election: Election) -> str:
    """The candidate with the most votes in this election (the fingerprint's 'winner')."""
    votes = election.table[list(election.candidates)].sum()
    return str(votes.idxmax())


def _rows(table: pd.DataFrame, test: str | None = None) -> list[dict[str, Any]]:
    """Normalise a per-region result table into flag rows (test, region, statistic, p, q)."""
    rows = []
    for record in table.to_dict("records"):
        name = test or str(record.get("test", ""))
        if record.get("column") not in (None, "") and not pd.isna(record.get("column")):
            name = f"{name} ({record['column']})"
        rows.append({
            "test": name,
            "region": str(record.get("region", "")),
            "statistic": _number(record.get("statistic")),
            "pvalue": _number(record.get("pvalue")),
            "qvalue": _number(record.get("qvalue")),
            "effect": _number(record.get("effect")),
            "se": _number(record.get("se")),
        })
    return rows


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _flags(rows: list[dict[str, Any]], alpha: float, note: str) -> list:
    """Flags with one meaning on the page: ``analysis.flagging.page_flags`` over every test of every region."""
    from ..flagging import page_flags
    from .summary import Flag

    rows = [r for r in rows if not outside_flags(r["test"])]
    if not rows:
        return []
    decided = page_flags(rows, alpha)
    regions = decided.regions.set_index("region")
    return [
        Flag(test=r["test"], region=r["region"], statistic=_number(r["statistic"]), pvalue=_number(r["pvalue"]),
             qvalue=_number(r["qvalue"]), flagged=bool(r["flagged"]), note=note,
             pvalue_empirical=_number(r["pvalue_empirical"]),
             region_qvalue=_number(regions.loc[r["region"], "qvalue"]) if r["region"] in regions.index else None)
        for r in decided.tests.to_dict("records")
    ]


def _all_rows(forms: pd.DataFrame, tables: tuple) -> list[dict[str, Any]]:
    """Flag rows of the forms table and of every further per-region table (a DataFrame with ``test``,
    ``region``, ``pvalue``, ``qvalue`` columns, or a result object giving one by ``flag_rows()`` or
    holding one as ``results``)."""
    rows = _rows(forms, "broken forms rate") if forms is not None else []
    for table in tables:
        if table is None:
            continue
        if hasattr(table, "flag_rows"):
            table = table.flag_rows()
        rows += _rows(table.results if hasattr(table, "results") else table)
    return rows


def national_flags(forms: pd.DataFrame | None, *tables, alpha: float) -> list:
    """Every per-region test of the national page as a Flag, decided together (``analysis.flagging``)."""
    return _flags(_all_rows(forms, tables), alpha, note="page-level: Simes per region, BH across regions")


def province_flags(forms: pd.DataFrame | None, *tables, alpha: float) -> list:
    """Every per-sub-region test of a region's page as a Flag, decided together (``analysis.flagging``)."""
    return _flags(_all_rows(forms, tables), alpha, note="page-level: Simes per sub-region, BH across sub-regions")


def flagged_regions(flags: list) -> list[str]:
    """The regions a page flags (each once, in order of appearance)."""
    return list(dict.fromkeys(f.region for f in flags if f.flagged))


def flag_table(flags: list, election: Election | None = None, level: str = "province") -> pd.DataFrame:
    """The flagged regions and the tests that carry each flag (own p, p against the other regions, region q)."""
    columns = ["region", "name", "region q-value", "test", "statistic", "p-value", "p-value vs other regions"]
    frame = pd.DataFrame([f.__dict__ for f in flags])
    if frame.empty or not frame["flagged"].any():
        return pd.DataFrame(columns=columns)
    flagged = frame[frame["flagged"]].sort_values(["region_qvalue", "region", "pvalue_empirical"]).reset_index(drop=True)
    flagged["name"] = [region_name(election, level, r) if election is not None else "" for r in flagged["region"]]
    flagged = flagged.rename(columns={"region_qvalue": "region q-value", "pvalue": "p-value",
                                      "pvalue_empirical": "p-value vs other regions"})
    return flagged[columns]


def save_summary(path: str, *, scope: str, code: str, election: Election, flags: list,
                 parameters: Mapping[str, Any], level: str = "province",
                 election_tests: pd.DataFrame | None = None) -> str:
    """Write the report's JSON summary for the runner and index (nothing when ``path`` is empty).

    Besides the flags: the page's level, its flagged regions, the procedure that flagged them, the
    profile, and (national page) the election-level tests as ``election_tests``.
    """
    from ..flagging import PROCEDURE
    from ..profiles import profile_of
    from .summary import write_summary

    if not path:
        return "no summary_path given: summary not written"
    name = region_name(election, level, code) if scope == "province" else election.name
    extra: dict[str, Any] = {"level": level, "flagged_regions": flagged_regions(flags), "procedure": PROCEDURE,
                             "profile": profile_of(election).to_dict()}
    if election_tests is not None:
        extra["election_tests"] = [
            {"test": str(r["test"]), "statistic": _number(r["statistic"]), "pvalue": _number(r["pvalue"]),
             "flagged": bool(r["flagged"])} for r in election_tests.to_dict("records")]
    write_summary(path, scope=scope, code=code, name=name, headline=headline(election), flags=flags,
                  provenance=dict(election.provenance), parameters=dict(parameters), extra=extra)
    regions = len(flagged_regions(flags))
    return f"summary written: {regions} region(s) flagged, from {len(flags)} tests"


def flag_frame(flags: list) -> pd.DataFrame:
    """The flags as a DataFrame (``test``, ``region``, ``statistic``, ``pvalue``, ``qvalue``, ``flagged``, ``note``)."""
    from .summary import Flag

    return pd.DataFrame([f.__dict__ for f in flags], columns=[f.name for f in fields(Flag)])


def largest_repairs(misreadings, top: int = 15) -> pd.DataFrame:
    """The explained misreadings that moved the most votes, largest first (for a reader to check against the photos)."""
    explained = misreadings.table[misreadings.table["explained"].astype(bool)]
    order = explained["difference"].abs().sort_values(ascending=False, kind="stable").index
    return explained.loc[order].head(top)[["unit_id", "field", "reported", "proposed", "edit", "detail",
                                           "confidence", "n_repairs"]].reset_index(drop=True)


# ------------------------------------------------------------------------------------ what applies to this page
@dataclass(frozen=True)
class PagePlan:
    """What a page can run on its Election: the levels it compares, its profile, and each section's reason to skip.

    ``level`` is the page's own level (the national page: the level it compares regions at),
    ``sub`` the next finer level (None at the finest), ``group`` the level neighbourhoods and
    shares are pooled at (district when the table has it below ``sub``, else the finest level).
    """

    election: Election
    level: str
    sub: str | None
    group: str
    profile: Any

    def has(self, *columns: str) -> bool:
        """Whether every column exists and holds at least one published value."""
        table = self.election.table
        return all(c in table.columns and bool(table[c].notna().any()) for c in columns)

    def coverage(self, column: str) -> str:
        """"DPT published for 15 of 34 provinces (61,002 of 83,529 units)" for a column present in some units only."""
        table = self.election.table
        if column not in table.columns:
            return f"{column} is not in this table"
        present = table[column].notna()
        by = table.groupby(self.level, observed=True)[column].apply(lambda s: bool(s.notna().any()))
        return (f"{column} published for {int(by.sum()):,} of {len(by):,} regions ({self.level}) and "
                f"{int(present.sum()):,} of {len(table):,} units")

    def skip(self, section: str, *columns: str, station: bool = False, ocr: bool = False, sub: bool = False):
        """None when ``section`` can run, else an escaped one-line note of what it would need."""
        from IPython.display import HTML

        reasons = []
        missing = [c for c in columns if not self.has(c)]
        if missing:
            reasons.append(f"it needs {', '.join(missing)}, which this table does not publish")
        if station and not self.profile.single_station:
            reasons.append("its null hypothesis describes the counts of one polling station, and a unit of this "
                           f"table is an aggregate of stations (profile {self.profile.name})")
        if ocr and not self.profile.ocr:
            reasons.append(f"the numbers were not read by OCR from photographed forms (profile {self.profile.name})")
        if sub and self.sub is None:
            reasons.append(f"{self.level} is the finest level of this table: there are no sub-regions to compare")
        if not reasons:
            return None
        return HTML(f'<p class="skipped"><strong>{html.escape(section)}: not run.</strong> '
                    f"{html.escape('; '.join(reasons))}.</p>")


def plan(election: Election, level: str) -> PagePlan:
    """The ``PagePlan`` of a page at ``level`` of ``election``."""
    from ..profiles import profile_of

    levels = list(election.levels)
    if level not in levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(levels)})")
    at = levels.index(level)
    sub = levels[at + 1] if at + 1 < len(levels) else None
    below = levels[at + 2:] if sub else []
    group = "district" if "district" in below else (below[0] if below else levels[-1])
    return PagePlan(election=election, level=level, sub=sub, group=group, profile=profile_of(election))


#: Columns whose partial publication a page reports on top (sections that use them run where they are published).
COVERAGE_COLUMNS = ("registered", "voters", "valid", "invalid", "ballots", "dpt")


def profile_note(election: Election, level: str | None = None) -> Any:
    """Lines for the top of a page: the profile whose rules and nulls it applies, and the columns
    published for some units only (sections using them run on those units and say so in their tables)."""
    from IPython.display import HTML

    from ..profiles import profile_of

    lines = [f"Profile: {html.escape(profile_of(election).label())}."]
    table = election.table
    by = level if level in election.levels else election.levels[0]
    for column in COVERAGE_COLUMNS:
        if column not in table.columns:
            continue
        present = table[column].notna()
        if present.all():
            continue
        if not present.any():
            lines.append(f"{html.escape(column)}: not published for any unit; sections that need it are skipped.")
            continue
        regions = table.groupby(by, observed=True)[column].apply(lambda s: bool(s.notna().any()))
        lines.append(f"{html.escape(column)}: published for {int(present.sum()):,} of {len(table):,} units "
                     f"({int(regions.sum()):,} of {len(regions):,} regions at {html.escape(by)}); sections that "
                     "need it run on those units only.")
    return HTML("".join(f"<p>{line}</p>" for line in lines))


def synthetic_banner(election: Election) -> Any:
    """A banner on top of every page of a synthetic election (the demo); nothing for real data."""
    from IPython.display import HTML

    if "synthetic" not in str(election.provenance.get("source", "")).lower():
        return HTML("")
    return HTML('<p class="banner"><strong>Synthetic election.</strong> These numbers were generated by '
                "forensik's demo (<code>forensik demo</code>) with planted irregularities; they are not results of "
                "any real election.</p>")


def default_level(election: Election) -> str:
    """The level a national page compares: ``province`` when the table has it, else its first level."""
    from .runner import default_level as pick

    return pick(election.levels)


def flag_procedure() -> str:
    """The procedure that decides a page's flags (``analysis.flagging.PROCEDURE``)."""
    from ..flagging import PROCEDURE

    return PROCEDURE


def html_text(text: str) -> str:
    """``text`` escaped for an HTML page."""
    return html.escape(str(text))


def placebo_frame() -> Any:
    """The shipped placebo table (``analysis.placebo``) for the methods appendix, or a line saying it is missing."""
    from IPython.display import HTML

    from ..placebo import load_placebo

    try:
        table, meta = load_placebo()
    except FileNotFoundError as err:
        return HTML(f"<p>{html.escape(str(err))}</p>")
    names = ", ".join(f"{name} ({(info or {}).get('data_file', '')})" for name, info in meta.get("sites", {}).items())
    head = (f"<p>False flags on real clean elections ({html.escape(names)}), read off their rendered pages "
            f"(<code>forensik placebo</code>, written {html.escape(str(meta.get('written', '')))}): per method, the "
            "regions whose flag it carries under this page's rule (<code>rate</code>), and the regions the same "
            "method would flag under the earlier rule, Benjamini-Hochberg within each family "
            "(<code>rate_per_family_bh</code>).</p>")
    page = head + frame_html(table)
    synthetic = load_synthetic_placebo()
    if synthetic is not None:
        from ..placebo import summarise_synthetic

        page += ("<p>The same battery on synthetic elections (<code>forensik placebo --synthetic</code>): clean ones, "
                 "and the demo's plan of four planted provinces; per rule, the share of clean provinces flagged, the "
                 "share of pages with at least one false flag, and the share of planted provinces found (power), "
                 "under this page's rule and under the earlier one.</p>")
        page += frame_html(summarise_synthetic(synthetic))
    return HTML(page)


def load_synthetic_placebo() -> pd.DataFrame | None:
    """The shipped synthetic placebo runs (``placebo_synthetic.csv``), or None."""
    from ..calibration import CALIBRATION_DIR

    path = CALIBRATION_DIR / "placebo_synthetic.csv"
    return pd.read_csv(path) if path.is_file() else None


# ------------------------------------------------------------------------------------ what stands out
#: The display id of the "What stands out" block a page shows first and fills in once its flags are decided.
STANDS_OUT_ID = "what-stands-out"
LEVEL_LABELS = {"province": "province", "regency": "kabupaten/kota", "district": "kecamatan",
                "village": "desa/kelurahan"}


def _test_html(test: str) -> str:
    from ..display import test_link
    from .methods import method_href

    href = test_link(test) or method_href(test)
    text = html.escape(str(test))
    return f'<a href="{html.escape(href, quote=True)}">{text}</a>' if href else text


def _is(value: Any) -> str:
    """"= 0.0123" or "< 1e-10": a p- or q-value after its name in a sentence (escaped)."""
    from ..display import format_pvalue

    text = format_pvalue(value)
    return html.escape(text if text.startswith("<") else f"= {text}")


def _region_sentence(region: str, tests: list, election: Election | None, level: str) -> str:
    from ..display import format_pvalue

    name = region_name(election, level, region) if election is not None else region
    label = f"{LEVEL_LABELS.get(level, level.replace('_', ' '))} {region}" + (f" ({name})" if name != region else "")
    carried = []
    for f in sorted(tests, key=lambda f: (f.pvalue_empirical if f.pvalue_empirical is not None else 1.0)):
        against = (f"; against the other regions {format_pvalue(f.pvalue_empirical)}"
                   if f.pvalue_empirical is not None else "")
        carried.append(f"{_test_html(f.test)} (p {_is(f.pvalue)}{html.escape(against)})")
    q = tests[0].region_qvalue
    return (f"<strong>{html.escape(label)}</strong> is flagged (q {_is(q)} across the page), "
            f"carried by {', '.join(carried)}.")


def stands_out_html(flags: list, election: Election | None = None, level: str = "province", *, alpha: float = 0.05,
                    election_tests: pd.DataFrame | None = None, rule: str = "") -> str:
    """The "What stands out" block: a sentence per flagged region and per rejected election-level test, or
    "Nothing stands out" with the page rule. Built from the flags and tests the page decided; all text escaped."""
    from ..display import format_number, format_pvalue

    rule = rule or ("each test judged against the other regions of this page and against its own null, a region's "
                    "tests combined by Simes' test, regions flagged by Benjamini-Hochberg across the page at a false "
                    f"discovery rate of {alpha:g}")
    by_region: dict[str, list] = {}
    for f in flags:
        if f.flagged:
            by_region.setdefault(f.region, []).append(f)
    order = sorted(by_region, key=lambda r: (by_region[r][0].region_qvalue if by_region[r][0].region_qvalue is not None
                                             else 1.0, r))
    items = [_region_sentence(r, by_region[r], election, level) for r in order]
    tested = 0
    if election_tests is not None and len(election_tests):
        tested = int(election_tests["pvalue"].notna().sum())
        for record in election_tests.to_dict("records"):
            if bool(record.get("flagged")):
                holm = record.get("pvalue_holm")
                items.append(f"The election as a whole: {_test_html(str(record['test']))} rejects its null "
                             f"(statistic {html.escape(format_number(record.get('statistic')))}, p "
                             f"{_is(record.get('pvalue'))}"
                             + (f", Holm-adjusted {html.escape(format_pvalue(holm))}" if holm is not None else "")
                             + ").")
    head = f'<div id="{STANDS_OUT_ID}" class="stands-out"><h2>What stands out</h2>'
    if not items:
        text = (f"Nothing stands out: no region is flagged under the page rule ({html.escape(rule)})"
                + (f", and none of the {tested} election-level tests rejects its null" if tested else "") + ".")
        return head + f"<p>{text}</p></div>"
    regions = len(by_region)
    summary = (f"{regions} region{'s' if regions != 1 else ''} flagged under the page rule ({html.escape(rule)})"
               if regions else f"No region is flagged under the page rule ({html.escape(rule)})")
    if tested:
        rejected = len(items) - regions
        summary += f"; {rejected} of {tested} election-level tests reject their null"
    return (head + f"<p>{summary}. A flag is a statistical irregularity to check against the forms, not a finding "
            "of fraud.</p><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul></div>")


def stands_out_placeholder():
    """Show the "What stands out" block at the top of a page; ``stands_out`` fills it in once the flags are decided."""
    from IPython.display import HTML, display

    display(HTML(f'<div id="{STANDS_OUT_ID}" class="stands-out"><h2>What stands out</h2>'
                 "<p>Decided at the end of this page's tests.</p></div>"), display_id=STANDS_OUT_ID)


def stands_out(flags: list, election: Election | None = None, level: str = "province", *, alpha: float = 0.05,
               election_tests: pd.DataFrame | None = None) -> None:
    """Fill in the page's "What stands out" block (shown at the top by ``stands_out_placeholder``)."""
    from IPython.display import HTML, update_display

    update_display(HTML(stands_out_html(flags, election, level, alpha=alpha, election_tests=election_tests)),
                   display_id=STANDS_OUT_ID)
