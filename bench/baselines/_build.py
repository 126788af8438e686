"""Compile the baselines' small C helpers into bench/build/ (gitignored).

A helper is rebuilt whenever its source is newer than the output.  The compiler writes a
temporary file that is renamed into place, so two drivers started at once can never run
or preload a half-written file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
BUILD_DIR = SOURCE_DIR.parent / "build"


def compile_c(source_name: str, output_name: str, flags: list[str], force: bool = False) -> Path:
    """``cc -O2 -Wall <flags> -o bench/build/<output_name> <source_name>``; ``$CC`` overrides cc.

    Raises RuntimeError with the compiler's message if compilation fails.
    """
    source = SOURCE_DIR / source_name
    output = BUILD_DIR / output_name
    if not force and output.exists() and output.stat().st_mtime >= source.stat().st_mtime:
        return output
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=output_name + ".", dir=BUILD_DIR)
    os.close(fd)
    try:
        # Flags go after the source so that libraries such as -ldl resolve correctly.
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-o", tmp, str(source), *flags],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {source} failed:\n{proc.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output
