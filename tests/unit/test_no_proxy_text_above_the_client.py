"""No module above ``proxy/`` matches the proxy's text: the client answers with types (issue 10).

The proxy says "already in team", "User not found in team", "already exists" in free text; ``proxy/answers``
turns that into exception classes and ``RowErrorKind`` values. This test reads every module outside
``proxy/`` (an AST scan) and fails where one compares text that came from the proxy — an exception's
``message``/``error_type``, ``str(exc)`` of a caught proxy error, a batch row's ``error`` — with a string:
``"x" in exc.message``, ``err.lower() == "x"``, ``text.startswith("x")``, ``re.search("x", str(exc))``.
"""

from __future__ import annotations

import ast
import pathlib
import textwrap

import pytest

import litellm_usersync
from litellm_usersync import errors

PACKAGE = pathlib.Path(litellm_usersync.__file__).parent
#: attributes that carry the proxy's words (``ProxyError.message``/``error_type``, ``RowResult.error``)
TEXT_ATTRS = frozenset({"message", "error", "error_type"})
#: exception names whose ``str()`` is the proxy's text (every ProxyError, and the handlers that catch them)
PROXY_EXCEPTIONS = frozenset(
    {name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, errors.ProxyError)}
    | {"UsersyncError", "Exception", "BaseException"}
)
_TEXT_METHODS = frozenset({"startswith", "endswith", "find", "rfind", "index", "rindex", "count", "partition"})
#: string methods whose result is still the text they were called on (``exc.message.lower()``)
_STR_METHODS = frozenset({"lower", "upper", "casefold", "strip", "lstrip", "rstrip", "replace", "split", "splitlines"})
_RE_FUNCS = frozenset({"search", "match", "fullmatch", "findall", "finditer", "sub", "split"})


def _handler_names(node: ast.expr | None) -> set[str]:
    if node is None:
        return {"BaseException"}
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    out = set()
    for p in parts:
        if isinstance(p, ast.Name):
            out.add(p.id)
        elif isinstance(p, ast.Attribute):
            out.add(p.attr)
    return out


