"""The `.pxd` files beside the data plane's modules declare their classes' attributes for the
compiled build. An attribute a class's source sets but its `.pxd` does not declare works in
pure Python and fails only compiled (an extension type has no `__dict__`), so the two lists
are compared here, from the sources, whatever build runs the suite."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import tollway

PACKAGE = Path(tollway.__file__).parent
_CLASS = re.compile(r"^cdef class (\w+)(?:\((\w+)\))?:")
_FIELDS = re.compile(r"^\s+cdef public \w+ (.+)$")


def _declared() -> dict[str, tuple[str | None, set[str], Path]]:
    """Each extension type: its base's name, its declared attributes, its module's source."""
    found: dict[str, tuple[str | None, set[str], Path]] = {}
    for pxd in sorted(PACKAGE.rglob("*.pxd")):
        current: set[str] | None = None
        for line in pxd.read_text().splitlines():
            header = _CLASS.match(line)
            if header is not None:
                current = set()
                found[header.group(1)] = (header.group(2), current, pxd.with_suffix(".py"))
            elif current is not None and (fields := _FIELDS.match(line)):
                current.update(name.strip() for name in fields.group(1).split(","))
    return found


def _assigned(source: Path, name: str) -> set[str]:
    """The attributes of `self` that class `name`'s methods assign."""
    [cls] = [
        node
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == name
    ]
    targets: list[ast.expr] = []
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign):
            targets.extend(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets.append(node.target)
    names = set()
    for target in targets:
        for part in target.elts if isinstance(target, ast.Tuple) else [target]:
            if (
                isinstance(part, ast.Attribute)
                and isinstance(part.value, ast.Name)
                and part.value.id == "self"
            ):
                names.add(part.attr)
    return names


def _with_bases(declared: dict[str, tuple[str | None, set[str], Path]], name: str) -> set[str]:
    """What `name` and the extension types it derives from declare."""
    base, fields, _ = declared[name]
    known = set(fields)
    while base is not None:
        base, inherited, _ = declared[base]
        known |= inherited
    return known


def test_every_attribute_a_compiled_class_sets_is_declared_in_its_pxd() -> None:
    declared = _declared()
    assert {"HttpConnection", "UpstreamConnection", "ModelCall", "RequestContext"} <= set(declared)
    for name, (_, _, source) in declared.items():
        known = _with_bases(declared, name)
        missing = _assigned(source, name) - known
        assert not missing, f"{source.name}: {name} sets {sorted(missing)}, not in its .pxd"


def test_a_class_with_slots_declares_exactly_its_slots() -> None:
    declared = _declared()
    bases = {base for base, _, _ in declared.values()}
    for name, (_, _, source) in declared.items():
        if name in bases:
            continue  # checked with its subclass: a base declares what both halves share
        module = importlib.import_module(
            "tollway." + ".".join(source.relative_to(PACKAGE).with_suffix("").parts)
        )
        slots: set[str] = set()
        for cls in getattr(module, name).__mro__:
            slots.update(vars(cls).get("__slots__", ()))
        known = _with_bases(declared, name)
        if slots:
            assert slots == known, f"{source.name}: {name}'s __slots__ and .pxd differ"
