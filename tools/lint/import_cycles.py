#!/usr/bin/env python3
"""Checks that no module of the crate imports one that imports it back (#16).

Reads every `use crate::…`, `use super::…` and `crate::a::b` path in src/ (the binaries
included, as their own roots), resolves each to the module file it names, and looks for
cycles: between files (a module and its own ancestors or descendants excepted: a parent
declares its children) and between the crate's top-level modules (audio, dsp, model, …),
which must form layers. Prints every cycle and exits 1 if there is one.

Usage: python3 tools/lint/import_cycles.py [SRC_DIR]
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")
SRC = os.path.normpath(SRC)


def module_path(rel):
    """src-relative file → module path (list), e.g. plugin/editor/mod.rs → [plugin, editor]."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


files = {}
for root, _, names in os.walk(SRC):
    for n in names:
        if n.endswith(".rs"):
            rel = os.path.relpath(os.path.join(root, n), SRC)
            if rel.startswith("bin" + os.sep):
                continue  # binaries use the library by its name, never `crate::`
            files[tuple(module_path(rel))] = os.path.join(root, n)


def resolve(path):
    """The longest prefix of `path` that is a module file."""
    for k in range(len(path), -1, -1):
        if tuple(path[:k]) in files:
            return tuple(path[:k])
    return ()


USE = re.compile(r"\b(crate|super)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")
GROUP = re.compile(r"\buse\s+(crate|super)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)::\{([^;]*)\}", re.S)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def imports(module, text):
    found = set()
    # A file's own `mod tests` imports what it tests: only code outside tests counts.
    text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]

    def add(kind, rest):
        segs = [s for s in rest.split("::") if s]
        base = [] if kind == "crate" else list(module[:-1]) if not is_mod_file(module) else list(module[:-1])
        if kind == "super":
            base = list(module[:-1])
            while segs and segs[0] == "super":
                base = base[:-1]
                segs = segs[1:]
        target = resolve(base + segs)
        if target != module:
            found.add(target)

    for m in GROUP.finditer(text):
        kind, prefix = m.group(1), m.group(2)
        for item in m.group(3).split(","):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                add(kind, prefix + "::" + item.split("::{")[0])
            elif item == "self":
                add(kind, prefix)
    for m in USE.finditer(GROUP.sub("", text)):
        add(m.group(1), m.group(2))
    return found


def is_mod_file(module):
    return files[module].endswith(("mod.rs", "lib.rs"))


graph = {m: imports(m, strip_comments(open(p).read())) for m, p in files.items()}


def related(a, b):
    return a[: len(b)] == b or b[: len(a)] == a


def cycles(nodes, edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


name = lambda m: "::".join(m) or "crate"
file_edges = {a: {b for b in bs if not related(a, b)} for a, bs in graph.items()}
top_edges = {}
for a, bs in graph.items():
    for b in bs:
        if a[:1] != b[:1] and a[:1] and b[:1]:
            top_edges.setdefault(a[:1], set()).add(b[:1])

problems = 0
for comp in cycles(list(files), file_edges):
    problems += 1
    print("files import each other:", ", ".join(name(m) for m in comp))
    for a in comp:
        for b in sorted(file_edges[a] & set(comp)):
            print(f"    {name(a)} → {name(b)}")
for comp in cycles(sorted(top_edges), top_edges):
    problems += 1
    print("top-level modules import each other:", ", ".join(name(m) for m in comp))
    for a in comp:
        for b in sorted(top_edges[a] & set(comp)):
            via = sorted(name(x) for x, ys in graph.items() if x[:1] == a and any(y[:1] == b for y in ys))
            print(f"    {name(a)} → {name(b)} (from {', '.join(via)})")
edges = sum(len(v) for v in graph.values())
print(f"{len(files)} modules, {edges} imports between them, {problems} cycle(s)")
sys.exit(1 if problems else 0)
