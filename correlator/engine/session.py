"""Building the Spark session (the one place that knows Spark's configuration knobs), and the engine's
options for a session."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pyspark
from pyspark import SparkContext
from pyspark.sql import SparkSession

from citysoc.errors import ConfigurationError
from correlator.engine.jvm import cache_dir, ensure_jar, functions_available, spark_jars_dir
from correlator.engine.options import EngineOptions

MIN_JAVA = 17
# Spark's interpreted expression evaluation (`session_conf`): the same plan and the same semantics as generated
# code (Spark's own tests run both modes), cheaper for a few thousand rows against many rule expressions, where
# generating and compiling Java costs more than evaluating.
INTERPRETED_EVALUATION = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
LOG4J2_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


def _java() -> str | None:
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    return java if java and os.path.exists(java) else None


@cache
def _java_version_text(java: str) -> str:
    return subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr


def java_major_version() -> int | None:
    """Major version of the `java` Spark would start, or None when there is none."""
    java = _java()
    if java is None:
        return None
    out = _java_version_text(java)
    for token in out.replace('"', " ").split():
        head = token.split(".")[0]
        if (head.isdigit() and "." in token) or token.isdigit():
            return int(head)
    return None


def require_java() -> None:
    """Fail with advice when Java 17+ (the one system prerequisite) is missing."""
    version = java_major_version()
    if version is None:
        raise ConfigurationError(
            "Java was not found. CitySOC's detection runs on Apache Spark, which needs Java 17 or newer: "
            "install it (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    if version < MIN_JAVA:
        raise ConfigurationError(f"Java {version} found, but Spark needs Java {MIN_JAVA} or newer; set JAVA_HOME.")


# A command that runs for seconds (`soc rules test`, `soc rules backtest`) gives the JIT's optimising
# compiler (C2) more CPU than its code wins back: the driver JVM stops at the first tier (C1). Measured on
# `soc rules test` of the own rules, 2 cores: the JVM's CPU 58 -> 29 s, the same results.
SHORT_LIVED_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
# The JVM's unified logging of class-data sharing: off, so that neither an archive that does not fit (another
# JDK, changed jars: the JVM then loads classes as usual) nor writing one prints to the command's stdout.
_QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def class_data_archive() -> Path | None:
    """Where the class-data archive of Spark's driver for this JDK and these Spark jars lives (it may not exist
    yet), or None without a `java`.

    Class-data sharing (AppCDS, a dynamic archive: JDK 13+) maps the classes a previous run loaded, already
    parsed and verified, instead of reading and verifying them from Spark's jars again: most of a short
    command's JVM start. The archive belongs to one JDK build and one class path: its name is a digest of
    `java -version`, the JDK's path, the pyspark version and the jars' names and sizes.
    """
    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256(f"{os.path.realpath(java)}\n{_java_version_text(java)}\n{pyspark.__version__}".encode())
    jars = spark_jars_dir()
    if jars.is_dir():
        for jar in sorted(jars.iterdir()):
            digest.update(f"{jar.name}:{jar.stat().st_size}\n".encode())
    return cache_dir().parent / "cds" / f"spark-driver-{digest.hexdigest()[:16]}.jsa"


def _class_data_options() -> tuple[str, tuple[Path, Path] | None]:
    """(JVM options, (the file this JVM writes the archive to at its exit, the archive) or None when it reads
    one): read the archive when there is one, else write it at the JVM's exit under a name of its own
    (`_finish_archive` moves it in place, so a concurrent command never maps a half-written archive)."""
    archive = class_data_archive()
    if archive is None or os.environ.get("CITYSOC_CLASS_DATA_SHARING", "1") == "0":
        return "", None
    if archive.is_file():
        return f"-XX:SharedArchiveFile={archive} {_QUIET_CDS}", None
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return "", None
    partial = archive.with_suffix(f".{os.getpid()}.tmp")
    return f"-XX:ArchiveClassesAtExit={partial} {_QUIET_CDS}", (partial, archive)


def _finish_archive(session: SparkSession, partial: Path, archive: Path) -> None:
    """At the command's exit: end the driver JVM (EOF on its stdin, as when Python exits), wait while it writes
    the archive, then move the archive in place (atomic)."""
    process = getattr(session.sparkContext._gateway, "proc", None)
    try:
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=120)
        if partial.is_file() and partial.stat().st_size:
            partial.replace(archive)
    except (OSError, subprocess.TimeoutExpired):
        pass
    finally:
        partial.unlink(missing_ok=True)


def _warm_up(session: SparkSession) -> None:
    """Work every first Spark job of a short command waits for, done on a thread of its own while the command
    goes on: Spark's `lower()`/`upper()` (ICU case mappings) build a title-case table over all 1.1 million
    code points when first called (about a second of CPU), once per JVM."""
    jvm: Any = session.sparkContext._jvm
    with suppress(Exception):  # another Spark version: nothing to warm
        jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.util.CollationAwareUTF8String")


def build_session(*, master: str = "local[2]", shuffle_partitions: int = 2, app_name: str = "citysoc",
                  driver_memory: str = "2g", short_lived: bool = False) -> SparkSession:
    """The session (the running one when there is one). `short_lived`: for a command that ends within
    seconds, the JVM's start options that favour a fast start over peak speed (`SHORT_LIVED_JAVA_OPTIONS`);
    a long-lived service (`soc detect --every`, `soc run`) leaves them off."""
    require_java()
    # Python workers must use this interpreter, or they miss the packages of our virtualenv.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode never needs another interface
    # The driver JVM starts with our log4j2 configuration (errors only) unless the user chose their own.
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS",
        f'--driver-java-options "-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}" pyspark-shell',
    )
    builder = SparkSession.builder
    jar = ensure_jar()  # CitySOC's JVM functions; None without a JDK: built-in expressions then
    if jar is not None:
        builder = builder.config("spark.jars", str(jar))
    writing: tuple[Path, Path] | None = None
    # this call starts the JVM (getOrCreate returns a running session as it is)
    starts_jvm = short_lived and SparkContext._active_spark_context is None
    if starts_jvm:  # added to the driver's own options (`--driver-java-options`), not replacing them
        sharing, writing = _class_data_options()
        builder = builder.config("spark.driver.defaultJavaOptions", f"{SHORT_LIVED_JAVA_OPTIONS} {sharing}".strip())
    if short_lived:
        # PySpark's DataFrame debugging records the Python call site of every `functions` call in the JVM: a
        # stack capture and four Py4J round trips per call (about 10,000 for the own rules' evidence pass);
        # analysis errors then lack their "== DataFrame ==" call-site section (the commands report the error's
        # condition or first line)
        builder = builder.config("spark.python.sql.dataFrameDebugging.enabled", "false")
    session = (
        builder.master(master)
        .appName(app_name)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # A detection run names one folder per tenant and day; above this many paths Spark would list
        # them with a Spark job of its own (about a second on a 2-core machine), below it in the driver.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "4096")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    if starts_jvm:
        if writing is not None:
            atexit.register(_finish_archive, session, *writing)
        threading.Thread(target=_warm_up, args=(session,), name="spark-warm-up", daemon=True).start()
    return session


class SessionStart:
    """A Spark session started on a thread of its own, so that the command parses and compiles its rules while
    the JVM starts; `get()` waits for it (and raises what starting it raised)."""

    def __init__(self, build: Callable[[], SparkSession]) -> None:
        self._build = build
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self._interruptible = False
        self._thread = threading.Thread(target=self._run, name="spark-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._session = self._build()
        except BaseException as exc:  # handed to the caller of get()
            self._error = exc

    def get(self) -> SparkSession:
        """The session; on the main thread also Ctrl-C's handler that a session started there would have
        installed (cancel the running Spark jobs, raise KeyboardInterrupt), whatever SIGINT's disposition was."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        session = self._session
        assert session is not None
        if threading.current_thread() is threading.main_thread() and not self._interruptible:
            def interrupt(signum: int, frame: Any) -> None:
                with suppress(Exception):
                    session.sparkContext.cancelAllJobs()
                raise KeyboardInterrupt

            signal.signal(signal.SIGINT, interrupt)
            self._interruptible = True
        return session


def engine_options(spark: SparkSession, **changes: Any) -> EngineOptions:
    """The engine's default options for `spark` (its JVM functions when the session has them), with
    `changes` (field -> value) applied."""
    return replace(EngineOptions(jvm_functions=functions_available(spark)), **changes)


@contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Spark SQL `settings` (key -> value) in force for the `with` block, the previous values restored after;
    a setting this Spark does not know is left out."""
    previous: dict[str, str | None] = {}
    for key, value in settings.items():
        try:
            previous[key] = spark.conf.get(key, None)
            spark.conf.set(key, value)
        except Exception:  # a Spark without the setting: its default it is
            previous.pop(key, None)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)
