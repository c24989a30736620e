"Shared fixtures: run the real `chatmimic` command the way a user does."
import subprocess, sys
from pathlib import Path
import pytest

CHATMIMIC = Path(sys.executable).with_name('chatmimic')

def run_chatmimic(*args, cwd=None, timeout=600):
    "Run the installed `chatmimic` command; returns the CompletedProcess (text mode)."
    return subprocess.run([str(CHATMIMIC), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)

def assert_user_error(r, path, out=None):
    "A user error: exit status 2, one line on stderr naming `path`, no traceback, no output file."
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert 'Traceback' not in r.stderr
    assert str(Path(path).name) in lines[0], lines[0]
    if out is not None: assert not Path(out).exists()
    return lines[0]

@pytest.fixture
def chatmimic():
    return run_chatmimic

# `make test` runs the test files two at a time (pytest-xdist, a whole file per worker, handed out in collection order).
# The files that take minutes go first, so that the short ones fill the gaps at the end instead of one long file
# running alone on one worker while the other idles; within a file, and among the rest, the order stays as it was.
LONG_FILES = ('test_compare.py', 'test_train_qlora.py', 'test_pipeline.py', 'test_train_full.py', 'test_lab.py', 'test_docs.py')

def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