def _walk_scope(scope: ast.AST) -> list[ast.AST]:
    """The nodes of one scope: a function's body (or the module's), not the bodies of functions inside it."""
    out: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        n = todo.pop()
        out.append(n)
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(n))
    return out


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` (a literal by another name)."""
    out: dict[str, str] = {}
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        value = getattr(stmt, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return out


class _Scan:
    def __init__(self, source: str, module: str) -> None:
        self.tree = ast.parse(source)
        self.module = module
        self.consts = _string_constants(self.tree)
        self.found: list[tuple[int, str]] = []

    def literal(self, node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id in self.consts:
            return [self.consts[node.id]]
        if isinstance(node, ast.Tuple):
            return [s for e in node.elts for s in self.literal(e)]
        return []

    def tainted(self, node: ast.AST, names: set[str]) -> bool:
        """Whether ``node``'s value holds the proxy's text: a text attribute, a name bound to it, ``str()`` of it,
        a string method of it, an f-string or expression built from it. ``exc.status``, ``exc.method``,
        ``r.kind``: not text."""
        if isinstance(node, ast.Attribute):
            if node.attr in TEXT_ATTRS:
                return True
            return node.attr in _STR_METHODS and self.tainted(node.value, names)
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.Call):
            args = [*node.args, *(k.value for k in node.keywords)]
            return self.tainted(node.func, names) or any(self.tainted(a, names) for a in args)
        if isinstance(node, (ast.Constant, ast.Lambda)):
            return False
        return any(self.tainted(c, names) for c in ast.iter_child_nodes(node))

    def run(self) -> list[tuple[int, str]]:
        scopes: list[ast.AST] = [self.tree]
        scopes += [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for scope in scopes:
            self.scope(scope)
        return sorted(set(self.found))

    def scope(self, scope: ast.AST) -> None:
        nodes = list(_walk_scope(scope))
        names: set[str] = set()
        for n in nodes:
            if isinstance(n, ast.ExceptHandler) and n.name and _handler_names(n.type) & PROXY_EXCEPTIONS:
                names.add(n.name)
        changed = True
        while changed:  # names assigned from proxy text are proxy text (err = r.error or "rejected")
            changed = False
            for n in nodes:
                if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and n.value is not None:
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    if self.tainted(n.value, names):
                        for t in targets:
                            if isinstance(t, ast.Name) and t.id not in names:
                                names.add(t.id)
                                changed = True
        for n in nodes:
            if isinstance(n, ast.Compare):
                sides = [n.left, *n.comparators]
                if not any(isinstance(op, (ast.In, ast.NotIn, ast.Eq, ast.NotEq)) for op in n.ops):
                    continue
                words = [w for s in sides for w in self.literal(s)]
                if words and any(not self.literal(s) and self.tainted(s, names) for s in sides):
                    self.flag(n, words)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
                args = [*n.args, *(k.value for k in n.keywords)]
                if n.func.attr in _TEXT_METHODS and self.tainted(n.func.value, names):
                    words = [w for a in args for w in self.literal(a)]
                    if words:
                        self.flag(n, words)
                elif (
                    n.func.attr in _RE_FUNCS
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id == "re"
                    and any(self.tainted(a, names) for a in args)
                ):
                    self.flag(n, [w for a in args for w in self.literal(a)] or ["<regex>"])

    def flag(self, node: ast.AST, words: list[str]) -> None:
        self.found += [(getattr(node, "lineno", 0), w) for w in words]


def scan(source: str, module: str = "<test>") -> list[tuple[int, str]]:
    return _Scan(source, module).run()


def modules_above_the_client() -> list[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "proxy" not in p.relative_to(PACKAGE).parts)


def test_no_module_above_the_client_matches_proxy_text() -> None:
    found = []
    for path in modules_above_the_client():
        rel = path.relative_to(PACKAGE).as_posix()
        found += [f"{rel}:{line}: matches {word!r}" for line, word in scan(path.read_text(encoding="utf-8"), rel)]
    assert not found, (
        "proxy text matched outside proxy/ (add a typed answer in proxy/answers.py instead):\n" + "\n".join(found)
    )


def test_the_scan_reads_the_whole_package_above_the_client() -> None:
    rels = {p.relative_to(PACKAGE).as_posix() for p in modules_above_the_client()}
    assert {"apply/executor.py", "apply/invitations.py", "cli/_common.py", "files/audit.py"} <= rels
    assert not any(r.startswith("proxy/") for r in rels)


@pytest.mark.parametrize(
    "code",
    [
        # the two matches this test was written to remove (executor bulk rows, invitations)
        """
        def f(r):
            err = r.error or "rejected"
            if "already exists" in err.lower() or "duplicate" in err.lower():
                return 1
        """,
        """
        _MISSING = "does not exist in 'litellm_usertable'"
        def f(exc):
            text = exc.message
            return _MISSING in text.lower()
        """,
        """
        def f():
            try:
                g()
            except ProxyError as exc:
                if "not found in team" in str(exc):
                    return 1
        """,
        """
        def f(exc):
            return exc.error_type == "team_member_already_in_team"
        """,
        """
        def f(exc):
            return exc.message.lower().startswith(("user", "team"))
        """,
        """
        import re
        def f(exc):
            return re.search(r"passed user_id=(.+)", exc.message)
        """,
        """
        async def f(client):
            try:
                await client.add_team_members("t", [])
            except (RejectedError, AuthError) as e:
                msg = f"{e}"
                return msg != "User already in team"
        """,
    ],
)
def test_the_scan_finds_proxy_text_matched(code: str) -> None:
    assert scan(textwrap.dedent(code)), code


@pytest.mark.parametrize(
    "code",
    [
        # types, statuses and our own text are fine
        """
        def f(r, exc):
            if r.kind is RowErrorKind.ALREADY_EXISTS or isinstance(exc, AlreadyMemberError):
                return f"User already exists: {r.error}"
            return exc.status == 404
        """,
        """
        def f(path):
            try:
                open(path)
            except OSError as exc:
                return "denied" in str(exc)
        """,
        """
        def f(value):
            return value.lower() in ("a", "b")
        """,
    ],
)
def test_the_scan_leaves_types_statuses_and_other_text_alone(code: str) -> None:
    assert scan(textwrap.dedent(code)) == []
