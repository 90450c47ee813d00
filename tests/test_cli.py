import subprocess
import sys

import pandas as pd
import pytest

from analysis.cli import build_parser, main
from analysis.election import Election

SUBCOMMANDS = ("demo", "report", "build", "import")


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


@pytest.mark.parametrize("codes", ["3a", "1", "31,../etc", ""])
def test_report_refuses_bad_province_codes(codes, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "--data", "x.parquet", "--province", codes])
    assert "province codes must be digit strings" in capsys.readouterr().err


def test_missing_input_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["report", "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no election file at" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
