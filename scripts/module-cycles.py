#!/usr/bin/env python3
"""Finds import circles between the modules of a crate.

Usage: scripts/module-cycles.py CRATE_SRC_DIR [--floors]

A module is a source file (`a.rs` or `a/mod.rs` is `a`, `a/b.rs` is `a::b`). An edge A -> B is
any path `crate::B...` (or `super::...`, resolved) named in A outside its `#[cfg(test)]` tests
module. Circles among modules are printed and make the exit status 1; `--floors` also prints
each module's floor (1 + the highest floor it imports; modules of a circle share one).
"""

import os
import re
import sys


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return "crate"
    return "::".join(rel)


def strip_tests(text):
    # Drop the `#[cfg(test)] mod tests { ... }` block (to the end of the file by convention).
    m = re.search(r"#\[cfg\(test\)\]\s*mod tests\b", text)
    text = text[: m.start()] if m else text
    # Drop comments and string and char literals in one left-to-right pass (a `//` inside a
    # string is not a comment): doc examples name paths that are not imports.
    token = re.compile(
        r'r(#*)".*?"\1|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])\'|//[^\n]*|/\*.*?\*/',
        re.S,
    )
    return token.sub(lambda m: '""' if m.group(0)[0] in "r\"'" else "", text)


def main():
    root = sys.argv[1]
    files = []
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, f) for f in fs if f.endswith(".rs")]
    mods = {module_of(root, f): f for f in files}
    names = set(mods)
    # Items the crate root re-exports (`pub use a::b::{X, Y}`): `crate::X` is an edge to `a::b`.
    reexports = {}
    lib = os.path.join(root, "lib.rs")
    if os.path.exists(lib):
        for path, items in re.findall(
            r"pub use ((?:[a-z_][a-z0-9_]*::)+)(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)",
            strip_tests(open(lib, encoding="utf-8").read()),
        ):
            mod = path.strip(":")
            for item in items.strip("{}").split(","):
                item = item.strip().split(" as ")[-1]
                if item:
                    reexports[item] = mod
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = strip_tests(open(f, encoding="utf-8").read())
        parent = m.rsplit("::", 1)[0] if "::" in m else "crate"
        paths = re.findall(r"\bcrate((?:::[a-z_][a-z0-9_]*)+)", text)
        paths += [
            (("::" + parent) if parent != "crate" else "") + p
            for p in re.findall(r"\bsuper((?:::[a-z_][a-z0-9_]*)+)", text)
        ]
        # `use crate::{a, b::c}` groups.
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            for item in group.split(","):
                item = item.strip().split(" as ")[0]
                if item:
                    paths.append("::" + item)
        for item in re.findall(r"\bcrate::([A-Z][A-Za-z0-9_]*)", text):
            if item in reexports:
                paths.append("::" + reexports[item])
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            for item in group.split(","):
                item = item.strip()
                if item in reexports:
                    paths.append("::" + reexports[item])
        for p in paths:
            parts = p.strip(":").split("::")
            # The longest prefix that is a module.
            for n in range(len(parts), 0, -1):
                cand = "::".join(parts[:n])
                if cand in names:
                    if cand != m and not m.startswith(cand + "::") and cand != "crate":
                        edges[m].add(cand)
                    break
    # A child module may always use its parent's items (its own folder).
    for m in list(edges):
        edges[m] = {t for t in edges[m] if not m.startswith(t + "::")}
    # Strongly connected components (Tarjan).
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    circles = [c for c in comps if len(c) > 1]
    if "--floors" in sys.argv:
        comp_of = {v: tuple(c) for c in comps for v in c}
        floor = {}
        for c in comps:  # Tarjan emits components in reverse topological order.
            below = [floor[comp_of[w]] for v in c for w in edges[v] if comp_of[w] != tuple(c)]
            floor[tuple(c)] = 1 + max(below, default=0)
        for c in sorted(comps, key=lambda c: (floor[tuple(c)], c)):
            if c == ["crate"]:
                continue
            print(f"floor {floor[tuple(c)]}: {', '.join(c)}")
    for c in circles:
        print(f"import circle in {root}: {' <-> '.join(c)}", file=sys.stderr)
    sys.exit(1 if circles else 0)


if __name__ == "__main__":
    main()
