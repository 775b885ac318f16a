"""The layout's rules, read from the source with `ast` (no TensorFlow, no import of fmnist): each subpackage's
__init__.py docstring says what it never imports ("Never imports: a, b."), and this test holds every module of it,
and everything those modules import in turn, to that list. The subpackages import one another without a cycle, no
module imports itself back at import time, and no __init__.py does anything when imported."""

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "fmnist"
TOP_LEVEL = {"fmnist", "fmnist.main", "fmnist.errors"}  # Outside the subpackages: the package, entry point and errors.
# The rules, which each docstring must hold at least (the docstrings are where the full lists live).
REQUIRED = {"fmnist.export": {"fmnist.training"}, "fmnist.predict": {"fmnist.training"},
            "fmnist.data": {"fmnist.training", "fmnist.workdir", "fmnist.export", "fmnist.predict"},
            "fmnist.models": {"fmnist.training", "fmnist.workdir", "fmnist.export", "fmnist.predict"},
            "fmnist.config": {"tensorflow", "keras"}, "fmnist.errors": {"tensorflow", "keras"}}
MODULE_NAME = re.compile(r"fmnist(\.\w+)+")


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


TREES = {module_name(p): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def wing(module: str) -> str:
    """fmnist.training.train -> fmnist.training; the top-level modules are their own."""
    return module if module in TOP_LEVEL else ".".join(module.split(".")[:2])


def resolve(name: str) -> str:
    """The fmnist module `name` refers to (a module, or the module that holds an attribute of that name)."""
    while name not in TREES:
        name = name.rsplit(".", 1)[0]
    return name


def imports(module: str, top_level_only: bool = False) -> set[str]:
    """Every name `module` imports (modules, or their attributes for `from m import x`), and the fmnist modules it
    names in a string of its own (importlib.import_module's arguments); with `top_level_only`, only the imports
    that run when it is imported."""
    tree = TREES[module]
    nodes = tree.body if top_level_only else ast.walk(tree)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            out.add(node.value)
    return out


def fmnist_imports(module: str, top_level_only: bool = False) -> set[str]:
    """The fmnist modules importing `module` loads: what it names, and the packages that hold them."""
    out = set()
    for name in imports(module, top_level_only):
        if name == "fmnist" or name.startswith("fmnist."):
            target = resolve(name)
            out |= {".".join(target.split(".")[:i]) for i in range(1, target.count(".") + 2)}
    return out - {module}


def closure(module: str) -> set[str]:
    """`module` and every fmnist module it imports, directly or through others (lazy imports included)."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += fmnist_imports(m)
    return seen


def never_imports(package: str) -> set[str]:
    docstring = ast.get_docstring(TREES[package]) or ""
    found = re.search(r"^Never imports: (.+?)\.?$(?:\n\n|\Z)", docstring, re.M | re.S)
    assert found, f"{package}'s docstring has no 'Never imports: ...' paragraph"
    names = {n.strip() for n in found.group(1).replace("\n", " ").split(",")}
    assert all(re.fullmatch(r"\w+(\.\w+)*", n) for n in names), names
    return names


def forbidden(name: str, rules: set[str]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in rules)


SUBPACKAGES = sorted(m for m in TREES if m.count(".") == 1 and (PACKAGE / m.split(".")[1] / "__init__.py").exists())


def ruled() -> dict[str, set[str]]:
    """{subpackage, or fmnist.errors: what its docstring says it never imports}."""
    return {m: never_imports(m) for m in [*SUBPACKAGES, "fmnist.errors"]}


def test_every_module_sits_in_a_subpackage_whose_docstring_states_its_rules():
    subpackages = set(SUBPACKAGES)
    assert subpackages == {f"fmnist.{w}" for w in ("config", "data", "models", "runtime", "training", "workdir",
                                                   "export", "predict")}
    assert {m for m in TREES if m.count(".") == 1} - subpackages == TOP_LEVEL - {"fmnist"}
    rules = ruled()
    assert set(rules) == subpackages | {"fmnist.errors"}
    for package, required in REQUIRED.items():
        assert required <= rules[package], f"{package}'s docstring lost a rule: {required - rules[package]}"


def test_no_subpackage_imports_what_its_docstring_forbids():
    broken = []
    for package, rules in ruled().items():
        for module in (m for m in TREES if m == package or m.startswith(package + ".")):
            for reached in sorted(closure(module)):
                names = imports(reached) | ({reached} - {module})
                broken += [f"{module} -> {reached}: {name}" for name in sorted(names) if forbidden(name, rules)]
    assert broken == []


def test_the_subpackages_import_one_another_without_a_cycle():
    edges = {w: set() for w in map(wing, TREES)}
    for module in TREES:
        edges[wing(module)] |= {wing(m) for m in fmnist_imports(module)} - {wing(module), "fmnist"}
    order: list[str] = []  # Depth-first; a node met again while still on the path closes a cycle.
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "on path":
            raise AssertionError("cycle: " + " -> ".join(path[path.index(node):] + [node]))
        if node not in state:
            state[node] = "on path"
            for nxt in sorted(edges[node]):
                visit(nxt, path + [node])
            state[node] = "done"
            order.append(node)

    for node in sorted(edges):
        visit(node, [])
    assert order.index("fmnist.config") < order.index("fmnist.training") < order.index("fmnist.main")


def test_no_module_imports_itself_back_when_imported():
    for start in TREES:
        todo, seen = [(start, [start])], set()
        while todo:
            module, path = todo.pop()
            for nxt in fmnist_imports(module, top_level_only=True):
                assert nxt != start, "import cycle: " + " -> ".join(path + [nxt])
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, path + [nxt]))


def test_no_init_does_anything_when_imported():
    for module, tree in TREES.items():
        if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists():
            docstring, *rest = tree.body
            assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant), module
            assert all(isinstance(s, ast.Assign) and isinstance(s.value, ast.Constant) for s in rest), module
