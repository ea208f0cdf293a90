"""Forked workers keep the collector off the objects they inherit (medmnist_plus_common.forking)."""

import gc
import os

import pytest

from medmnist_plus_common.forking import FreezeInherited, frozen_while


def test_objects_are_frozen_only_while_the_block_runs():
    before = gc.get_freeze_count()
    with frozen_while():
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before
    with pytest.raises(RuntimeError):
        with frozen_while():
            raise RuntimeError("a failed build")
    assert gc.get_freeze_count() == before
    with frozen_while(forking=False):
        assert gc.get_freeze_count() == before


def test_a_worker_freezes_what_it_inherited_then_runs_the_callers_init():
    calls = []
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: a forked child, as DataLoader and datasets' Pool make them
        try:
            FreezeInherited(calls.append)(7)
            os.write(writer, f"{gc.get_freeze_count() > 0} {calls}".encode())
        finally:
            os._exit(0)
    os.close(writer)
    before = gc.get_freeze_count()
    reply = os.read(reader, 100).decode()
    os.waitpid(pid, 0)
    assert reply == "True [7]"
    assert gc.get_freeze_count() == before  # the parent's collector is untouched
