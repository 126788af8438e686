"""Reader process for the conformance suite: python reader.py '<json args>'.

See tsproc.run_reader for the arguments and the lines it prints."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tsproc  # noqa: E402

if __name__ == "__main__":
    tsproc.main(tsproc.run_reader)
