"""Build DOLPHIN's entry-processor jar for the members, on first use (never committed).

The Maven module lives in ``dolphin/resources/hazelcast/processors`` (``pom.xml`` and the Java
sources of ``dolphin.hz``). Its jar is cached as
``~/.cache/dolphin/hazelcast/dolphin-hz-processors-<hash>.jar``, the hash being that of the
module's files, so a changed source builds a new jar and an unchanged one is never rebuilt.
The build runs ``mvn -B -q package`` on a copy of the module in a temporary directory (the
package may be read-only or zipped), under a file lock so that concurrent first uses build once,
and the jar is renamed into place only when complete. ``DOLPHIN_HZ_PROCESSORS_JAR`` names a jar
to use instead. Maven fetches the ``provided`` Hazelcast dependency and its plugins from Maven
Central into ``~/.m2`` the first time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from dolphin.core.errors import ConfigError
from dolphin.core.io import atomic_path

MODULE_RESOURCE = "resources/hazelcast/processors"
JAR_ENV = "DOLPHIN_HZ_PROCESSORS_JAR"
BUILD_TIMEOUT_S = 600.0


class ProcessorBuildError(ConfigError):
    """The entry-processor module did not build; the message carries Maven's output tail."""


def _files(root: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for child in sorted(root.iterdir(), key=lambda t: t.name):
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            if child.name in ("target", "__pycache__"):
                continue
            yield from _files(child, rel + "/")
        elif child.name.endswith((".java", ".xml")):
            yield rel, child


def module_files() -> list[tuple[str, bytes]]:
    """Return the module's files (relative path, content), in a stable order."""
    root = resources.files("dolphin").joinpath(MODULE_RESOURCE)
    return [(rel, t.read_bytes()) for rel, t in _files(root)]


def module_hash(files: list[tuple[str, bytes]] | None = None) -> str:
    """Return the short SHA-256 of the module's files (names and contents)."""
    digest = hashlib.sha256()
    for rel, body in files if files is not None else module_files():
        digest.update(rel.encode() + b"\0" + body + b"\0")
    return digest.hexdigest()[:16]


def resolve_processors_jar(cache_dir: Path | None = None) -> Path:
    """Return the processors jar, building it into the cache when missing."""
    from dolphin.adapters.hazelcast.cluster import default_cache_dir, jar_override

    override = jar_override(JAR_ENV)
    if override is not None:
        return override

    cache = cache_dir or default_cache_dir()
    files = module_files()
    jar = cache / f"dolphin-hz-processors-{module_hash(files)}.jar"
    if jar.is_file():
        return jar
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / "dolphin-hz-processors.lock"):
        if not jar.is_file():  # another process may have built it while we waited
            _build(files, jar)
    return jar


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(files: list[tuple[str, bytes]], jar: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError("mvn not found on PATH: Maven builds the Hazelcast entry-processor "
                          f"jar on first use (or set {JAR_ENV} to a built jar)")
    with tempfile.TemporaryDirectory(prefix="dolphin-hz-processors-") as tmp:
        src = Path(tmp) / "module"
        for rel, body in files:
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        out = Path(tmp) / "build"
        try:
            proc = subprocess.run(
                [mvn, "-B", "-q", "package", f"-Ddolphin.build.dir={out}"],
                cwd=src, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProcessorBuildError(f"mvn package did not finish in {BUILD_TIMEOUT_S:.0f}s "
                                      f"in {src}") from exc
        built = out / "dolphin-hz-processors.jar"
        if proc.returncode != 0 or not built.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise ProcessorBuildError(
                f"mvn package failed (exit {proc.returncode}) for the entry processors:\n{tail}")
        with atomic_path(jar) as part:
            shutil.copyfile(built, part)
