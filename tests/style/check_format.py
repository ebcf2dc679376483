"""The C and C++ sources are formatted as .clang-format says (CTest
style.format): `clang-format --dry-run -Werror` over the tracked C/C++ files
of the folders given (git ls-files; every such file when the tree is not a
git checkout). To fix: clang-format -i FILE...

usage: check_format.py SOURCE_DIR FOLDER...
"""
import os
import shutil
import subprocess
import sys

EXTS = (".c", ".h", ".cpp", ".hpp", ".cc")


def files(root, folders):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "--", *folders], check=True,
                             capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = []
        for f in folders:
            for dirpath, _, names in os.walk(os.path.join(root, f)):
                out += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    return sorted(f for f in out if f.endswith(EXTS) and os.path.exists(os.path.join(root, f)))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    root, folders = sys.argv[1], sys.argv[2:]
    tool = shutil.which("clang-format-14") or shutil.which("clang-format")
    if not tool:
        print("clang-format is not installed: scripts/install-deps.sh installs it "
              "(Debian package clang-format)")
        return 1
    todo = files(root, folders)
    if not todo:
        print(f"no C/C++ file under {', '.join(folders)}")
        return 1
    r = subprocess.run([tool, "--dry-run", "-Werror", *todo], cwd=root, capture_output=True,
                       text=True)
    bad = sorted({line.split(":")[0] for line in r.stderr.splitlines()
                  if ": error:" in line})
    if r.returncode != 0:
        print(r.stderr[-8000:])
        print(f"{len(bad)} of {len(todo)} files are not formatted; fix with: "
              f"clang-format -i {' '.join(bad)}")
        return 1
    print(f"{len(todo)} files formatted as .clang-format says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
