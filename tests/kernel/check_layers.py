"""The kernel's layers, checked mechanically (CTest kernel.layers).

kernel/ is split into folders, each its own library (kernel/CMakeLists.txt).
This reads every `#include "..."` of kernel/ and checks that
  - a file includes only headers of its own folder or of the folders below it
    (ALLOWED), so no file in cells/ or protocol/ includes a magics/ header;
  - the graph of units (a .c and its .h are one unit) has no cycle, within a
    folder as across folders (a unit's calls go to the headers it includes);
  - no function in kernel/magics/ is longer than MAX_FUNCTION_LINES lines;
  - only kernel/magics/ includes the engine's header, actmax.h.
`--self-test` plants an upward include and a cycle in a copy of the tree and
checks that both are found, so the check can fail.

usage: check_layers.py KERNEL_DIR [--self-test]
"""
import os
import re
import shutil
import sys
import tempfile

# Folder -> the folders it may include from (besides itself). "." is the
# kernel's top folder (main.c), which sees everything.
ALLOWED = {
    "base": set(),
    "keys": set(),
    "render": set(),
    "cells": {"base", "keys"},
    "protocol": {"cells", "base", "keys"},
    "magics": {"cells", "base", "keys", "render"},
    ".": {"protocol", "magics", "cells", "base", "keys", "render"},
}
ENGINE_HEADERS = {"actmax.h", "am_loader.h"}
# Headers from outside kernel/ (generated or the engine's).
EXTERNAL = {"actmax.h", "actmax_version.h", "am_data.h", "am_loader.h"}
MAX_FUNCTION_LINES = 80

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                path = os.path.join(dirpath, f)
                yield os.path.relpath(path, root)


def folder(rel):
    d = os.path.dirname(rel)
    return d.split(os.sep)[0] if d else "."


def unit(rel):
    return os.path.splitext(rel)[0]


def check(root):
    files = list(sources(root))
    headers = {}
    for rel in files:
        if rel.endswith(".h"):
            headers.setdefault(os.path.basename(rel), []).append(rel)
    errors = []
    graph = {}
    for rel in files:
        text = open(os.path.join(root, rel), encoding="utf-8").read()
        src = folder(rel)
        graph.setdefault(unit(rel), set())
        for name in INCLUDE.findall(text):
            if name in ENGINE_HEADERS and src != "magics":
                errors.append(f"{rel}: includes the engine's {name}; only kernel/magics may")
            if name in EXTERNAL:
                continue
            found = headers.get(os.path.basename(name))
            if not found:
                errors.append(f"{rel}: includes \"{name}\", which is no header of kernel/")
                continue
            target = found[0]
            dst = folder(target)
            if dst != src and dst not in ALLOWED.get(src, set()):
                errors.append(f"{rel}: includes {target}: {src}/ may include only from "
                              f"{', '.join(sorted(ALLOWED.get(src, set()))) or 'itself'}")
            if unit(target) != unit(rel):
                graph[unit(rel)].add(unit(target))
        if src == "magics" and rel.endswith(".c"):
            errors += long_functions(rel, text)
    errors += cycles(graph)
    return errors


def long_functions(rel, text):
    """Functions whose body (from the line of `{` at column 0 to the
    matching `}` at column 0) is longer than MAX_FUNCTION_LINES."""
    errors = []
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        if line.startswith("{"):
            start = i
        elif line.startswith("}") and start is not None:
            n = i - start - 1
            if n > MAX_FUNCTION_LINES:
                # The signature is above the `{`.
                sig = lines[start - 1].strip()
                k = start - 1
                while k > 0 and "(" not in lines[k]:
                    k -= 1
                sig = lines[k].strip()
                errors.append(f"{rel}:{k + 1}: {sig} is {n} lines long; the most is "
                              f"{MAX_FUNCTION_LINES}")
            start = None
    return errors


def cycles(graph):
    """Every cycle of the unit graph, found by depth-first search."""
    errors = []
    state = {}
    stack = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                cyc = stack[stack.index(v):] + [v]
                errors.append("include cycle: " + " -> ".join(cyc))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return errors


def self_test(root):
    """The check finds a planted upward include and a planted cycle."""
    ok = True
    before = set(check(root))
    for what, plant in [
        ("an upward include", ("cells/interp.c", '#include "session.h"\n')),
        ("an include cycle", ("base/utf8.h", '#include "utf8_loop.h"\n')),
    ]:
        tmp = tempfile.mkdtemp()
        try:
            copy = os.path.join(tmp, "kernel")
            shutil.copytree(root, copy)
            path = os.path.join(copy, plant[0])
            with open(path, "a", encoding="utf-8") as f:
                f.write(plant[1])
            if what == "an include cycle":
                with open(os.path.join(copy, "base", "utf8_loop.h"), "w", encoding="utf-8") as f:
                    f.write('#include "utf8.h"\n')
            errors = [e for e in check(copy) if e not in before]
            print(f"planted {what}: {len(errors)} new error(s) found")
            for e in errors:
                print("  " + e)
            ok = ok and bool(errors)
        finally:
            shutil.rmtree(tmp)
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    root = sys.argv[1]
    if "--self-test" in sys.argv[2:]:
        return 0 if self_test(root) else 1
    errors = check(root)
    for e in errors:
        print(e)
    n = len(list(sources(root)))
    print(f"{n} files of kernel/ checked: {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
