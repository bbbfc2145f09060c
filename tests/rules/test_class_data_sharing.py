"""The class-data archive of short-lived Spark drivers (`correlator.engine.session`): written once, then read."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.engine import session


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CITYSOC_CLASS_DATA_SHARING", raising=False)
    return tmp_path


def test_first_driver_writes_the_archive_under_a_name_of_its_own_then_drivers_read_it(cache: Path) -> None:
    archive = session.class_data_archive()
    assert archive is not None and archive.parent == cache / "citysoc" / "cds" and archive.suffix == ".jsa"
    options, writing = session._class_data_options()
    assert writing is not None
    partial, target = writing
    assert target == archive and partial != archive and partial.parent == archive.parent
    assert f"-XX:ArchiveClassesAtExit={partial}" in options and "-Xlog:cds=off" in options
    archive.write_bytes(b"archive")
    options, writing = session._class_data_options()
    assert writing is None and f"-XX:SharedArchiveFile={archive}" in options


def test_archive_name_follows_the_spark_jars(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"1")
    monkeypatch.setattr(session, "spark_jars_dir", lambda: jars)
    before = session.class_data_archive()
    (jars / "spark-core.jar").write_bytes(b"12")  # another build of the jars: another archive
    assert session.class_data_archive() != before


def test_sharing_can_be_switched_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYSOC_CLASS_DATA_SHARING", "0")
    assert session._class_data_options() == ("", None)
