"""Building the Spark session (the one place that knows Spark's configuration knobs), and the engine's
options for a session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from citysoc.errors import ConfigurationError
from correlator.engine.jvm import ensure_jar, functions_available
from correlator.engine.options import EngineOptions

MIN_JAVA = 17
# Spark's interpreted expression evaluation (`session_conf`): the same plan and the same semantics as generated
# code (Spark's own tests run both modes), cheaper for a few thousand rows against many rule expressions, where
# generating and compiling Java costs more than evaluating.
INTERPRETED_EVALUATION = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
LOG4J2_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"


def java_major_version() -> int | None:
    """Major version of the `java` Spark would start, or None when there is none."""
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
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
    if short_lived:  # added to the driver's own options (`--driver-java-options`), not replacing them
        builder = builder.config("spark.driver.defaultJavaOptions", SHORT_LIVED_JAVA_OPTIONS)
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
