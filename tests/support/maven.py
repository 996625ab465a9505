"""Java artifacts from Maven Central, fetched once into a cache: the Apache Kafka broker, the
Java Kafka client and the OpenTelemetry Java agent that the tests run.

Maven resolves the runtime dependencies (``dependency:copy-dependencies`` of a generated pom),
so a release is named by its coordinates and nothing else. Each set of artifacts lands in its
own folder under ``$KAFKA_AUTOTRACE_CACHE`` (default ``~/.cache/kafka-autotrace``), written
whole or not at all, under a file lock: test sessions running side by side fetch it once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

CACHE_ENV = "KAFKA_AUTOTRACE_CACHE"
_DONE = ".artifacts"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafka-autotrace.tests</groupId>
  <artifactId>{name}</artifactId>
  <version>0</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY = (
    "    <dependency><groupId>{0}</groupId><artifactId>{1}</artifactId>"
    "<version>{2}</version></dependency>"
)


def cache_dir() -> Path:
    """Where fetched and built tools are kept between test sessions."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "kafka-autotrace"


def jars(name: str, artifacts: Sequence[str]) -> list[Path]:
    """The jars of ``artifacts`` (``group:artifact:version``) and of their runtime dependencies.

    Fetched with Maven into ``<cache>/maven/<name>`` on first use; later calls with the same
    artifacts only list the folder. Raises RuntimeError with Maven's output if the fetch fails.
    """
    folder = cache_dir() / "maven" / name
    wanted = "\n".join(artifacts)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / _DONE
        if not (done.exists() and done.read_text() == wanted):
            _fetch(name, artifacts, folder)
            done.write_text(wanted)
    return sorted(folder.glob("*.jar"))


def classpath(name: str, artifacts: Sequence[str]) -> str:
    """``jars`` joined for ``java -cp``."""
    return os.pathsep.join(str(jar) for jar in jars(name, artifacts))


def _fetch(name: str, artifacts: Sequence[str], folder: Path) -> None:
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Java artifacts: apt-get install maven")
    dependencies = "\n".join(_DEPENDENCY.format(*artifact.split(":")) for artifact in artifacts)
    with tempfile.TemporaryDirectory(prefix=f"maven-{name}-", dir=folder.parent) as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_POM.format(name=name, dependencies=dependencies))
        staged = Path(work) / "lib"
        done = subprocess.run(
            [
                "mvn",
                "--batch-mode",
                "--quiet",
                "--file",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staged}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mvn could not fetch {', '.join(artifacts)}:\n{done.stdout}")
        shutil.rmtree(folder, ignore_errors=True)
        staged.rename(folder)
