"""Memory of a process tree, read from /proc while it runs (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import threading
import time
from typing import Dict, List


def process_tree(root_pid: int) -> List[int]:
    """The pids of a process and all its descendants."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    pids, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def memory_kib(pid: int, pss: bool = True) -> Dict[str, int]:
    """Memory of one process in KiB: VmRSS, VmHWM (peak RSS since exec), and with ``pss`` Pss / Pss_Anon
    (proportional set size: pages shared between processes, e.g. by fork, are split between them, so sums over a
    tree are real)."""
    values = {}
    sources = [(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))]
    if pss:
        sources.append((f"/proc/{pid}/smaps_rollup", ("Pss", "Pss_Anon")))
    for source, keys in sources:
        try:
            with open(source) as f:
                for line in f:
                    key = line.split(":")[0]
                    if key in keys:
                        values[key] = int(line.split()[1])
        except OSError:
            pass
    return values


class TreeMemorySampler:
    """Samples a process tree every ``interval`` seconds until stopped.

    ``peak_tree_pss``/``peak_tree_pss_anon``: the largest sums of PSS (all / anonymous, i.e. not file pages such
    as a memory-mapped cache) over the tree seen at one instant (bytes); ``peak_tree_rss``: the same for RSS,
    which counts pages shared by forked workers once per process;
    ``peak_process_hwm``: the largest kernel-tracked peak RSS of any single process (bytes; VmHWM is reset by
    exec, so a forked child is not charged for its parent's memory).
    """

    def __init__(self, root_pid: int, interval: float = 0.05, pss: bool = True):
        # pss=False reads only /proc/<pid>/status: smaps_rollup walks every page table of a process with large
        # mappings under its memory lock, which slows a run that keeps both cores busy (timed builds use that).
        self.root_pid, self.interval, self.pss = root_pid, interval, pss
        self.peak_tree_rss = self.peak_tree_pss = self.peak_tree_pss_anon = 0
        self._hwm: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = pss = pss_anon = 0
            for pid in process_tree(self.root_pid):
                memory = memory_kib(pid, self.pss)
                rss += memory.get("VmRSS", 0)
                pss += memory.get("Pss", 0)
                pss_anon += memory.get("Pss_Anon", 0)
                self._hwm[pid] = max(self._hwm.get(pid, 0), memory.get("VmHWM", 0))
            self.peak_tree_rss = max(self.peak_tree_rss, rss * 1024)
            self.peak_tree_pss = max(self.peak_tree_pss, pss * 1024)
            self.peak_tree_pss_anon = max(self.peak_tree_pss_anon, pss_anon * 1024)
            time.sleep(self.interval)

    @property
    def peak_process_hwm(self) -> int:
        return max(self._hwm.values(), default=0) * 1024

    def __enter__(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_sampled(command: List[str], env=None, interval: float = 0.2, pss: bool = True):
    """Run ``command`` while sampling its process tree's memory: ``(returncode, stdout, stderr, sampler)``."""
    import subprocess

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemorySampler(process.pid, interval=interval, pss=pss) as memory:
        out, err = process.communicate()
    return process.returncode, out, err, memory
