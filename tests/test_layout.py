"""The package's shape: sub-packages by role, and no import cycle between modules (also counting
imports made inside functions), so the data flow read -> split -> plan -> render -> write can be
followed one way."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "spatule_synth")


def module_imports() -> dict[str, set[str]]:
    graph = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            module = relative[:-len(".__init__")] if relative.endswith(".__init__") else relative
            imported = set()
            tree = ast.parse(open(path, encoding="utf-8").read())
            typing_only = {id(child) for node in ast.walk(tree)  # `if TYPE_CHECKING:` never runs
                           if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
                           for child in ast.walk(node)}
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spatule_synth"):
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names if a.name.startswith("spatule_synth"))
            graph[module] = imported - {module}
    return graph


def test_no_module_imports_itself_through_others():
    graph = module_imports()
    state: dict[str, int] = {}

    def visit(module, path):
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, "import cycle: " + " -> ".join(path + [module])
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if target in graph:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
    assert len(graph) > 40


def test_modules_live_in_sub_packages_by_role():
    top = sorted(n for n in os.listdir(PACKAGE) if n.endswith(".py"))
    assert top == ["__init__.py", "cli.py"]
    for package in ("core", "formats", "generate", "modes", "tags", "gan", "segmenter"):
        init = os.path.join(PACKAGE, package, "__init__.py")
        assert open(init, encoding="utf-8").read().startswith('"""'), f"{package} has no docstring"
