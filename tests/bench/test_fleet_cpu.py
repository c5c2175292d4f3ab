"""The fleet benchmark's CPU account (bench/fleet/cpu.py): a process tree's CPU, split into its root and the rest."""

import os
import subprocess
import sys

from bench.fleet import cpu
from bench.fleet.cpu import Account, Stat, split


def test_a_tree_counts_live_descendants_and_reaped_children_once() -> None:
    stats = {
        10: Stat(10, 1, own=2.0, reaped=5.0),  # the service; 5 s of workers that exited and were waited for
        11: Stat(11, 10, own=1.5, reaped=0.25),  # a running worker, which reaped a helper of its own
        12: Stat(12, 11, own=0.5, reaped=0.0),  # the worker's live helper
        20: Stat(20, 1, own=9.0, reaped=9.0),  # someone else's process
    }
    assert split(stats, 10) == (2.0, 5.0 + 1.5 + 0.25 + 0.5)
    assert split(stats, 99) == (0.0, 0.0)


def test_the_difference_of_two_accounts_is_what_each_component_spent_between_them() -> None:
    before = Account({"trainer parent": 1.0, "kafka": 10.0}, busy=100.0, total=200.0)
    after = Account({"trainer parent": 1.5, "kafka": 12.0, "bench": 0.1}, busy=110.0, total=220.0)
    spent = after.minus(before)
    assert spent.components == {"trainer parent": 0.5, "kafka": 2.0, "bench": 0.1}
    assert (spent.busy, spent.total) == (10.0, 20.0)
    assert cpu.other(spent) == 10.0 - 2.6


def test_a_child_that_burns_cpu_and_exits_lands_in_its_parent_s_tree() -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    before = split(cpu.snapshot(), os.getpid())
    subprocess.run([sys.executable, "-c", spin], check=True)  # waited for: its CPU moves to our reaped time
    after = split(cpu.snapshot(), os.getpid())
    assert after[1] - before[1] >= 0.25  # ≥ 0.3 s of its own, less one clock tick of rounding either side
