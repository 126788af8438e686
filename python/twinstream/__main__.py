"""Command line: ``python -m twinstream info`` or ``python -m twinstream cmake-dir``."""

from __future__ import annotations

import argparse
import sys

import twinstream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twinstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version and data planes of this build")
    sub.add_parser("cmake-dir", help="directory to pass as twinstream_DIR to CMake")
    args = parser.parse_args(argv)
    if args.command == "cmake-dir":
        print(twinstream.cmake_dir())
        return 0
    print(f"twinstream {twinstream.__version__}")
    for name, available, reason in twinstream.data_planes():
        print(f"  {name:7s} {'available' if available else 'unavailable: ' + reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
