"""The package's layers (docs/architecture.md), enforced on the imports of every module.

A module may import from its own layer and the layers below it, never above, and
no module of the library imports the package root (``import fastgrad``, ``from fastgrad
import run``): the root re-exports the public API and imports everything. The studies
(``fastgrad/studies/``) sit above the library and use only that public API.
Imports inside functions count too.
"""

import ast
import re
from pathlib import Path

import fastgrad
from fastgrad import models

PACKAGE = Path(fastgrad.__file__).parent
ROOT = PACKAGE.parent

LAYERS = [
    {"codes", "version", "_cache", "results", "store", "checks"},  # plain Python and data: no compiled code
    {"_numba"},  # how kernels are compiled and cached
    {"_math"},  # vectorisable elementary functions
    {"activations", "rng", "initializers"},  # building blocks the kernels inline
    {"kernels"},  # compiled loops (CPU and CUDA); kernels.* import each other
    {"specs"},  # what model specs share: checks, scales, activations
    {"lowering"},  # what the models' lowerings share
    {"executor", "gpu", "explicit", "trials"},  # running trials: the one argument check, threads, chunks, arrays
    {"models"},  # the model table: one module per family (models.* import each other)
    # running and analysing, through the table
    {"engine", "data", "train", "theory", "stats", "spectra", "torch_bridge"},
    {"sweep", "plot", "report", "warmup", "analysis"},  # many runs: stores, figures, warm-up, analysis
    {"studies"},  # the demo's experiments, remedies, isometry: on the public API only (below)
    {"cli", "__init__"},  # the command line and the public namespace
]


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"fastgrad.{module} is in no layer: add it to LAYERS and docs/architecture.md")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def is_module(name: str) -> bool:
    base = PACKAGE.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported fastgrad module) for every import of ``path``; '' for the package root."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "fastgrad":
                    found.append((node.lineno, ""))
                elif alias.name.startswith("fastgrad."):
                    found.append((node.lineno, alias.name.removeprefix("fastgrad.")))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "fastgrad":
                for alias in node.names:  # `from fastgrad import plot` is a submodule; `import run` the root
                    found.append((node.lineno, alias.name if is_module(alias.name) else ""))
            elif node.module.startswith("fastgrad."):
                found.append((node.lineno, node.module.removeprefix("fastgrad.")))
    return found


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_no_import_points_up_the_layers_or_at_the_root():
    bad = []
    for module, path in modules().items():
        if module == "__init__":
            continue
        for line, target in imports(path):
            where = f"fastgrad/{path.relative_to(PACKAGE)}:{line}"
            if target == "" and module.startswith("studies"):
                continue  # the studies use the public namespace (what they may take from it: below)
            if target == "":
                bad.append(f"{where} imports the package root")
            elif layer_of(target) > layer_of(module):
                bad.append(f"{where} imports fastgrad.{target} (layer {layer_of(target)}) from layer "
                           f"{layer_of(module)}")
    assert not bad, "\n".join(bad)


def test_the_checker_catches_violations(tmp_path):
    # The rule itself, on sources written to fail it.
    up = tmp_path / "up.py"
    up.write_text("def f():\n    from fastgrad.engine import run\n")
    root = tmp_path / "root.py"
    root.write_text("import fastgrad as fg\nfrom fastgrad import run\nfrom fastgrad import plot\n")
    assert imports(up) == [(2, "engine")] and layer_of("engine") > layer_of("kernels")
    assert imports(root) == [(1, ""), (2, ""), (3, "plot")]


def test_references_in_the_code_point_to_files_that_exist():
    # Every `something.md` or `tests/...py` / `fastgrad/...py` / `scripts/...py` path named in the sources.
    pattern = re.compile(r"\b((?:docs|tests|scripts|benchmarks|fastgrad)/[\w/.-]+\.(?:md|py)|[A-Z]+\.md)\b")
    missing = []
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "scripts").glob("*.py")):
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1)
            if not (ROOT / name).exists():
                missing.append(f"{path.relative_to(ROOT)} names {name}")
    assert not missing, "\n".join(missing)


MODEL_NAMES = set(models.REGISTRY)
SPEC_NAMES = {model.spec.__name__ for model in models.REGISTRY.values()}
OUTSIDE_THE_TABLE = {"studies"}
"""Studies: they build specs of chosen families (what they study), and switch on none."""


def model_switches(path: Path) -> list[str]:
    """Places where a module decides something by a model's type or name.

    ``isinstance``/``issubclass`` against a spec class, ``type(x) is`` a spec class, a comparison with a
    model's name (``== "mlp"``, ``in ("lstm", "gru")``), and a dict keyed by model names or spec classes.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance",
                                                                                                 "issubclass"):
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) > 1 else set()
            if names & SPEC_NAMES:
                found.append(f"{node.lineno}: isinstance against {sorted(names & SPEC_NAMES)}")
        elif isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
            strings = {n.value for v in values for n in ast.walk(v) if isinstance(n, ast.Constant)}
            names = {n.id for v in values for n in ast.walk(v) if isinstance(n, ast.Name)}
            if strings & MODEL_NAMES or (names & SPEC_NAMES and any(isinstance(op, (ast.Is, ast.IsNot, ast.Eq))
                                                                     for op in node.ops)):
                found.append(f"{node.lineno}: compares with {sorted((strings & MODEL_NAMES) | (names & SPEC_NAMES))}")
        elif isinstance(node, ast.Dict):
            keys = {k.value if isinstance(k, ast.Constant) else getattr(k, "id", None) for k in node.keys if k}
            if keys & (MODEL_NAMES | SPEC_NAMES):
                found.append(f"{node.lineno}: a dict keyed by {sorted(keys & (MODEL_NAMES | SPEC_NAMES))}")
    return found


def test_no_module_outside_the_model_table_switches_on_a_model():
    bad = []
    for module, path in modules().items():
        top = module.split(".")[0]
        if top in ("models", "kernels") or top in OUTSIDE_THE_TABLE:
            continue
        bad += [f"fastgrad/{path.relative_to(PACKAGE)}:{place}" for place in model_switches(path)]
    assert not bad, "ask the model table (fastgrad.models) instead:\n" + "\n".join(bad)


def test_the_switch_scan_finds_switches(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(spec, name):\n    if isinstance(spec, (MLP, RNN)):\n        return 1\n"
                      "    if name == 'lstm':\n        return 2\n    return {'gru': 3}\n")
    assert len(model_switches(sample)) == 3


PUBLIC_MODULES = {"data", "plot", "report", "stats", "theory", "analysis", "warmup"}
"""The modules of the public API that are imported by name (docs/api), besides the package's own namespace."""


def test_the_studies_use_only_the_public_api():
    # A study imports names fastgrad exports, the public modules, and other studies: nothing internal.
    bad = []
    for module, path in modules().items():
        if not module.startswith("studies"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"fastgrad/{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "fastgrad":
                bad += [f"{where} imports {a.name}, which fastgrad does not export" for a in node.names
                        if a.name not in fastgrad.__all__ and a.name not in PUBLIC_MODULES]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fastgrad."):
                top = node.module.split(".")[1]
                if top not in PUBLIC_MODULES | {"studies"}:
                    bad.append(f"{where} imports fastgrad.{node.module.split('.', 1)[1]}, not public API")
            elif isinstance(node, ast.Import):
                bad += [f"{where} imports {a.name}, not public API" for a in node.names
                        if a.name.startswith("fastgrad.") and a.name.split(".")[1] not in PUBLIC_MODULES | {"studies"}]
    assert not bad, "\n".join(bad)
