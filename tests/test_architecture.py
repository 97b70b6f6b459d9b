"""The dependency direction of the design, checked by walking every import (ast):

app.py, eval/ -> videomind (public API only) -> agents -> memory -> videomind.{types, config, errors, models};
ingest -> videomind.{types, config, errors, models}; kernels -> nothing of ours.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"videomind": REPO / "videomind", "videomind.kernels": REPO / "kernels",
            "videomind.memory": REPO / "memory", "videomind.agents": REPO / "agents"}

# module prefix -> prefixes of ours it must never import
FORBIDDEN = {
    "videomind.kernels": ["videomind"],
    "videomind.memory": ["videomind.agents", "videomind.ingest", "videomind.api", "videomind.cli",
                         "videomind.backends"],
    "videomind.agents": ["videomind.api", "videomind.cli", "videomind.ingest"],
    "videomind.ingest": ["videomind.memory", "videomind.agents", "videomind.api", "videomind.cli"],
    "videomind.types": ["videomind."], "videomind.errors": ["videomind."],
    "videomind.config": ["videomind.memory", "videomind.agents", "videomind.ingest", "videomind.api",
                         "videomind.backends", "videomind.models"],
    "videomind.models": ["videomind.memory", "videomind.agents", "videomind.ingest", "videomind.api",
                         "videomind.backends", "videomind.cli"],
}
ALLOWED_OWN = {"videomind.kernels": ["videomind.kernels"]}


def _modules():
    for pkg, root in PACKAGES.items():
        for f in root.rglob("*.py"):
            if pkg == "videomind" and any(f.is_relative_to(r) for r in PACKAGES.values() if r != root):
                continue
            rel = f.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([pkg, *parts]), f, f.name == "__init__.py"


def _imports(name: str, path: Path, is_pkg: bool) -> set[str]:
    out = set()
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _show(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def _violations():
    bad = []
    for name, path, is_pkg in _modules():
        for prefix, banned in FORBIDDEN.items():
            if name != prefix and not name.startswith(prefix + "."):
                continue
            for imp in _imports(name, path, is_pkg):
                if any(imp.startswith(a) for a in ALLOWED_OWN.get(prefix, [])):
                    continue
                if any(imp == b.rstrip(".") or imp.startswith(b if b.endswith(".") else b + ".") or imp == b
                       for b in banned):
                    bad.append(f"{_show(path)} imports {imp}")
    for f in [REPO / "app.py", *sorted((REPO / "eval").rglob("*.py"))]:
        if f.exists():
            for imp in _imports("app", f, False):
                if imp.startswith("videomind.") and imp.count(".") >= 1 and \
                        not imp.split(".")[1][:1].isupper() and imp.split(".")[1] not in _public_names():
                    bad.append(f"{_show(f)} imports {imp} (use the public API: from videomind import ...)")
    return sorted(set(bad))


def _public_names() -> set[str]:
    import videomind

    return set(videomind.__all__)


def test_dependencies_point_one_way():
    assert _violations() == []


def test_the_checker_catches_a_wrong_import(tmp_path, monkeypatch):
    fake = tmp_path / "memory"
    fake.mkdir()
    (fake / "bad.py").write_text("from videomind.agents.loop import LLMPolicy\nfrom . import store\n")
    monkeypatch.setitem(PACKAGES, "videomind.memory", fake)
    found = _violations()
    assert any(v == "bad.py imports videomind.agents.loop" for v in found), found


def test_import_videomind_is_light():
    code = "import sys, videomind; from videomind import Config, Answer; Config(); " \
           "heavy = [m for m in ('torch', 'transformers', 'faster_whisper', 'gradio', 'faiss') if m in sys.modules]; " \
           "print(heavy); sys.exit(1 if heavy else 0)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
