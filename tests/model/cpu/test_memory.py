"""What a CPU process does with freed memory (the malloc policy behind TrainConfig.cpu_memory)."""

from __future__ import annotations

import platform
import sys

import pytest

from ragtune.model.cpu import memory

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt's thresholds are glibc settings",
)


def faults_for_ten_allocations(mib: int) -> int:
    """Minor page faults while ten ``mib`` MiB tensors are made and freed one after another."""
    import resource

    import torch

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.ones(mib * 256 * 1024)  # float32: 4 bytes an element
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
@pytest.mark.parametrize("policy", ["reuse", "release"])
def test_glibc_accepts_each_policy_and_its_restoration(policy):
    with memory.cpu_memory_policy(policy) as changed:
        assert changed is True
    assert memory.restore_system_policy() is True


@glibc_only
def test_reused_memory_is_not_page_faulted_again():
    """The point of ``reuse``: a freed 64 MiB block comes back without touching the kernel."""
    with memory.cpu_memory_policy("system"):
        faults_for_ten_allocations(64)
        system = faults_for_ten_allocations(64)
    with memory.cpu_memory_policy("reuse"):
        faults_for_ten_allocations(64)  # the first allocation grows the heap once
        reuse = faults_for_ten_allocations(64)
    assert system > 10 * 16_000 / 2  # 4 KiB pages: ~16k faults per block under mmap
    assert reuse < system / 10


@glibc_only
def test_after_a_run_blocks_up_to_32_mib_are_reused_as_under_glibcs_own_policy():
    """Restoring must not leave glibc's start threshold (128 KiB) fixed: every later block above
    it would be mmapped and page-faulted in again, for the rest of the process."""
    with memory.cpu_memory_policy("reuse"):
        pass

    # Mmapped, every block faults all its 2,048 pages (20,480 per round). From the heap, a block
    # only faults when the heap top was just trimmed, so the quietest of three rounds is near 0.
    quietest = min(faults_for_ten_allocations(8) for _ in range(3))  # 8 MiB: 2,048 pages
    assert quietest < 10 * 2048 / 4


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    for policy in memory.CPU_MEMORY_POLICIES:
        with memory.cpu_memory_policy(policy) as changed:
            assert changed is False


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="cpu_memory must be one of reuse, release, system"):
        memory.apply_policy("forget")


def test_a_run_on_another_device_changes_nothing_but_still_checks_the_name():
    for policy in memory.CPU_MEMORY_POLICIES:
        with memory.cpu_memory_policy(policy, device="cuda") as changed:
            assert changed is False
    refused = pytest.raises(ValueError, match="cpu_memory must be one of reuse, release, system")
    with refused, memory.cpu_memory_policy("forget", device="cuda"):
        pass
