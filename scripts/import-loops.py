#!/usr/bin/env python3
"""Import loops between the source files of each crate: a file that uses another (through
`crate::`, `super::` or `self::` paths) while that one, directly or not, uses it back.

    scripts/import-loops.py [CRATE_DIR ...]    (default: every crates/*)

Prints the files of each loop and exits 1 when there is one. Only paths count as uses: a
parent naming its own children (`mod x;`, `x::f()`) declares and drives them, so those edges
are left out, while a child's `super::Type` is a use. Comments are skipped."""
import os
import re
import sys

PATH = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)')
GROUP = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*?)\}', re.S)


def modules(src):
    """Module path (tuple) -> file, for the library or binary roots under `src`."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel in (['lib'], ['main']):
                path = ()
            elif rel[-1] == 'mod':
                path = tuple(rel[:-1])
            else:
                path = tuple(rel)
            if rel == ['main']:
                continue  # the binary's root uses the library as a crate, not by paths
            out[path] = os.path.join(root, f)
    return out


def strip_comments(text):
    return re.sub(r'//[^\n]*', '', text)


def targets(mod, text, known):
    """The modules `text` (the file of `mod`) refers to."""
    found = set()
    paths = []
    for m in GROUP.finditer(text):
        base = m.group(1) + m.group(2)
        for item in re.split(r',', m.group(3)):
            item = item.strip().split(' as ')[0].strip()
            item = re.sub(r'::\{.*', '', item, flags=re.S)
            if item and item != 'self':
                paths.append(base + '::' + item)
    for m in PATH.finditer(text):
        paths.append(m.group(1) + m.group(2))
    for p in paths:
        parts = p.split('::')
        if parts[0] == 'crate':
            base, rest = (), parts[1:]
        else:
            base, rest = mod, parts[1:]
            if parts[0] == 'super':
                base = base[:-1]
                while rest and rest[0] == 'super':
                    base, rest = base[:-1], rest[1:]
        full = base + tuple(rest)
        # The longest prefix that is a file of its own.
        for n in range(len(full), -1, -1):
            if full[:n] in known:
                found.add(full[:n])
                break
    # A module's ancestors are its parents, not uses, unless it names something defined there.
    return {t for t in found if t != mod}


def loops(crate):
    src = os.path.join(crate, 'src')
    known = modules(src)
    graph = {}
    for mod, path in known.items():
        text = strip_comments(open(path, encoding='utf-8').read())
        graph[mod] = targets(mod, text, known)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return [[os.path.relpath(known[m]) for m in sorted(c)] for c in sccs]


def main():
    crates = sys.argv[1:] or sorted(
        os.path.join('crates', c) for c in os.listdir('crates')
        if os.path.isdir(os.path.join('crates', c, 'src')))
    found = 0
    for c in crates:
        for comp in loops(c):
            found += 1
            print(f'{c}: {len(comp)} files use each other: ' + ', '.join(comp))
    if found:
        sys.exit(1)
    print(f'no import loops in {len(crates)} crates')


if __name__ == '__main__':
    main()
