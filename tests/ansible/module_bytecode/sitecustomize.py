"""Reuse the bytecode of the Python that Ansible's modules import from their payload zip.

Every task runs its module in a fresh interpreter that imports ``ansible.module_utils`` (and
a collection's module_utils) from the zip Ansible sends with it. Python's zipimport compiles
a zipped source on every import, twice in Python 3.11 (finding the spec compiles it too),
and keeps no ``__pycache__``: a third of a playbook's CPU went to compiling the same files
again (README, "Test suite: workers"). The tests' playbooks put this directory on PYTHONPATH
(tests/ansible/playbook.py); the modules' code is unchanged, only its compiled form is kept,
keyed by the source itself and the interpreter's bytecode version.
"""

import hashlib
import importlib.util
import marshal
import os
import sys
import zipimport

_CACHE_DIR = os.environ.get("STOCKPIPE_TEST_MODULE_BYTECODE", "")
_compile_source = getattr(zipimport, "_compile_source", None)


def _relocated(code, filename):
    """``code`` with ``filename`` in it and every function's code: tracebacks name the zip
    this run imported from, not the one that first compiled it."""
    consts = tuple(
        _relocated(const, filename) if hasattr(const, "co_code") else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile_source(pathname, source):
    inside_zip = pathname.rsplit(".zip" + os.sep, 1)[-1]
    digest = hashlib.blake2b(importlib.util.MAGIC_NUMBER, digest_size=20)
    digest.update(inside_zip.encode() + b"\0" + source)
    path = os.path.join(_CACHE_DIR, digest.hexdigest())
    try:
        with open(path, "rb") as cached:
            return _relocated(marshal.load(cached), pathname)
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = _compile_source(pathname, source)
    try:  # a module run as another user (become) may not write here: it just compiles
        os.makedirs(_CACHE_DIR, mode=0o700, exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as out:
            marshal.dump(code, out)
        os.replace(partial, path)
    except OSError:
        pass
    return code


if _CACHE_DIR and _compile_source is not None:
    zipimport._compile_source = _cached_compile_source


def _run_the_next_sitecustomize():
    """This file shadows any other sitecustomize (Debian's, a virtualenv's): run the next one
    on the path, as Python would have without this directory first."""
    import importlib.machinery

    here = os.path.dirname(os.path.abspath(__file__))
    paths = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", paths)
    if spec is not None and spec.loader is not None and spec.origin != os.path.abspath(__file__):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_run_the_next_sitecustomize()
