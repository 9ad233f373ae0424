"""The tests' cache of the bytecode Ansible's modules compile from their payload zip
(tests/ansible/module_bytecode): a second interpreter takes the code from the cache, names
its own zip in tracebacks, and compiles again when a cached entry is unreadable."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.ansible.playbook import MODULE_BYTECODE

MODULE = "def fail():\n    raise RuntimeError('from the zip')\n"
RUN = (
    "import sys, traceback; sys.path.insert(0, sys.argv[1]); import payload\n"
    "try:\n    payload.fail()\nexcept Exception:\n    traceback.print_exc()\n"
)


def _payload(tmp_path: Path, run: str) -> Path:
    archive = tmp_path / run / "payload.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.py", MODULE)
    return archive


def _import_and_fail(archive: Path, cache: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": MODULE_BYTECODE["PYTHONPATH"],
        "STOCKPIPE_TEST_MODULE_BYTECODE": str(cache),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(archive)], env=env, capture_output=True, text=True
    )
    return done.stderr


def test_a_second_run_takes_the_cached_code_and_names_its_own_zip(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _import_and_fail(_payload(tmp_path, "first"), cache)
    assert "RuntimeError: from the zip" in first
    (entry,) = cache.iterdir()

    # What the cache holds is what runs: a planted code object proves the hit.
    planted = compile("def fail():\n    raise KeyError('from the cache')\n", "x", "exec")
    entry.write_bytes(marshal.dumps(planted))
    second_zip = _payload(tmp_path, "second")
    second = _import_and_fail(second_zip, cache)
    assert "KeyError: 'from the cache'" in second
    assert f'File "{second_zip}{os.sep}payload.py", line 2, in fail' in second

    entry.write_bytes(b"not bytecode")
    third = _import_and_fail(_payload(tmp_path, "third"), cache)
    assert "RuntimeError: from the zip" in third
