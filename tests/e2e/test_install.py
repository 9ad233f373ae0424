"""A non-editable install works: the wheel carries the set-up SQL, the dbt project, the
expectations and the monitoring templates the library reads as package data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_an_installed_wheel_sets_up_a_warehouse_from_its_own_package_data(
    tmp_path: Path,
) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", wheels, PROJECT_DIR], check=True)
    (wheel,) = wheels.glob("stockpipe-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", site, wheel], check=True)

    # The installed copy comes first on the path; the checkout is not the working directory.
    env = os.environ | {"PYTHONPATH": str(site), "STOCKPIPE_HOME": str(tmp_path / "home")}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "from stockpipe.warehouse.setup import DEFAULT_SQL_DIR as s;"
            "from stockpipe.validation import EXPECTATIONS_DIR as e;"
            "from stockpipe.local_stack.monitoring import MONITORING_DIR as m;"
            "print(s, len(list(s.glob('*.sql'))), e, len(list(e.glob('*.json'))), m)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    sql_dir, sql_files, expectations_dir, suites, monitoring_dir = where
    for directory in (sql_dir, expectations_dir, monitoring_dir):
        assert Path(directory).is_relative_to(site), directory
    assert int(sql_files) == len(list((PROJECT_DIR / "sql" / "setup").glob("*.sql")))
    assert int(suites) == len(list((PROJECT_DIR / "expectations").glob("*.json")))
    # The roles' monitoring files and the kafka role's exporter rules, through the package's
    # links (a wheel holds the files themselves).
    monitoring = Path(monitoring_dir)
    assert (monitoring / "prometheus.yml.j2").is_file()
    assert [p.name for p in (monitoring / "rules").glob("*.rules.yml")] == ["stockpipe.rules.yml"]
    assert len(list((monitoring / "dashboards").glob("*.json"))) == 2
    local_stack = site / "stockpipe" / "local_stack"
    assert (local_stack / "jmx_exporter.yml").is_file()
    assert not (local_stack / "jmx_exporter.yml").is_symlink()

    set_up = subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", "warehouse", "setup"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert set_up.returncode == 0, set_up.stderr
    assert "010_raw_stock_prices.sql: applied" in set_up.stdout

    # The dbt project ships whole (project file, models, macros, generic tests): the
    # installed copy builds the marts.
    built = subprocess.run(
        [sys.executable, "-m", "stockpipe.cli", "trends"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "10/10 models" in built.stdout and "tests passed" in built.stdout
