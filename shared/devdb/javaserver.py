"""mongo-java-server, the default development and test database: installed from Maven Central.

It keeps MongoDB's per-document atomicity (an update, a find-and-modify and a conditional update
each apply to one document at a time) and serves ``_id`` and unique-index lookups without a scan,
where FerretDB v1 does neither. Its limits are listed in the README's database section.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
from pathlib import Path

from shared.devdb.common import DevDatabaseError, run_step, tools_dir

MJS_VERSION = "1.47.0"
SOURCES = Path(__file__).resolve().parent / "java"
MAIN_CLASS = "TouchbaseMongoServer"
# Maven's own default for this goal on Debian's Maven 3.8; pinned so every machine runs the same.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:2.8:copy-dependencies"
# Enough for the benchmarks' 50,000 touchpoints; tests use a few MiB.
DEFAULT_JAVA_OPTS = "-Xmx3g -XX:+ExitOnOutOfMemoryError"

APT_HINT = (
    "On Debian or Ubuntu: `sudo apt-get install openjdk-17-jdk-headless maven` "
    "(scripts/bootstrap does this itself when run as root).\n"
    "Or set TOUCHBASE_DEVDB=ferretdb to build FerretDB with Go instead, or set MONGODB_URI to use "
    "an existing MongoDB."
)


def install_dir() -> Path:
    """Where the jars and the compiled launcher live: a folder of the tools dir."""
    return tools_dir() / f"mongo-java-server-{MJS_VERSION}"


def pinned_jars() -> dict[str, str]:
    """Jar file name to its SHA-256, as pinned in ``java/jars.sha256``."""
    pins: dict[str, str] = {}
    for line in (SOURCES / "jars.sha256").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            pins[name] = digest
    return pins


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_jars(lib: Path) -> list[str]:
    """What is wrong with the jars in ``lib``: missing, unexpected or altered files."""
    pins = pinned_jars()
    present = {p.name for p in lib.glob("*.jar")} if lib.is_dir() else set()
    problems = [f"missing {name}" for name in sorted(pins.keys() - present)]
    problems += [f"unexpected {name}" for name in sorted(present - pins.keys())]
    problems += [
        f"checksum mismatch for {name}"
        for name in sorted(pins.keys() & present)
        if _sha256(lib / name) != pins[name]
    ]
    return problems


def _source_stamp() -> str:
    digest = hashlib.sha256()
    for name in (f"{MAIN_CLASS}.java", "jars.sha256"):
        digest.update((SOURCES / name).read_bytes())
    return digest.hexdigest()


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise DevDatabaseError(
            f"the development database (mongo-java-server) needs `{tool}`, which is not "
            f"installed.\n{APT_HINT}"
        )
    return found


def is_installed() -> bool:
    """Whether the pinned jars and the launcher compiled from the current source are in place."""
    target = install_dir()
    stamp = target / "classes" / "stamp"
    return (
        stamp.is_file()
        and stamp.read_text().strip() == _source_stamp()
        and not _check_jars(target / "lib")
    )


def install(log: bool = True) -> Path:
    """Fetch the pinned jars with Maven, check their SHA-256, compile the launcher; idempotent."""
    target = install_dir()
    if is_installed():
        return target
    _require("java")
    javac = _require("javac")
    lib = target / "lib"
    if _check_jars(lib):
        mvn = _require("mvn")
        if log:
            print(f"touchbase: fetching mongo-java-server {MJS_VERSION} (first run only)...")
        staging = target / "lib.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        run_step(
            [
                mvn,
                "--batch-mode",
                "--quiet",
                "-f",
                str(SOURCES / "pom.xml"),
                DEPENDENCY_PLUGIN,
                f"-DoutputDirectory={staging}",
            ],
            SOURCES,
            None,
            "fetching mongo-java-server from Maven Central",
        )
        problems = _check_jars(staging)
        if problems:
            raise DevDatabaseError(
                "the jars Maven fetched do not match shared/devdb/java/jars.sha256: "
                + "; ".join(problems)
            )
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
    classes = target / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    classes.mkdir(parents=True)
    run_step(
        [
            javac,
            "-d",
            str(classes),
            "-cp",
            str(lib / "*"),
            str(SOURCES / f"{MAIN_CLASS}.java"),
        ],
        SOURCES,
        None,
        "compiling the mongo-java-server launcher",
    )
    (classes / "stamp").write_text(_source_stamp() + "\n")
    return target


def server_command(port: int, h2_file: Path | None) -> list[str]:
    """The command that serves on 127.0.0.1:``port``, in memory or from ``h2_file``."""
    target = install()
    java = _require("java")
    opts = shlex.split(os.environ.get("TOUCHBASE_DEVDB_JAVA_OPTS", DEFAULT_JAVA_OPTS))
    command = [
        java,
        *opts,
        # Connection and index notices at INFO would fill the log on every test.
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{target / 'lib' / '*'}{os.pathsep}{target / 'classes'}",
        MAIN_CLASS,
        "--port",
        str(port),
    ]
    if h2_file is not None:
        command += ["--h2", str(h2_file)]
    return command
