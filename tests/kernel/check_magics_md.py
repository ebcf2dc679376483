"""docs/magics.md's key tables are the registry's (CTest kernel.magics_md).

`actmax --magics-md` prints every magic's key table (and %set's) from the
registry, each between `<!-- keys:NAME -->` and `<!-- /keys:NAME -->`. The
committed page must hold every one of those blocks exactly as printed, and no
block the registry does not print. With --write, the blocks in the page are
replaced by the printed ones (a block not yet in the page is reported: place
its two marker lines where it belongs, then run --write again).

usage: check_magics_md.py ACTMAX_EXE DOCS_MAGICS_MD [--write]
"""
import re
import subprocess
import sys

BLOCK = re.compile(r"<!-- keys:([\w-]+) -->\n.*?<!-- /keys:\1 -->\n", re.S)


def blocks(text):
    return {m.group(1): m.group(0) for m in BLOCK.finditer(text)}


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    exe, page = sys.argv[1], sys.argv[2]
    printed = subprocess.run([exe, "--magics-md"], check=True, capture_output=True,
                             text=True).stdout
    want = blocks(printed)
    if not want:
        print(f"{exe} --magics-md printed no key table")
        return 1
    text = open(page, encoding="utf-8").read()
    have = blocks(text)
    if "--write" in sys.argv[3:]:
        text = BLOCK.sub(lambda m: want.get(m.group(1), m.group(0)), text)
        open(page, "w", encoding="utf-8").write(text)
        have = blocks(text)
    errors = []
    for name, block in want.items():
        if name not in have:
            errors.append(f"{page} lacks the key table of %{name}: add the lines "
                          f"'<!-- keys:{name} -->' and '<!-- /keys:{name} -->' and run "
                          f"{sys.argv[0]} {exe} {page} --write")
        elif have[name] != block:
            errors.append(f"{page}: the key table of %{name} differs from the registry's; "
                          f"run {sys.argv[0]} {exe} {page} --write")
    for name in have:
        if name not in want:
            errors.append(f"{page} has a key table for %{name}, which the registry does not "
                          f"have")
    for e in errors:
        print(e)
    print(f"{len(want)} key tables checked: {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
