"""The ``forensik`` command: build elections, make the demo, run the reports."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

CODE = re.compile(r"^[0-9]{2,13}$")


BALLOTS = ("ppwp", "pdpr", "pdpd", "pdprdp", "pdprdk")


def _region_code(text: str) -> str:
    if text != "0" and not (CODE.fullmatch(text) and len(text) in (2, 4, 6, 10, 13)):
        raise argparse.ArgumentTypeError(f"region must be 0 (all) or a code of 2, 4, 6, 10 or 13 digits; got {text!r}")
    return text


def _province_list(text: str) -> list[str] | str:
    """Region codes of the --by level, comma-separated (any text: Cyrillic, spaces, '/'), or 'all'."""
    if text.strip().lower() == "all":
        return "all"
    codes = [c.strip() for c in text.split(",") if c.strip()]
    if not codes:
        raise argparse.ArgumentTypeError(f"region codes must be comma-separated codes, or 'all'; got {text!r}")
    return codes


def _cmd_demo(args: argparse.Namespace) -> int:
    from .synth import make_election

    started = time.perf_counter()
    synthetic = make_election(
        scale=args.scale, seed=args.seed, min_tps=args.min_tps,
        plan={} if args.clean else None, ocr_rate=0.0 if args.clean else args.ocr_rate,
    )
    data_path, truth_path = synthetic.write(args.out)
    planted = synthetic.planted_provinces()
    print(f"{synthetic.election!r}")
    print(f"  written to {data_path} in {time.perf_counter() - started:.1f} s")
    print(f"  ground truth ({len(synthetic.truth):,} planted irregularities) in {truth_path}")
    for kind, provinces in planted.items():
        print(f"    {kind}: province {', '.join(provinces)}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.data).is_file():
        raise FileNotFoundError(f"no election file at {args.data} (make one with `forensik demo`, `build` or `import`)")
    from .report.index import write_index
    from .report.runner import run_reports

    parameters = {"seed": args.seed, "n_sim": args.n_sim}
    batch = run_reports(
        args.data, provinces=args.province, level=args.by, out_dir=args.out, jobs=args.jobs,
        national=not args.no_national, parameters=parameters, executor=args.executor, scheduler=args.scheduler,
    )
    index = write_index(args.out, batch)
    failed = batch.failed
    print(f"{len(batch.reports) - len(failed)} reports rendered, {len(failed)} failed")
    for report in failed:
        print(f"  FAILED {report.code}: {report.error}")
    print(f"index: {Path(index).resolve()}")
    return 0 if batch.ok else 1


def _cmd_build(args: argparse.Namespace) -> int:
    from .sources.sirekap import store
    from .sources.sirekap.parse import read_raw, read_snapshot, with_dapil_check

    if Path(args.raw).is_dir() and store.is_snapshot(args.raw):
        built = read_snapshot(args.raw, ballot=args.ballot)
    else:  # a folder or zip of bodies as public dumps come: Sirekap paths, or files named by TPS code
        built = read_raw(args.raw, ballot=args.ballot or "ppwp")
    built = with_dapil_check(built)  # party ballots with hhcd aggregates: the sum of each dapil's TPS beside them
    status = _write(built.election, built.rejects, args.out, "bodies")
    stem = Path(args.out).stem
    if built.votes_long is not None:
        long_path = Path(args.out).with_name(stem + "-candidates.parquet")
        built.votes_long.to_parquet(long_path, index=False)
        print(f"  per-candidate votes ({len(built.votes_long):,} rows) in {long_path}")
    if built.candidate_lists is not None:
        lists_path = Path(args.out).with_name(stem + "-candidate-lists.csv")
        built.candidate_lists.to_csv(lists_path, index=False)
        c = built.counts
        print(f"  candidate lists: {c['candidate_lists_read']:,} read, {c['candidate_lists_bad']:,} rejected, partial or "
              f"failed, {c['candidate_lists_not_published']:,} not published ({c['dapil_lists_not_published']:,} dapil "
              f"lists not published); {c['candidate_rows_unnamed']:,} of {c['candidate_rows']:,} candidate rows "
              f"without a name ({c['candidate_ids_unlisted']:,} ids in no list); each list's outcome in {lists_path}")
    if built.dapil_check is not None:
        check_path = Path(args.out).with_name(stem + "-dapil-check.csv")
        built.dapil_check.to_csv(check_path, index=False)
        check = built.dapil_check
        compared = check["difference"].notna()
        differ = int((check["difference"].fillna(0) != 0).sum())
        print(f"  dapil aggregates (hhcd): {int(compared.sum()):,} numbers compared with the sum of their TPS, {differ:,} differ, "
              f"{int((~compared).sum()):,} on one side only; {len(built.dapil_rejects):,} entries unreadable; in {check_path}")
        if len(built.dapil_rejects):
            built.dapil_rejects.to_csv(Path(args.out).with_name(stem + "-dapil-rejects.csv"), index=False)
    print("  " + ", ".join(f"{k.replace('fetch_', '')} {v:,}" for k, v in built.counts.items()
                           if not k.startswith(("candidate", "dapil"))))  # those are in the line above
    return status


def _cmd_scrape(args: argparse.Namespace) -> int:
    from .sources.sirekap.scrape import ScrapeConfig, scrape

    config = ScrapeConfig(
        ballot=args.ballot, region=args.region, level=args.level, base_url=args.base_url, out=args.out,
        snapshot=args.snapshot, concurrency=args.concurrency, rate=args.rate, official=args.official,
        timeout=args.timeout, retries=args.retries, backoff=args.backoff, progress=not args.no_progress,
    )
    summary = scrape(config)
    print(summary.text())
    if not summary.ok:
        print(f"forensik scrape: {len(summary.failed) + len(summary.walk_errors):,} file(s) failed; run the same "
              f"command with --snapshot {summary.snapshot} to fetch only what is missing", file=sys.stderr)
    return 0 if summary.ok else 1


#: The design of `forensik calibrate digits` (the shipped table's), also what --extend checks against.
_DESIGN = {"fractions": (0.01, 0.05, 0.2), "share_level": "district", "alpha": 0.05, "level": "province"}


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import (CALIBRATION_DIR, check_extendable, digit_calibration, extend_calibration,
                              load_calibration, save_calibration, select_nulls, turnout_calibration)

    started = time.perf_counter()
    if args.what == "tsm":
        from .calibration import tsm_calibration

        result = tsm_calibration(n_elections=args.n_elections, seed=args.seed, scale=args.scale,
                                 ocr_rate=args.ocr_rate, progress=True, jobs=args.jobs)
        result.settings["seconds"] = round(time.perf_counter() - started)
        path = save_calibration(result, "tsm", args.out or CALIBRATION_DIR)
        print(result.appendix().to_string(index=False))
        print(f"written to {path} in {time.perf_counter() - started:.0f} s")
        return 0
    if args.what == "mebane":
        from .calibration import mebane_methods

        from .calibration import _code_revision

        revision = _code_revision()  # before the run: commits may follow while it runs
        provinces = [p.strip() for p in args.provinces.split(",") if p.strip()] or None
        f_i = tuple(float(f) for f in args.f_i.split(",") if f.strip())
        result = turnout_calibration(methods=mebane_methods(n_null=args.n_null, bootstrap=args.n_null > 0),
                                     n_elections=args.n_elections, seed=args.seed, scale=args.scale, f_i=f_i,
                                     provinces_only=provinces, progress=True, jobs=args.jobs)
        result.settings.update(kind="mebane", n_null=args.n_null, starts=3, null_starts=1, code_revision=revision,
                               seconds=round(time.perf_counter() - started))
        path = save_calibration(result, args.name or "mebane", args.out or CALIBRATION_DIR)
        print(result.appendix().to_string(index=False))
        print(f"written to {path} in {time.perf_counter() - started:.0f} s")
        return 0
    if args.what == "turnout":
        import inspect

        from .calibration import check_turnout_extendable, default_turnout_methods, extend_turnout_calibration

        every = default_turnout_methods()
        names = [n.strip() for n in (args.methods or ",".join(every)).split(",") if n.strip()]
        unknown = [n for n in names if n not in every]
        if unknown or not names:
            raise ValueError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose among {', '.join(every)}")
        methods = {n: m for n, m in every.items() if n in names}
        if len(methods) < len(every) and not args.extend and not args.out:
            raise ValueError("--methods without --extend would replace the shipped turnout table with "
                             f"{', '.join(names)} alone; add --extend, or --out DIR for a table of its own")
        earlier = None
        if args.extend:  # checked before the run, not after an hour of it
            earlier = load_calibration("turnout", args.out or CALIBRATION_DIR)
            design = {k: p.default for k, p in inspect.signature(turnout_calibration).parameters.items()}  # the CLI's
            planned = {**{k: design[k] for k in ("theta", "stuffing_alpha", "provinces_only")}, "f_i": list(design["f_i"]),
                       "scale": args.scale, "seed": args.seed, "methods": names}
            check_turnout_extendable(earlier, planned, n_elections=args.n_elections, level=design["level"],
                                     alpha=design["alpha"])
        result = turnout_calibration(methods=methods, n_elections=args.n_elections, seed=args.seed, scale=args.scale,
                                     progress=True, jobs=args.jobs)
        result.settings["seconds"] = round(time.perf_counter() - started)
        if earlier is not None:
            result = extend_turnout_calibration(earlier, result)
        path = save_calibration(result, "turnout", args.out or CALIBRATION_DIR)
        print(result.appendix().to_string(index=False))
        print(f"written to {path} in {time.perf_counter() - started:.0f} s")
        return 0
    directory = args.out or CALIBRATION_DIR
    nulls = [n for n in args.nulls.split(",") if n]
    # The table's null labels this run will add: the textbook pair rows come with "textbook".
    rows = sorted(set(nulls) | ({"binomial (textbook)"} if "textbook" in nulls else set()))
    earlier = None
    if args.extend:  # checked before the run, not after an hour of it
        earlier = load_calibration("digits", directory)
        planned = {"seed": args.seed, "n_elections": args.n_elections, "nulls": rows, "n_sim": args.n_sim}
        check_extendable(earlier, {"scale": args.scale, "share_level": _DESIGN["share_level"],
                                   "fractions": list(_DESIGN["fractions"]), "provinces_only": None}, [planned],
                         alpha=_DESIGN["alpha"], level=_DESIGN["level"])
    result = digit_calibration(n_elections=args.n_elections, seed=args.seed, scale=args.scale, nulls=tuple(nulls),
                               n_sim=args.n_sim, progress=True, jobs=args.jobs, **_DESIGN)
    result.settings["seconds"] = round(time.perf_counter() - started)
    if earlier is not None:
        # Only the rows of the nulls asked for: the textbook pair rows come with every run.
        result = extend_calibration(earlier, select_nulls(result, [n for n in rows if n in set(result.table["null"])]))
    path = save_calibration(result, "digits", directory)
    print(result.appendix().to_string(index=False))
    print(f"written to {path} in {time.perf_counter() - started:.0f} s")
    return 0


def _cmd_placebo(args: argparse.Namespace) -> int:
    from .placebo import build_placebo, load_placebo, summarise_synthetic
    from .report.battery import synthetic_flag_rates

    if args.synthetic:
        table = synthetic_flag_rates(n_elections=args.synthetic, seed=args.seed, n_sim=args.n_sim,
                                     n_resamples=args.n_resamples, alpha=args.alpha)
        out = Path(args.out) / "placebo_synthetic.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        print(summarise_synthetic(table).to_string(index=False))
        print(f"written to {out}")
        return 0
    if not args.site:
        raise ValueError("give --site DIR --name NAME (repeated), or --synthetic N")
    if len(args.site) != len(args.name or []):
        raise ValueError("give one --name per --site")
    path = build_placebo(list(zip(args.name, args.site)), alpha=args.alpha, directory=args.out)
    table, _ = load_placebo(Path(path).parent)
    shown = table[table["method"].str.startswith("any") | (table["page"] == "election")]
    print(shown.to_string(index=False))
    print(f"written to {path}")
    return 0


def _cmd_real(args: argparse.Namespace) -> int:
    from .report.real import run_real

    return run_real(shared=args.shared, out_dir=args.out, data=args.data, jobs=args.jobs, seed=args.seed,
                    n_sim=args.n_sim, provinces=args.province)


def _cmd_import(args: argparse.Namespace) -> int:
    from .sources.tabular import load_mapping, read_table

    election, rejects = read_table(args.file, load_mapping(args.mapping), names=args.names)
    return _write(election, rejects, args.out, "rows")


def _load_snapshot(path: str):
    """An Election from a Parquet file, a `forensik scrape` snapshot folder, or a folder/zip of TPS bodies."""
    from .election import Election
    from .sources.sirekap.parse import read_tps_bodies

    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return Election.read_parquet(p), 0
    if not p.exists():
        raise FileNotFoundError(f"no snapshot at {path} (an Election .parquet, a scrape snapshot, or a folder/zip of TPS bodies)")
    if p.is_dir():
        from .sources.sirekap import store
        from .sources.sirekap.parse import read_snapshot

        if store.is_snapshot(p):
            built = read_snapshot(p)   # the snapshot knows its ballot
            return built.election, len(built.rejects)
    election, rejects = read_tps_bodies(p)
    return election, len(rejects)


def _cmd_diff(args: argparse.Namespace) -> int:
    import pandas as pd

    from .dynamics import diff_elections

    (a, rej_a), (b, rej_b) = _load_snapshot(args.a), _load_snapshot(args.b)
    if args.level not in a.levels:
        raise ValueError(f"--level {args.level!r} is not a level of these elections ({', '.join(a.levels)})")
    diff = diff_elections(a, b, levels=[args.level])
    counts = diff.counts()
    print(f"A: {args.a} ({len(a):,} TPS, {rej_a:,} rejected bodies)\nB: {args.b} ({len(b):,} TPS, {rej_b:,} rejected bodies)")
    print("TPS: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; {len(diff.changes):,} numbers changed")
    net = diff.net.pivot_table(index="region", columns="contestant", values="change", aggfunc="sum")
    net = net[(net != 0).any(axis=1)]
    with pd.option_context("display.width", 160, "display.max_rows", args.rows):
        print(f"net change per candidate per {args.level} ({len(net):,} regions changed):")
        print(net.to_string() if len(net) else "  none")
        changed = diff.changed_tps()
        print(f"changed TPS ({len(changed):,}; first {min(args.rows, len(changed))}):")
        print(changed.head(args.rows).to_string(index=False) if len(changed) else "  none")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        diff.changed_tps().to_csv(out, index=False)
        net_path = out.with_name(out.stem + "-net.csv")
        diff.net.to_csv(net_path, index=False)
        print(f"changed TPS written to {out}; net change per region to {net_path}")
    return 0


def _cmd_misreadings(args: argparse.Namespace) -> int:
    import pandas as pd

    from .consistency import find_misreadings

    if args.flagged:
        from .sources.sirekap.flagged import read_flagged

        election, rejects = read_flagged(args.input)
        rejected = len(rejects)
    else:
        election, rejected = _load_snapshot(args.input)
    found = find_misreadings(election)
    print(f"{election!r}; {rejected:,} rejected rows or bodies")
    with pd.option_context("display.width", 160, "display.max_rows", args.rows, "display.max_colwidth", 60):
        print(found.summary().to_string())
        print("explained misreadings per candidate (votes = reported - repaired):")
        print(found.by_candidate().to_string())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        found.table.to_csv(out, index=False)
        excluded = out.with_name(out.stem + "-excluded.csv")
        found.excluded.to_csv(excluded, index=False)
        print(f"{len(found.table):,} rows written to {out}; {len(found.excluded):,} excluded TPS to {excluded}")
    return 0


def _cmd_findings(args: argparse.Namespace) -> int:
    from .report.findings import render_findings

    if not Path(args.data).is_file():
        raise FileNotFoundError(f"no election file at {args.data} (make one with `forensik demo`, `build` or `import`)")
    started, cpu = time.perf_counter(), time.process_time()
    path = render_findings(args.data, args.out, kawalpemilu=args.kawalpemilu or None, names=args.names or None,
                           national_summary=args.national_summary or None, seed=args.seed, learned=args.learned)
    print(f"findings: {Path(path).resolve()} in {time.perf_counter() - started:.1f} s "
          f"(this process {time.process_time() - cpu:.1f} s CPU; the notebook ran in its own kernel)")
    return 0


def _write(election, rejects, out: str, what: str) -> int:
    """The Election to Parquet and its rejects beside it as ``*-rejects.csv``."""
    out_path = Path(out)
    election.to_parquet(out_path)
    rejects_path = out_path.with_name(out_path.stem + "-rejects.csv")
    rejects.to_csv(rejects_path, index=False)
    print(f"{election!r}\n  written to {out_path}; {len(rejects):,} rejected {what} in {rejects_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forensik",
        description="Forensic analysis of polling-station election results: build an Election "
        "table, run the province and national reports, render them to safe HTML.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="write the synthetic demo election and its ground truth",
                          description="Write a synthetic Sirekap-shaped election (38 provinces) with "
                          "planted irregularities; the ground truth goes beside it as *-truth.csv.")
    demo.add_argument("--out", default="data/processed/demo.parquet", help="Parquet file to write (default: %(default)s)")
    demo.add_argument("--scale", type=float, default=0.02, help="share of the real TPS count per province; 1.0 is ~820,000 TPS (default: %(default)s)")
    demo.add_argument("--min-tps", type=int, default=400, help="at least this many TPS per province (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=2024, help="random seed; same seed, same data (default: %(default)s)")
    demo.add_argument("--ocr-rate", type=float, default=0.004, help="share of TPS with one OCR-misread number (default: %(default)s)")
    demo.add_argument("--clean", action="store_true", help="plant nothing (no irregularities, no misreadings)")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", help="run the province and national notebooks and render HTML",
                            description="Execute notebooks/province.ipynb per province and notebooks/national.ipynb "
                            "with papermill in parallel processes, export HTML (inputs hidden, sanitised), "
                            "write a JSON summary per report and DIR/index.html. Exits 1 if any report failed.")
    report.add_argument("--data", required=True, help="Election Parquet file (from demo, build or import)")
    report.add_argument("--by", default=None, metavar="LEVEL",
                        help="the level to split by: one report per region of that level, comparing its sub-regions "
                        "(default: province when the table has it, else its first level)")
    report.add_argument("--province", "--regions", dest="province", type=_province_list, default="all",
                        help="comma-separated codes of the --by level (any text), or 'all' (default)")
    report.add_argument("--out", default="reports", help="output folder (default: %(default)s)")
    report.add_argument("--jobs", type=int, default=2, help="parallel notebook processes (default: %(default)s)")
    report.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="local: --jobs processes on this machine (default); dask: one task per notebook on a "
                        "Dask distributed cluster (pip install 'forensik[dask]')")
    report.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="Dask scheduler address for --executor dask, e.g. tcp://10.0.0.5:8786")
    report.add_argument("--seed", type=int, default=2024, help="seed for every simulated null (default: %(default)s)")
    report.add_argument("--n-sim", type=int, default=1000, help="draws per simulated null (default: %(default)s)")
    report.add_argument("--no-national", action="store_true", help="skip the national report")
    report.set_defaults(func=_cmd_report)

    build = sub.add_parser("build", help="turn a scrape snapshot, or a folder or zip of raw Sirekap TPS bodies, into an Election",
                           description="Parse a snapshot of `forensik scrape` (DIR/NAME: every TPS of the walked tree, "
                           "unpublished ones as <NA>, provenance from the manifest; party ballots also write "
                           "*-candidates.parquet with per-candidate votes, named from the dapil candidate lists, and "
                           "*-candidate-lists.csv with each list's outcome) or a folder/zip of raw bodies as public dumps come "
                           "(laid out as Sirekap paths, pemilu/hhcw/{ballot}/.../{tps}.json, under any top folder; or files "
                           "named by TPS code) into an Election Parquet file; bodies that cannot be used go to "
                           "*-rejects.csv with a reason. Party ballots with hhcd dapil aggregates also write "
                           "*-dapil-check.csv: the sum of each dapil's TPS beside Sirekap's dapil totals.")
    build.add_argument("--raw", required=True, help="snapshot folder DIR/NAME, or a folder (searched recursively for *.json) or .zip of TPS bodies")
    build.add_argument("--ballot", choices=BALLOTS, default=None, help="ballot (default: the snapshot's; ppwp for a folder or zip of bodies)")
    build.add_argument("--out", required=True, help="Parquet file to write")
    build.set_defaults(func=_cmd_build)

    calibrate = sub.add_parser("calibrate", help="measure the digit tests' false-positive rate and power on synthetic elections",
                               description="Run each digit test on clean synthetic elections and on the same elections with "
                               "invented last digits on 1, 5 and 20 %% of TPS; write the rejection rates to "
                               "analysis/data/calibration/digits.csv (shown in the national report's methods appendix).")
    calibrate.add_argument("what", choices=["digits", "turnout", "tsm", "mebane"],
                           help="which family of tests (turnout: false-positive rate and power against Klimek "
                                "incremental stuffing at f_i 0.05, 0.1, 0.2, written to turnout.csv; tsm: the TSM "
                                "systematic test on clean elections with random OCR noise and with directional "
                                "misreadings in province 35, written to tsm.csv; mebane: Mebane's mixture, chi-square "
                                "and parametric-bootstrap p-values, written to mebane.csv)")
    calibrate.add_argument("--n-elections", type=int, default=20, help="synthetic elections (default: %(default)s)")
    calibrate.add_argument("--seed", type=int, default=1000, help="first election's seed (default: %(default)s)")
    calibrate.add_argument("--scale", type=float, default=0.02, help="election size, as for demo (default: %(default)s)")
    calibrate.add_argument("--nulls", default="textbook,exact,simulated",
                           help="nulls to compare; 'exact' is the model-based null (normal approximation, also "
                                "called 'model') (default: %(default)s)")
    calibrate.add_argument("--ocr-rate", type=float, default=0.02,
                           help="tsm: share of TPS with a random OCR misreading (default: %(default)s)")
    calibrate.add_argument("--n-null", type=int, default=19,
                           help="mebane: parametric-bootstrap draws per region, 0 for the chi-square rows only "
                                "(default: %(default)s)")
    calibrate.add_argument("--f-i", default="", help="mebane: comma-separated stuffing f_i (default: none, clean only)")
    calibrate.add_argument("--provinces", default="", help="mebane: comma-separated province codes (default: all)")
    calibrate.add_argument("--name", default="", help="mebane: the table's name (default: mebane)")
    calibrate.add_argument("--n-sim", type=int, default=500, help="draws per simulated null (default: %(default)s)")
    calibrate.add_argument("--out", default="", help="folder for the table (default: the package's data/calibration)")
    calibrate.add_argument("--jobs", type=int, default=1, help="elections run at once (default: %(default)s)")
    calibrate.add_argument("--extend", action="store_true",
                           help="digits: add this run's rows to the table already in --out (rows of one null must come from "
                                "disjoint elections; --nulls simulated may add that null on the same elections); turnout: add "
                                "the --methods not yet in the table, measured on the same elections (same --seed, --n-elections, --scale)")
    calibrate.add_argument("--methods", default="",
                           help="turnout: comma-separated methods (default: all of Klimek model, Kobak integer, turnout_tests, "
                                "spikes, local outliers, local outliers vs other regions)")
    calibrate.set_defaults(func=_cmd_calibrate)

    scr = sub.add_parser("scrape", help="fetch a Sirekap tree politely and resumably into a versioned snapshot",
                         description="Walk the wilayah tree under a region and fetch the candidate or party list, the "
                         "hhcw aggregate of every region and every TPS body (--level tps) or only the desa tables "
                         "(--level desa); --official adds the hr recapitulation. Rate-limited, bounded concurrency, "
                         "retries with backoff; every response kept as received under DIR/NAME with a manifest; "
                         "unchanged files are stored once across snapshots. Run again with the same --snapshot to "
                         "resume. Exits 1 if anything failed.")
    scr.add_argument("--ballot", required=True, choices=BALLOTS, help="ppwp (president), pdpr (DPR RI), pdpd (DPD), pdprdp (DPRD provinsi), pdprdk (DPRD kab/kota)")
    scr.add_argument("--region", required=True, type=_region_code, help="0 for the whole country, or a province, kabupaten, kecamatan, desa or TPS code")
    scr.add_argument("--level", choices=("tps", "desa"), default="tps", help="tps: every TPS body (default); desa: stop at the desa tables (per-TPS votes, no DPT)")
    scr.add_argument("--base-url", default="https://sirekap-obj-data.kpu.go.id", help="data host; the only host contacted (default: %(default)s)")
    scr.add_argument("--out", default="data/raw/sirekap", help="snapshot store folder DIR (default: %(default)s)")
    scr.add_argument("--snapshot", default=None, help="snapshot NAME to create or resume (default: the UTC time, e.g. 20240215T101421Z)")
    scr.add_argument("--concurrency", type=int, default=4, help="requests in flight at most (default: %(default)s)")
    scr.add_argument("--rate", type=float, default=5.0, help="requests per second at most (default: %(default)s)")
    scr.add_argument("--official", action="store_true", help="also fetch the hr (official recapitulation) tree")
    scr.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: %(default)s)")
    scr.add_argument("--retries", type=int, default=6, help="retries per file after the first attempt (default: %(default)s)")
    scr.add_argument("--backoff", type=float, default=1.0, help="first backoff delay in seconds, doubled per retry, with jitter (default: %(default)s)")
    scr.add_argument("--no-progress", action="store_true", help="no progress bar")
    scr.set_defaults(func=_cmd_scrape)

    plc = sub.add_parser("placebo", help="count each method's flags on rendered report sets of real clean elections",
                         description="Read the summaries of report sets rendered from real elections judged clean "
                         "(e.g. Poland 2020, Canada 2011) and write the placebo table of the methods appendix: per "
                         "method and page, the share of regions flagged (every one a false flag).")
    plc.add_argument("--site", action="append", help="a rendered report folder (repeat per election)")
    plc.add_argument("--name", action="append", help="the election's name (repeat, same order)")
    plc.add_argument("--synthetic", type=int, default=0, metavar="N",
                     help="instead: the national battery on N clean and N planted synthetic elections, both rules")
    plc.add_argument("--seed", type=int, default=1000, help="first synthetic election's seed (default: %(default)s)")
    plc.add_argument("--n-sim", type=int, default=199, help="draws per simulated null, synthetic runs (default: %(default)s)")
    plc.add_argument("--n-resamples", type=int, default=50, help="spikes resamples, synthetic runs (default: %(default)s)")
    plc.add_argument("--alpha", type=float, default=0.05, help="false discovery rate of the pages (default: %(default)s)")
    plc.add_argument("--out", default=str(Path(__file__).resolve().parent / "data" / "calibration"),
                     help="folder of placebo.csv and placebo.json (default: the shipped calibration folder)")
    plc.set_defaults(func=_cmd_placebo)

    real = sub.add_parser("real", help="the 2024 presidential report set from Sirekap's TPS table in ../shared, with the Findings page",
                          description="Build the Election from Sirekap's 441,609-TPS table (../shared), render one report per "
                                      "province, the national report and the Findings page. Exits 2 when the data is absent.")
    real.add_argument("--shared", default=None, help="the shared data folder (default: $FORENSIK_SHARED or ../shared)")
    real.add_argument("--out", default="reports/real", help="output folder (default: %(default)s)")
    real.add_argument("--data", default="data/processed/sirekap_tps_2024.parquet", help="Election file written (default: %(default)s)")
    real.add_argument("--province", "--regions", dest="province", type=_province_list, default="all",
                      help="'all' (default) or comma-separated province codes")
    real.add_argument("--jobs", type=int, default=2, help="parallel notebook processes (default: %(default)s)")
    real.add_argument("--seed", type=int, default=2024, help="seed for every simulated null (default: %(default)s)")
    real.add_argument("--n-sim", type=int, default=1000, help="draws per simulated null (default: %(default)s)")
    real.set_defaults(func=_cmd_real)

    imp = sub.add_parser("import", help="turn any country's CSV/Parquet plus a TOML mapping into an Election",
                         description="Read a polling-station table with a column mapping (a shipped name such as "
                         "russia_2011, or a path to a TOML file); unusable rows go to *-rejects.csv with a reason.")
    imp.add_argument("file", help="CSV or Parquet file")
    imp.add_argument("--mapping", required=True, help="mapping name (russia_2011, russia_2012, albania_2013, poland_2020, uganda_2011) or TOML path")
    imp.add_argument("--out", required=True, help="Parquet file to write")
    imp.add_argument("--names", default=None, metavar="CSV",
                     help="region names: a CSV of code,name (or Sirekap's kode,nama, e.g. wilayah_ppwp_all_levels.csv.gz)")
    imp.set_defaults(func=_cmd_import)

    dif = sub.add_parser("diff", help="what changed between two snapshots of a ballot: changed TPS and net change per region",
                         description="Compare two snapshots (Election .parquet files, `forensik scrape` snapshot folders, or "
                         "folders/zips of raw TPS bodies): TPS whose numbers changed with old and new values, TPS newly "
                         "published or withdrawn, and the net change per candidate per region.")
    dif.add_argument("a", help="the earlier snapshot")
    dif.add_argument("b", help="the later snapshot")
    dif.add_argument("--level", default="province", help="region level of the net change (default: %(default)s)")
    dif.add_argument("--rows", type=int, default=20, help="rows of each table to print (default: %(default)s)")
    dif.add_argument("--out", default="", help="CSV of the changed TPS; the net change goes beside it as *-net.csv")
    dif.set_defaults(func=_cmd_diff)

    mis = sub.add_parser("misreadings", help="find OCR misreadings: which number of an inconsistent form was misread, and what was written",
                         description="Check every form's arithmetic and search, for each form that breaks a rule, the one-digit "
                         "OCR edits of one number that make every rule hold again (consistency.find_misreadings). Input: an "
                         "Election .parquet, a scrape snapshot, a folder/zip of TPS bodies, or with --flagged a folder of "
                         "Sirekap_<prov>.csv.gz flagged-TPS files.")
    mis.add_argument("input", help="the election or bodies to check")
    mis.add_argument("--flagged", action="store_true", help="the input is a folder (or file) of flagged-TPS CSVs")
    mis.add_argument("--out", default="", help="CSV of the suspected misreadings; excluded TPS go beside it as *-excluded.csv")
    mis.add_argument("--rows", type=int, default=20, help="rows of each table to print (default: %(default)s)")
    mis.set_defaults(func=_cmd_misreadings)

    fnd = sub.add_parser("findings", help="render the Findings page: what a journalist can quote, with its uncertainty",
                         description="Execute notebooks/findings.ipynb on an Election and write DIR/findings.html (and "
                         "DIR/findings.json): coverage, broken forms, misreadings against the margin and 50 %%, whether "
                         "they favour a candidate, the national page's flags, noken provinces, and optionally "
                         "KawalPemilu's desa totals against Sirekap's.")
    fnd.add_argument("--data", required=True, help="Election Parquet file (TPS rows with a province level)")
    fnd.add_argument("--out", required=True, metavar="DIR", help="folder to write findings.html into")
    fnd.add_argument("--kawalpemilu", default="", help="KawalPemilu's desa_ppwp_2024.csv.gz (tps_hierarchy.json.gz beside it)")
    fnd.add_argument("--names", default="", help="Sirekap's region tree, wilayah_ppwp_all_levels.csv.gz")
    fnd.add_argument("--national-summary", default="", help="a rendered national summary.json to take the page flags from "
                     "(default: recompute them, which runs the national battery)")
    fnd.add_argument("--seed", type=int, default=2024, help="random seed (default: %(default)s)")
    fnd.add_argument("--learned", action="store_true", help="search misreadings with the edit model learned from KPU's corrections")
    fnd.set_defaults(func=_cmd_findings)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as err:
        # Expected user errors (a missing file, a bad table, a bad mapping) get one line, not a traceback.
        print(f"forensik {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
