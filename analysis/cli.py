"""The ``forensik`` command: build elections, make the demo, run the reports."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

CODE = re.compile(r"^[0-9]{2,13}$")


def _province_list(text: str) -> list[str] | str:
    if text.strip().lower() == "all":
        return "all"
    codes = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in codes if not CODE.fullmatch(c)]
    if bad or not codes:
        raise argparse.ArgumentTypeError(
            f"province codes must be digit strings like 31 or 3101, comma-separated, or 'all'; got {text!r}"
        )
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
        args.data, provinces=args.province, out_dir=args.out, jobs=args.jobs,
        national=not args.no_national, parameters=parameters,
    )
    index = write_index(args.out, batch)
    failed = batch.failed
    print(f"{len(batch.reports) - len(failed)} reports rendered, {len(failed)} failed")
    for report in failed:
        print(f"  FAILED {report.code}: {report.error}")
    print(f"index: {Path(index).resolve()}")
    return 0 if batch.ok else 1


def _cmd_build(args: argparse.Namespace) -> int:
    from .sources.sirekap.parse import read_tps_bodies

    if args.ballot != "ppwp":
        print("forensik build: only --ballot ppwp is supported so far", file=sys.stderr)
        return 2
    election, rejects = read_tps_bodies(args.raw)
    return _write(election, rejects, args.out, "bodies")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import CALIBRATION_DIR, digit_calibration, save_calibration

    started = time.perf_counter()
    result = digit_calibration(n_elections=args.n_elections, seed=args.seed, scale=args.scale,
                               nulls=tuple(args.nulls.split(",")), n_sim=args.n_sim, progress=True)
    path = save_calibration(result, "digits", args.out or CALIBRATION_DIR)
    print(result.appendix().to_string(index=False))
    print(f"written to {path} in {time.perf_counter() - started:.0f} s")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .sources.tabular import load_mapping, read_table

    election, rejects = read_table(args.file, load_mapping(args.mapping))
    return _write(election, rejects, args.out, "rows")


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
    report.add_argument("--province", type=_province_list, default="all", help="comma-separated province codes, or 'all' (default)")
    report.add_argument("--out", default="reports", help="output folder (default: %(default)s)")
    report.add_argument("--jobs", type=int, default=2, help="parallel notebook processes (default: %(default)s)")
    report.add_argument("--seed", type=int, default=2024, help="seed for every simulated null (default: %(default)s)")
    report.add_argument("--n-sim", type=int, default=1000, help="draws per simulated null (default: %(default)s)")
    report.add_argument("--no-national", action="store_true", help="skip the national report")
    report.set_defaults(func=_cmd_report)

    build = sub.add_parser("build", help="turn a folder or zip of raw Sirekap TPS bodies into an Election",
                           description="Parse raw Sirekap TPS JSON bodies (pemilu/hhcw/ppwp/.../{tps}.json) into an "
                           "Election Parquet file; bodies that cannot be used go to *-rejects.csv with a reason.")
    build.add_argument("--raw", required=True, help="folder (searched recursively for *.json) or .zip of TPS bodies")
    build.add_argument("--ballot", default="ppwp", help="ballot kind (only ppwp so far)")
    build.add_argument("--out", required=True, help="Parquet file to write")
    build.set_defaults(func=_cmd_build)

    calibrate = sub.add_parser("calibrate", help="measure the digit tests' false-positive rate and power on synthetic elections",
                               description="Run each digit test on clean synthetic elections and on the same elections with "
                               "invented last digits on 1, 5 and 20 %% of TPS; write the rejection rates to "
                               "analysis/data/calibration/digits.csv (shown in the national report's methods appendix).")
    calibrate.add_argument("what", choices=["digits"], help="which family of tests")
    calibrate.add_argument("--n-elections", type=int, default=20, help="synthetic elections (default: %(default)s)")
    calibrate.add_argument("--seed", type=int, default=1000, help="first election's seed (default: %(default)s)")
    calibrate.add_argument("--scale", type=float, default=0.02, help="election size, as for demo (default: %(default)s)")
    calibrate.add_argument("--nulls", default="textbook,exact,simulated", help="nulls to compare (default: %(default)s)")
    calibrate.add_argument("--n-sim", type=int, default=500, help="draws per simulated null (default: %(default)s)")
    calibrate.add_argument("--out", default="", help="folder for the table (default: the package's data/calibration)")
    calibrate.set_defaults(func=_cmd_calibrate)

    imp = sub.add_parser("import", help="turn any country's CSV/Parquet plus a TOML mapping into an Election",
                         description="Read a polling-station table with a column mapping (a shipped name such as "
                         "russia_2011, or a path to a TOML file); unusable rows go to *-rejects.csv with a reason.")
    imp.add_argument("file", help="CSV or Parquet file")
    imp.add_argument("--mapping", required=True, help="mapping name (russia_2011, russia_2012, albania_2013, poland_2020, uganda_2011) or TOML path")
    imp.add_argument("--out", required=True, help="Parquet file to write")
    imp.set_defaults(func=_cmd_import)
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
