"""The Dask executor against a LocalCluster on 127.0.0.1: same outputs and failure isolation as the local runner.

Skipped when dask.distributed is not installed (pip install '.[dask]').
"""

import json
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (pip install '.[dask]')")

from analysis.election import Election  # noqa: E402
from analysis.report.index import write_index  # noqa: E402
from analysis.report.runner import run_reports  # noqa: E402
from analysis.report.summary import read_summary  # noqa: E402
from tests.test_report import HOSTILE_NAME, NATIONAL_BODY, PROVINCE_BODY, assert_safe, write_notebook  # noqa: E402

# 13 raises in the notebook; 66's kernel kills the Dask worker process that runs it (its parent).
FAILURES = '''
import os, signal
if province == "13":
    raise RuntimeError("planted failure in 13")
if province == "66":
    os.kill(os.getppid(), signal.SIGKILL)
'''


@pytest.fixture(scope="module")
def dask_batch(tmp_path_factory):
    import dask

    root = tmp_path_factory.mktemp("dask")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""',
                   FAILURES, PROVINCE_BODY)
    write_notebook(notebooks / "national.ipynb",
                   'data_path: str = ""\nsummary_path: str = ""\nprovince_summaries_dir: str = ""', NATIONAL_BODY)
    stations = pd.DataFrame({"unit_id": ["0201", "1301", "3101", "6601"], "province": ["02", "13", "31", "66"],
                             "registered": 100, "voters": 80, "valid": 78, "invalid": 2, "01": 78})
    data = Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(root / "e.parquet")
    # A task whose worker dies fails at once instead of being retried on the next worker (and killing it too).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=50) as cluster:
            result = run_reports(data, provinces=["02", "13", "31", "66"], out_dir=root / "site", executor="dask",
                                 scheduler=cluster.scheduler_address, notebooks_dir=notebooks, timeout_per_cell=60,
                                 parameters={"seed": 2024}, progress=False)
    return result, root / "site", write_index(root / "site", result)


def test_dask_batch_isolates_failures(dask_batch):
    result, _, _ = dask_batch
    status = {r.code: r.status for r in result.reports}
    assert status == {"02": "ok", "13": "failed", "31": "ok", "66": "failed", "national": "ok"}
    errors = {r.code: r.error for r in result.reports}
    assert errors["13"].startswith("RuntimeError: planted failure in 13")
    assert errors["66"].startswith("worker crashed") and "KilledWorker" in errors["66"]
    assert all(r.worker.startswith("dask ") for r in result.reports if r.code != "66")


def test_dask_batch_writes_what_the_local_runner_writes(dask_batch):
    result, site, index = dask_batch
    for code in ("02", "31", "national"):
        assert sorted(p.name for p in (site / code).iterdir()) == ["index.html", "summary.json"]
        assert (site / "_build" / f"{code}.ipynb").is_file() and (site / "_build" / "logs" / f"{code}.log").is_file()
        page = assert_safe((site / code / "index.html").read_text())
        assert result.data_sha256 in page.words
    assert (site / "13" / "index.html").is_file()  # the failed one shows where it stopped
    summary = read_summary(site / "02" / "summary.json")
    assert summary["parameters"]["province"] == "02" and summary["parameters"]["kind"] == "str"
    assert summary["build"]["data_sha256"] == result.data_sha256 and summary["name"] == HOSTILE_NAME
    # The national task got the province summaries shipped to it, not a shared folder.
    assert read_summary(site / "national" / "summary.json")["parameters"]["seen"] == ["02", "31"]
    machine = json.loads((site / "index.json").read_text())
    assert [r["code"] for r in machine["reports"]] == ["02", "13", "31", "66", "national"]
    assert str(site) not in Path(index).read_text()


def test_dask_executor_arguments_are_checked(tmp_path):
    stations = pd.DataFrame({"unit_id": ["0201"], "province": ["02"], "registered": 100, "voters": 80, "valid": 78,
                             "invalid": 2, "01": 78})
    data = Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="--scheduler ADDRESS"):
        run_reports(data, provinces=["02"], out_dir=tmp_path / "site", executor="dask", progress=False)
    with pytest.raises(ValueError, match="executor must be one of local, dask"):
        run_reports(data, provinces=["02"], out_dir=tmp_path / "site", executor="spark", progress=False)
    assert not (tmp_path / "site").exists()
