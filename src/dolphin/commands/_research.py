"""What the research commands share after their run: ``--export-best``, the command that
reproduces the exported config, the output manifest and the run index.

Not a command (``cli.COMMAND_MODULES`` does not list it). The exported YAML is the whole resolved
config (every section), so ``dolphin backtest --config best.yml`` resolves to the same config id
whatever the champion's defaults become; it is read back and its id checked before the command
reports success. The settings that are command-line flags, not config (scans, friction, factors,
funding, forewarner), are in the header comment as the exact ``dolphin backtest`` line.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dolphin.core.config import DolphinConfig


def add_cluster_arg(p: argparse.ArgumentParser, what: str) -> None:
    """Add ``--cluster local:N|tcp://HOST:PORT`` (Dask) for the command's ``what``."""
    p.add_argument("--cluster", default=None, metavar="local:N|tcp://HOST:PORT",
                   help=f"run the {what} on Dask: a local cluster of N worker processes on "
                        "127.0.0.1, or the scheduler at that address (default: this process "
                        "or its --workers)")  # fmt: skip


def cluster_runner(cluster: str | None, workers: int = 1):
    """The Dask runner of ``--cluster`` as a context (entering starts or reaches the cluster);
    without it, a local pool of ``workers`` processes (``workers > 1``) or None."""
    import contextlib

    from dolphin.core.errors import ConfigError

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if cluster is None:
        if workers > 1:
            from dolphin.core.chunks import PoolRunner

            return contextlib.nullcontext(PoolRunner(workers))
        return contextlib.nullcontext()
    from dolphin.adapters.cluster import ClusterSpec, DaskRunner

    return DaskRunner(ClusterSpec.parse(cluster))


def add_export_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--export-best FILE``."""
    p.add_argument("--export-best", type=Path, default=None, metavar="FILE",
                   help="write the best config as a YAML that `dolphin backtest --config FILE` "
                        "reproduces (default: not written)")  # fmt: skip


def backtest_command(args: argparse.Namespace, config_path: Path, scans: Path | None = None
                     ) -> str:
    """Return the ``dolphin backtest`` line with this run's scans, friction and data flags."""
    cmd = ["dolphin", "backtest", "--scans", str(scans or args.scans), "--config",
           str(config_path), "--out", str(config_path.with_suffix("")) + "-backtest"]
    if getattr(args, "friction", "default") == "hell":
        cmd += ["--friction", "hell"]
    for flag in ("factors", "funding", "ob"):
        if getattr(args, flag, None) is not None:
            cmd += [f"--{flag}", str(getattr(args, flag))]
    cmd.append("--forewarner" if getattr(args, "forewarner", False) else "--no-forewarner")
    return shlex.join(cmd)


def export_best(path: Path, config: DolphinConfig, *, source: str, reproduce: str,
                details: Mapping[str, Any] | None = None) -> Path:
    """Write ``config`` as YAML at ``path`` (atomically); check it reads back to the same id."""
    from dolphin.core.config import dump_yaml, load_config
    from dolphin.core.errors import ConfigError
    from dolphin.core.io import atomic_write_text

    head = [f"# best config of: {source}", f"# config id: {config.id}"]
    head += [f"# {k}: {v}" for k, v in (details or {}).items()]
    head += ["# reproduce with:", f"#   {reproduce}"]
    atomic_write_text(path, "\n".join(head) + "\n" + dump_yaml(config))
    if load_config(path).id != config.id:  # a YAML round trip that lost a value
        raise ConfigError(f"{path}: exported config reads back as {load_config(path).id}, "
                          f"not {config.id}")  # fmt: skip
    print(f"best config {path} (config id {config.id[:12]})\nreproduce: {reproduce}")
    return path


def config_by_id(configs: Iterable[DolphinConfig], config_id: str) -> DolphinConfig:
    """Return the config of ``config_id`` among ``configs``."""
    for cfg in configs:
        if cfg.id == config_id:
            return cfg
    raise KeyError(config_id)


def finish(args: argparse.Namespace, command: str, files: Sequence[Path | None], *,
           config_id: str | None, span: Sequence[str] | None,
           metrics: Mapping[str, Any]) -> None:
    """Record this run's outputs (removing an earlier run's stale ones) and index the run."""
    from dolphin.core.manifest import record_outputs
    from dolphin.core.runs_index import record_run

    written = [Path(f) for f in files if f is not None]
    by_folder: dict[Path, list[Path]] = {}
    out = getattr(args, "out", None)
    for f in written:
        by_folder.setdefault(f.parent, []).append(f)
    key = Path(out).name if out is not None else command
    for folder, group in by_folder.items():
        record_outputs(folder, group, key=key, command=command)
    record_run(command, getattr(args, "argv", None), out, config_id, span, metrics)


def span_of(dates: Sequence[Any]) -> list[str] | None:
    """Return ``[first, last]`` of a run's days."""
    return [str(dates[0]), str(dates[-1])] if len(dates) else None
