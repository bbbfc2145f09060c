"""CitySOC's own JVM code: SQL functions over lower-cased text (Aho-Corasick, case folded while reading).

Built on first use.

The Java source lives in `correlator/engine/jvm/src`. `ensure_jar()` compiles it with the JDK's `javac`
against pyspark's bundled jars and packs a jar into a cache folder (`$XDG_CACHE_HOME/citysoc/jvm`,
default `~/.cache/citysoc/jvm`), named by a hash of the sources and the Spark version, so it is
built once per machine and version. `build_session` puts the jar on the session (`spark.jars`);
`functions_available` also adds it to a running session (`ADD JAR`) when needed, and
`register_functions` registers the functions (`org.citysoc.spark.Functions`) in a session.

Without a JDK (a JRE-only machine) there is no jar: callers fall back to built-in expressions
(`EngineOptions(jvm_functions=False)`), with the same results, and a warning is logged once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pyspark
import structlog
from py4j.java_gateway import JavaClass
from pyspark.sql import SparkSession

log = structlog.get_logger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "jvm" / "src"
FUNCTIONS_CLASS = "org.citysoc.spark.Functions"
_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning("CitySOC's JVM functions are off, using built-in expressions (same results, slower)",
                    reason=reason)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "citysoc" / "jvm"


def spark_jars_dir() -> Path:
    bundled = Path(pyspark.__file__).resolve().parent / "jars"
    if bundled.is_dir():
        return bundled
    return Path(os.environ.get("SPARK_HOME", "")) / "jars"


def find_javac() -> str | None:
    """The JDK compiler next to the `java` Spark starts (JAVA_HOME first), or None on a JRE."""
    if os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "javac"
        if candidate.exists():
            return str(candidate)
    return shutil.which("javac")


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.rglob("*.java"))


def jar_name() -> str:
    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in _sources():
        digest.update(source.relative_to(SOURCE_DIR).as_posix().encode())
        digest.update(source.read_bytes())
    return f"citysoc-jvm-{digest.hexdigest()[:16]}.jar"


@cache
def ensure_jar() -> Path | None:
    """The built jar (compiling it the first time), or None when it cannot be built here."""
    target = cache_dir() / jar_name()
    if target.exists():
        return target
    javac = find_javac()
    if javac is None:
        _warn_once("no javac (install a JDK, e.g. openjdk-17-jdk-headless, to enable it)")
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="citysoc-javac-") as scratch:
            classes = Path(scratch) / "classes"
            classes.mkdir()
            subprocess.run(
                [javac, "--release", "17", "-nowarn", "-cp", str(spark_jars_dir() / "*"), "-d", str(classes),
                 *map(str, _sources())],
                check=True, capture_output=True, text=True, timeout=300)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
                jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: citysoc\n\n")
                for path in sorted(classes.rglob("*.class")):
                    jar.write(path, path.relative_to(classes).as_posix())
            partial.replace(target)  # atomic: concurrent builders write the same bytes
    except (OSError, subprocess.SubprocessError) as exc:
        detail = exc.stderr.strip().splitlines()[-1] if isinstance(exc, subprocess.CalledProcessError) \
            and exc.stderr.strip() else str(exc)
        _warn_once(f"building {target.name} failed: {detail}")
        return None
    return target


def _class_loaded(spark: SparkSession) -> bool:
    jvm: Any = spark.sparkContext._jvm
    return isinstance(jvm.org.citysoc.spark.Functions, JavaClass)


@cache
def _session_ready(spark: SparkSession) -> bool:
    if _class_loaded(spark):
        return True
    jar = ensure_jar()
    if jar is None:
        return False
    spark.sql(f"ADD JAR '{jar}'")  # a session started without spark.jars (e.g. not by build_session)
    if _class_loaded(spark):
        return True
    _warn_once(f"{FUNCTIONS_CLASS} is not loadable in this session (start it with spark.jars={jar})")
    return False


def functions_available(spark: SparkSession) -> bool:
    """True when CitySOC's JVM functions can be used in this session (adding the jar if it was built)."""
    return _session_ready(spark)


@cache
def register_functions(spark: SparkSession) -> None:
    """Register CitySOC's SQL functions over lower-cased text in the session (`org.citysoc.spark.Functions`):
    `citysoc_contains_any(text, 'lit', ...)`, `citysoc_multi_contains(text, 'lit', ...)` and
    `citysoc_in_lower(text, 'lit', ...)` answer `ContainsAny(lower(text))`, `MultiContains(lower(text))` and
    `lower(text) IN (...)` from Spark's UTF-8 bytes (ASCII folded while read, the exact `lower()` for the
    rest): no lower-cased copy of the text, no Java string per row. `citysoc_in_window(micros, since, until)`
    is `since <= micros < until` with the bounds out of the generated code (`events.window_condition`)."""
    if not functions_available(spark):
        raise RuntimeError(f"{FUNCTIONS_CLASS} is not available in this Spark session")
    jvm: Any = spark.sparkContext._jvm
    jvm.org.citysoc.spark.Functions.register(spark._jsparkSession)
