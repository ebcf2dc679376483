#!/usr/bin/python3
"""The course's notebooks, generated from its data file
(share/actmax/exercises.json), so they cannot drift from it:

  notebooks/course/course.ipynb                 the starter: each exercise's function to write
  notebooks/course/solutions/course.ipynb       the same with the solutions filled in
  notebooks/course/teacher/course-nbgrader.ipynb  nbgrader's source version: solutions between
        ### BEGIN SOLUTION / ### END SOLUTION, cell metadata (grade, solution, locked,
        grade_id, points), and check cells that fail (assert) when an exercise fails

usage: course-notebooks.py [--check] [SOURCE_DIR]
  --check  write nothing; exit 1 naming each notebook that differs from what
           the data file generates
"""
import json
import os
import sys

import nbformat
from nbformat import v4

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
OUTPUTS = {"starter": "notebooks/course/course.ipynb",
           "solutions": "notebooks/course/solutions/course.ipynb",
           "teacher": "notebooks/course/teacher/course-nbgrader.ipynb"}
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # what nbgrader puts in place of a solution


def text(lines):
    return "\n".join(lines)


def indent_of(lines):
    first = next((line for line in lines if line.strip()), "")
    return first[:len(first) - len(first.lstrip())]


def cell(kind, source, cell_id, grader=None):
    c = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
    c.id = cell_id  # fixed ids: regenerating gives the same file
    if grader is not None:
        c.metadata["nbgrader"] = dict(grader, grade_id=cell_id, schema_version=3)
    return c


def notebook(doc, version):
    teacher = version == "teacher"
    locked = {"grade": False, "solution": False, "locked": True} if teacher else None
    head = ("*Generated from `share/actmax/exercises.json` by `scripts/course-notebooks.py`: edit the "
            "data file and regenerate, not this notebook.*")
    cells = [cell("markdown", text(doc["setup"]["intro"]) + "\n\n" + head, "intro", locked),
             cell("code", text(doc["setup"]["code"]), "setup", locked)]
    for ex in doc["exercises"]:
        name = ex["name"]
        pad = indent_of(ex["solution"])
        if version == "starter":
            body = [pad + line for line in STUB]
        elif version == "solutions":
            body = ex["solution"]
        else:
            body = [pad + "### BEGIN SOLUTION"] + ex["solution"] + [pad + "### END SOLUTION"]
        cells.append(cell("markdown", text(ex["text"]), f"{name}-text", locked))
        cells.append(cell("code", text(ex["given"] + body), f"{name}-solution",
                          {"grade": False, "solution": True, "locked": False} if teacher else None))
        check = ex["check"]
        if teacher:
            # nbgrader gives the points when the cell runs without an error.
            check = check[:-1] + ["verdict = " + check[-1], "print(verdict)", "assert verdict, verdict.message"]
        cells.append(cell("code", text(check), f"{name}-check",
                          {"grade": True, "solution": False, "locked": True, "points": ex["points"]}
                          if teacher else None))
    nb = v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC,
                                                "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(root, "share", "actmax", "exercises.json"), encoding="utf-8") as f:
        doc = json.load(f)
    stale = []
    for version, rel in OUTPUTS.items():
        path = os.path.join(root, rel)
        new = notebook(doc, version)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if check:
            if old != new:
                stale.append(rel)
        elif old != new:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print("wrote", rel)
    if stale:
        print("not what share/actmax/exercises.json generates (run scripts/course-notebooks.py):", *stale,
              sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
