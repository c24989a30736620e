"The package's shape: imports point one way, down the pipeline (no cycles, imports inside functions included), and the code is lint-clean."
import ast, subprocess, sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/'chatmimic'

def imports(path:Path) -> set:
    """The chatmimic modules that `path` imports anywhere (module level or inside functions). Readers named in parse's READERS
    registry are plugins looked up by name, not imports: that dependency is not counted here."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: out.add(node.module.split('.')[0])
            elif node.level == 1: out |= {a.name for a in node.names}
            elif (node.module or '').startswith('chatmimic.'): out.add(node.module.split('.')[1])
            elif node.module == 'chatmimic': out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('chatmimic.')}
    mods = {p.stem for p in PKG.glob('*.py')}
    return {m for m in out if m in mods and m != path.stem}

def graph() -> dict: return {p.stem: imports(p) for p in PKG.glob('*.py') if p.stem not in ('_modidx', '__init__')}

def cycles(g:dict) -> list:
    "Every module that can reach itself, with one path that does it."
    found = []
    for start in sorted(g):
        stack, seen = [(start, [start])], set()
        while stack:
            n, path = stack.pop()
            for m in sorted(g.get(n, ())):
                if m == start: found.append(' -> '.join(path + [m])); stack = []; break
                if m not in seen: seen.add(m); stack.append((m, path + [m]))
    return found

def test_cycle_finder_finds_one():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a -> b -> c -> a', 'b -> c -> a -> b', 'c -> a -> b -> c']
    assert cycles({'a': {'b'}, 'b': set()}) == []

def test_no_import_cycles():
    assert cycles(graph()) == []

def test_core_imports_nothing_of_ours():
    assert graph()['core'] == set()

def test_lint_clean():
    r = subprocess.run([str(Path(sys.executable).with_name('ruff')), 'check', 'chatmimic', 'tests', 'bench'], cwd=PKG.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
