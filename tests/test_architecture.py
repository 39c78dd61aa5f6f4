"""The shape of the code: no import cycle, data flowing one way through the stages, and inference
that never imports training. Read from the source (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vcopy"
# the stages in the order data flows through them: a module imports nothing from a later stage
STAGES = (
    ("decode", ("vcopy.video",)),
    ("features", ("vcopy.features", "vcopy.whitening")),
    ("keyframes", ("vcopy.keyframes",)),
    ("store", ("vcopy.pipeline", "vcopy.ann", "vcopy.library", "vcopy.library_db", "vcopy.library_ann")),
    ("match", ("vcopy.similarity",)),
    ("localize", ("vcopy.localize",)),
    ("report", ("vcopy.report", "vcopy.groundtruth", "vcopy.evaluate")),
    ("evidence", ("vcopy.evidence",)),
)
# training (``vcopy.train``) sits beside the stages (it reads several); only it and the CLI import it


def _training(module: str) -> bool:
    return module == "vcopy.train" or module.startswith("vcopy.train.")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports() -> dict[str, set[str]]:
    """Each module's vcopy imports, as modules (``from vcopy.x import name`` is ``vcopy.x``, or
    ``vcopy.x.name`` where that is a module); imports only for type checking are left out."""
    modules = _modules()

    def module_of(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            targets = []
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("vcopy"):
                targets = [module_of(f"{child.module}.{a.name}") for a in child.names]
            elif isinstance(child, ast.Import):
                targets = [module_of(a.name) for a in child.names if a.name.startswith("vcopy")]
            graph[name] |= {t for t in targets if t and t != name}
            visit(child, name)

    for name, path in modules.items():
        visit(ast.parse(path.read_text()), name)
    return graph


def _stage(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_no_import_cycle() -> None:
    graph = _imports()
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            walk(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])


def test_no_stage_imports_a_later_one_and_inference_imports_no_training() -> None:
    later = []
    for module, targets in _imports().items():
        for target in sorted(targets):
            own, theirs = _stage(module), _stage(target)
            if not _training(module) and own is not None and theirs is not None and theirs > own:
                later.append(f"{module} ({STAGES[own][0]}) imports {target} ({STAGES[theirs][0]})")
            if _training(target) and not _training(module) and not module.startswith("vcopy.cli"):
                later.append(f"{module} imports the trainer {target}")
    assert not later, "\n".join(later)


def test_the_checks_see_the_imports() -> None:
    graph = _imports()  # a check that finds nothing must not pass for want of reading anything
    assert "vcopy.localize.base" in graph["vcopy.localize.spd"]
    assert "vcopy.localize.spd_settings" in graph["vcopy.localize.spd_model"]
    assert _stage("vcopy.library") == 3 and _stage("vcopy.cli") is None
    assert "vcopy.train.loop" in graph["vcopy.train.spd"] and _training("vcopy.train.spd")
