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


def memory_kib(pid: int) -> Dict[str, int]:
    """VmRSS, RssAnon (private memory, not file pages) and VmHWM (peak RSS since exec) of one process, in KiB."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon", "VmHWM"):
                    values[key] = int(line.split()[1])
    except OSError:
        pass
    return values


class TreeMemorySampler:
    """Samples a process tree every ``interval`` seconds until stopped.

    ``peak_tree_rss``/``peak_tree_anon``: the largest sums over the tree seen at one instant (bytes);
    ``peak_process_hwm``: the largest kernel-tracked peak RSS of any single process (bytes; VmHWM is reset by
    exec, so a forked child is not charged for its parent's memory).
    """

    def __init__(self, root_pid: int, interval: float = 0.05):
        self.root_pid, self.interval = root_pid, interval
        self.peak_tree_rss = self.peak_tree_anon = 0
        self._hwm: Dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = anon = 0
            for pid in process_tree(self.root_pid):
                memory = memory_kib(pid)
                rss += memory.get("VmRSS", 0)
                anon += memory.get("RssAnon", 0)
                self._hwm[pid] = max(self._hwm.get(pid, 0), memory.get("VmHWM", 0))
            self.peak_tree_rss = max(self.peak_tree_rss, rss * 1024)
            self.peak_tree_anon = max(self.peak_tree_anon, anon * 1024)
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
