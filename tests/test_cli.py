import subprocess
from pathlib import Path
import sys

import pandas as pd
import pytest

from analysis.cli import build_parser, main
from analysis.election import Election

SUBCOMMANDS = ("demo", "report", "build", "import", "diff")


def test_help_documents_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "analysis.cli", "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert name in result.stdout
    for name in SUBCOMMANDS:
        sub = subprocess.run([sys.executable, "-m", "analysis.cli", name, "--help"], capture_output=True, text=True)
        assert sub.returncode == 0 and "usage: forensik " + name in sub.stdout


def test_demo_writes_election_and_ground_truth(tmp_path, capsys):
    out = tmp_path / "demo.parquet"
    assert main(["demo", "--scale", "0.001", "--min-tps", "30", "--seed", "3", "--out", str(out)]) == 0
    election = Election.read_parquet(out)
    truth = pd.read_csv(tmp_path / "demo-truth.csv", dtype={"unit_id": str, "province": str})
    assert len(election) >= 38 * 30 and set(truth["unit_id"]) <= set(election.table.index)
    assert "incremental_stuffing: province 73" in capsys.readouterr().out


@pytest.mark.parametrize("codes", ["", " , "])
def test_report_refuses_empty_region_lists(codes, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "--data", "x.parquet", "--province", codes])
    assert "region codes must be comma-separated" in capsys.readouterr().err


