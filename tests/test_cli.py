"""What a user sees from `soc`: clear errors with exit code 2, nothing lost, one JSON object per line.

These run the installed `soc` executable, as a user does (no Spark needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

SOC = Path(sys.executable).parent / "soc"


def soc(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOC_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([str(SOC), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    if not SOC.exists():
        pytest.skip(f"the soc entry point is not installed at {SOC} (run `make setup`)")
    return tmp_path / "soc"


def test_invalid_tenant_id_is_refused_with_advice(home: Path) -> None:
    result = soc(home, "tenants", "add", "Bad_Name")
    assert result.returncode == 2
    assert "invalid tenant id 'Bad_Name'" in result.stderr
    assert "lower-case" in result.stderr


def test_ingest_for_an_unknown_tenant_says_how_to_register_it(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n")
    result = soc(home, "ingest", "--tenant", "nobody", "--source", "syslog", str(log))
    assert result.returncode == 2
    assert "soc tenants add nobody" in result.stderr


def test_bad_lines_go_to_the_dead_letter_store_with_their_reason(home: Path, tmp_path: Path) -> None:
    assert soc(home, "tenants", "add", "elm-street-gp").returncode == 0
    log = tmp_path / "mixed.log"
    log.write_text(
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"
        "this is not syslog at all\n"
        "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster "
        "from 173.234.31.186 port 38926 ssh2\n"
    )
    first = soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "syslog", "--year", "2024", str(log))
    assert first.returncode == 0, first.stderr
    assert "2 stored" in first.stdout and "1 dead-lettered" in first.stdout
    again = soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "syslog", "--year", "2024", str(log))
    assert "0 stored" in again.stdout and "2 already stored" in again.stdout

    listed = soc(home, "deadletter", "list", "--json")
    letters = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert len(letters) == 1  # the re-ingest did not add it twice
    assert letters[0]["raw"] == "this is not syslog at all"
    assert letters[0]["origin"].endswith("mixed.log:2")
    assert "not a syslog line" in letters[0]["reason"]


def test_json_output_is_one_object_per_line(home: Path) -> None:
    for tenant in ("elm-street-gp", "riverside-council"):
        assert soc(home, "tenants", "add", tenant).returncode == 0
    result = soc(home, "tenants", "list", "--json")
    lines = result.stdout.splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == ["elm-street-gp", "riverside-council"]


def test_a_missing_input_file_is_an_error_not_a_crash(home: Path, tmp_path: Path) -> None:
    assert soc(home, "tenants", "add", "elm-street-gp").returncode == 0
    result = soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "syslog", str(tmp_path / "nope.log"))
    assert result.returncode == 2
    assert "nope.log" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_source_kind_lists_the_known_ones(home: Path, tmp_path: Path) -> None:
    assert soc(home, "tenants", "add", "elm-street-gp").returncode == 0
    log = tmp_path / "x.log"
    log.write_text("x\n")
    result = soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "netflow", str(log))
    assert result.returncode == 2
    assert "syslog" in result.stderr and "aws.cloudtrail" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "5x"], "'5x' is not a duration"),
    (["--runs", "2"], "--lookback, --allowed-lateness and --runs only apply with --every"),
    (["--every", "5m", "--until", "2024-01-01"], "it takes --since, not --until"),
])
def test_detect_schedule_options_are_checked_before_anything_starts(home: Path, args: list[str], message: str) -> None:
    result = soc(home, "detect", *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split()), result.stderr


def test_a_file_whose_every_record_is_dead_lettered_fails_the_ingest(home: Path, tmp_path: Path) -> None:
    assert soc(home, "tenants", "add", "elm-street-gp").returncode == 0
    access = tmp_path / "access.log"  # a web server's log given as syslog: nothing in it is a syslog line
    access.write_text('192.0.2.1 - - [10/Dec/2024:06:55:46 +0000] "GET / HTTP/1.1" 200 512\n' * 3)
    good = tmp_path / "auth.log"
    good.write_text("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n")
    result = soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "syslog", "--year", "2024",
                 str(good), str(access))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 stored" in result.stdout and "3 dead-lettered" in result.stdout
    assert "every record of 1 file(s) was dead-lettered" in result.stdout and "access.log" in result.stdout
    assert soc(home, "ingest", "--tenant", "elm-street-gp", "--source", "syslog", "--year", "2024",
               str(good)).returncode == 0


def test_tenants_add_with_elasticsearch_unconfigured_says_what_is_missing_and_adds_nothing(home: Path) -> None:
    env = {**os.environ, "SOC_HOME": str(home), "COLUMNS": "200", "SOC_EVENT_STORE": "elasticsearch"}
    env.pop("SOC_ES_URL", None)
    result = subprocess.run([str(SOC), "tenants", "add", "elm-street-gp"], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert result.returncode == 2
    assert "SOC_ES_URL" in result.stderr
    listed = soc(home, "tenants", "list", "--json")
    assert "elm-street-gp" not in listed.stdout  # the member is not half-added


# What `soc ingest` must not import: the case API application, Spark, the correlator, Elasticsearch's client.
_HEAVY = ("fastapi", "pyspark", "case_api.app", "correlator", "elasticsearch", "uvicorn")
_RUN_AND_LIST_MODULES = """
import sys
from citysoc.cli.entry import main
try:
    main()
except SystemExit as done:
    code = done.code
print(sorted({name.split(".")[0] if name.split(".")[0] != "case_api" else name for name in sys.modules}))
sys.exit(code or 0)
"""


def test_ingest_imports_only_what_it_runs(home: Path, tmp_path: Path) -> None:
    """`soc ingest` answers the tenant check from the embedded database and imports no other command's modules
    (start-up was 3-4 CPU seconds when every command was imported)."""
    assert soc(home, "tenants", "add", "elm-street-gp").returncode == 0
    log = tmp_path / "auth.log"
    log.write_text("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n")
    env = {**os.environ, "SOC_HOME": str(home), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", _RUN_AND_LIST_MODULES, "ingest", "--tenant", "elm-street-gp",
                             "--source", "syslog", "--year", "2024", str(log)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "1 stored" in result.stdout
    imported = result.stdout.strip().splitlines()[-1]
    assert not [name for name in _HEAVY if f"'{name}'" in imported], imported
