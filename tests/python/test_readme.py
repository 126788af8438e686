"""The README's Python quick start runs as written: its writer and reader blocks, as two
processes, stream 100 steps."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.timeout(120)
def test_quick_start_writer_and_reader_run_as_written(tmp_path):
    writer_code, reader_code = python_blocks()[:2]
    assert 'ts.open("sim", "w"' in writer_code and 'ts.open("sim", "r"' in reader_code
    (tmp_path / "writer.py").write_text(writer_code)
    (tmp_path / "reader.py").write_text(reader_code)
    env = dict(os.environ, TWINSTREAM_DIR=str(tmp_path))
    # The README says the trainer may start first: start it first.
    reader = subprocess.Popen(
        [sys.executable, "reader.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    writer = subprocess.run(
        [sys.executable, "writer.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
    )
    out, _ = reader.communicate(timeout=90)
    assert writer.returncode == 0, writer.stderr
    assert reader.returncode == 0
    lines = out.splitlines()
    # The reader joined before the first step, so it saw all 100, in order.
    assert [int(line.split()[0]) for line in lines] == list(range(100))
    assert lines[3].split()[1:] == ["0.03", "lj"]