def test_report_takes_any_codes_and_fails_fast_on_unknown_ones(tmp_path, capsys):
    args = build_parser().parse_args(["report", "--data", "x.parquet", "--by", "oblast", "--regions", "Москва, 1,a/b"])
    assert args.province == ["Москва", "1", "a/b"] and args.by == "oblast"
    data = tmp_path / "e.parquet"
    table = pd.DataFrame({"unit_id": ["x", "y"], "oblast": ["Москва", "1"], "registered": 100, "voters": 80,
                          "valid": 78, "invalid": 2, "A": 78})
    Election.from_frame(table, levels=["oblast"], candidates=["A"]).to_parquet(data)
    assert main(["report", "--data", str(data), "--regions", "Омск", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no oblast 'Омск'" in err and not (tmp_path / "r").exists()


def test_missing_input_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["report", "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no election file at" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_build_writes_election_and_rejects(tmp_path, capsys):
    import json

    raw = tmp_path / "raw"
    raw.mkdir()
    body = {"chart": {"100025": 1, "100026": 2, "100027": 3, "null": None}, "administrasi": None, "ts": "2024-02-15 10:00:00"}
    (raw / "3101011001001.json").write_text(json.dumps(body))
    (raw / "3101011001002.json").write_text("<html>504</html>")
    assert main(["build", "--raw", str(raw), "--out", str(tmp_path / "s.parquet")]) == 0
    assert len(Election.read_parquet(tmp_path / "s.parquet")) == 1
    rejects = pd.read_csv(tmp_path / "s-rejects.csv", dtype=str)
    assert list(rejects["unit_id"]) == ["3101011001002"] and "not JSON" in rejects["reason"].iloc[0]


def test_import_with_a_mapping_file_and_a_bad_mapping_name(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("region,station,reg,voted,A\nx,1,100,50,50\n")
    (tmp_path / "m.toml").write_text('[levels]\nregion = "region"\n[unit_id]\ncolumns = ["region", "station"]\n'
                                     '[counts]\nregistered = "reg"\nvoters = "voted"\nvalid = "sum_of_candidates"\n'
                                     '[candidates]\nA = "A"\n')
    assert main(["import", str(tmp_path / "t.csv"), "--mapping", str(tmp_path / "m.toml"), "--out", str(tmp_path / "t.parquet")]) == 0
    assert Election.read_parquet(tmp_path / "t.parquet").table.loc["x/1", "valid"] == 50
    assert main(["import", str(tmp_path / "t.csv"), "--mapping", "atlantis", "--out", str(tmp_path / "u.parquet")]) == 2
    assert "no shipped mapping 'atlantis'" in capsys.readouterr().err


def test_report_on_a_province_without_tps_fails_fast_with_one_line(tmp_path, capsys):
    data = tmp_path / "d.parquet"
    assert main(["demo", "--scale", "0.0005", "--min-tps", "20", "--out", str(data)]) == 0
    capsys.readouterr()
    assert main(["report", "--data", str(data), "--province", "99", "--no-national", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("forensik report: no province '99' in d.parquet; it holds: 11, 12") and "\n" not in err
    assert not (tmp_path / "r").exists()  # before any notebook started


def test_diff_of_two_body_folders_prints_and_writes_the_changes(tmp_path, capsys):
    import json

    chart = {"100025": 10, "100026": 20, "100027": 30, "null": None}
    for name, bodies in (("a", {"3101011001001": chart, "3101011001002": chart, "3201011001001": None}),
                         ("b", {"3101011001001": {**chart, "100026": 25}, "3101011001002": None,
                                "3201011001001": chart})):
        (tmp_path / name).mkdir()
        for code, c in bodies.items():
            (tmp_path / name / f"{code}.json").write_text(json.dumps({"chart": c, "administrasi": None, "ts": "2024-02-15 10:00:00"}))
    out = tmp_path / "diff.csv"
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "revised 1" in printed and "withdrawn 1" in printed and "published 1" in printed
    changed = pd.read_csv(out, dtype={"unit_id": str}).set_index("unit_id")
    assert changed.loc["3101011001001", "02_old"] == 20 and changed.loc["3101011001001", "02_new"] == 25
    net = pd.read_csv(tmp_path / "diff-net.csv", dtype={"region": str, "contestant": str}).set_index(["region", "contestant"])
    assert net.loc[("31", "02"), "change"] == 5 - 20 and net.loc[("32", "01"), "change"] == 10


def test_diff_of_parquet_files_and_a_missing_snapshot(tmp_path, capsys):
    a = tmp_path / "a.parquet"
    assert main(["demo", "--scale", "0.0005", "--min-tps", "5", "--seed", "1", "--out", str(a)]) == 0
    assert main(["diff", str(a), str(a), "--level", "regency"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["diff", str(a), str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no snapshot at" in err and "Traceback" not in err


@pytest.mark.parametrize("region", ["3a", "123", "../31", "31/01", ""])
def test_scrape_refuses_bad_region_codes(region, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["scrape", "--ballot", "ppwp", "--region", region])
    assert "region must be 0 (all) or a code" in capsys.readouterr().err


def test_scrape_refuses_plain_http_to_a_remote_host_in_one_line(tmp_path, capsys):
    assert main(["scrape", "--ballot", "ppwp", "--region", "31", "--base-url", "http://sirekap-obj-data.kpu.go.id",
                 "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "loopback" in err and "Traceback" not in err and not any(tmp_path.iterdir())


def test_calibrate_turnout_refuses_unknown_methods_and_a_mismatched_extension_before_running(tmp_path, capsys):
    from analysis.calibration import TurnoutCalibration, save_calibration

    assert main(["calibrate", "turnout", "--methods", "spikes,astrology", "--out", str(tmp_path)]) == 2
    assert "unknown astrology" in capsys.readouterr().err
    # A subset of the methods would replace the shipped table (the default --out) with itself alone.
    assert main(["calibrate", "turnout", "--methods", "spikes"]) == 2
    assert "would replace the shipped turnout table" in capsys.readouterr().err
    table = pd.DataFrame({"method": ["spikes"], "condition": ["clean"], "f_i": [0.0], "trials": [38], "rejections": [1]})
    settings = {"scale": 0.02, "seed": 1000, "f_i": [0.05, 0.1, 0.2], "theta": 0.3, "stuffing_alpha": 2.0, "methods": ["spikes"]}
    save_calibration(TurnoutCalibration(table, 0.05, 10, "province", settings), "turnout", tmp_path)
    assert main(["calibrate", "turnout", "--methods", "local outliers", "--extend", "--seed", "7",
                 "--n-elections", "10", "--out", str(tmp_path)]) == 2
    assert "seed differ" in capsys.readouterr().err
    assert main(["calibrate", "turnout", "--methods", "spikes", "--extend", "--seed", "1000",
                 "--n-elections", "10", "--out", str(tmp_path)]) == 2
    assert "spikes already in the stored table" in capsys.readouterr().err


def test_build_reads_a_zip_of_legislative_bodies_laid_out_as_sirekap_paths(tmp_path, capsys):
    import shutil
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent / "fixtures" / "sirekap_legislative"
    dump = tmp_path / "data-pemilu-2024-dump-main"
    shutil.copytree(fixtures, dump)
    archive = shutil.make_archive(str(tmp_path / "dump"), "zip", tmp_path, dump.name)
    out = tmp_path / "dpr.parquet"
    assert main(["build", "--raw", archive, "--ballot", "pdpr", "--out", str(out)]) == 0
    table = Election.read_parquet(out).table
    assert sorted(table.index) == ["3601011001001", "3601011001002", "3601011001003"]
    assert table.loc["3601011001001", "dapil"] == "3601"
    assert len(pd.read_parquet(tmp_path / "dpr-candidates.parquet")) == 20
    check = pd.read_csv(tmp_path / "dpr-dapil-check.csv", dtype={"dapil": str, "party": str, "candidate": str})
    row = check[(check["candidate"] == "900201")].iloc[0]
    assert (row["tps_votes"], row["hhcd_votes"], row["difference"]) == (26, 26, 0)
    assert main(["build", "--raw", archive, "--ballot", "pdprdk", "--out", str(tmp_path / "k.parquet")]) == 2
    assert "holds no TPS body of pdprdk" in capsys.readouterr().err


def test_real_without_the_shared_data_says_where_it_comes_from_and_exits_2(tmp_path, capsys):
    assert main(["real", "--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path / "site"),
                 "--data", str(tmp_path / "real.parquet")]) == 2
    err = capsys.readouterr().err
    assert "ppwp_tps_36_regions_20240320.csv.gz" in err and "gigit-pemilu" in err and "Traceback" not in err
    assert not (tmp_path / "site").exists() and not (tmp_path / "real.parquet").exists()
    # make real itself, as the README says: exit status 2 through make
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-s", "real", f"SHARED={tmp_path / 'nowhere'}", f"REAL={tmp_path / 'site'}"],
                          cwd=root, capture_output=True, text=True)
    assert done.returncode == 2
    assert "kawalpemilu" in done.stderr
