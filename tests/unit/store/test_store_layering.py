"""Only dolphin.adapters.hazelcast.store may import the Hazelcast client (DESIGN.md layering)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from dolphin.bootstrap import open_store
from dolphin.core.errors import ConfigError
from dolphin.store.memory import MemoryStore

SRC = Path(__file__).resolve().parents[3] / "src" / "dolphin"
ALLOWED = {SRC / "adapters" / "hazelcast" / "store.py"}


def _imports_hazelcast(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "hazelcast" or n.startswith("hazelcast.") for n in names):
            return True
    return False


def test_no_module_but_the_adapter_imports_the_hazelcast_client() -> None:
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p not in ALLOWED and _imports_hazelcast(p)
    ]
    assert offenders == []


def test_the_embedded_store_path_never_loads_the_client() -> None:
    code = (
        "import sys, dolphin.store, dolphin.store.memory, dolphin.store.features, "
        "dolphin.adapters.hazelcast.control, dolphin.commands.hz, dolphin.bootstrap\n"
        "s = dolphin.bootstrap.open_store('memory://')\n"
        "assert 'hazelcast' not in sys.modules, 'hazelcast imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_open_store_chooses_the_adapter_from_the_url() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    store.close()
    with pytest.raises(ConfigError):
        open_store("redis://x")
    with pytest.raises(ConfigError):
        open_store("localhost:5701")
