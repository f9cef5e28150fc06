"""The glibc heap setting of maximask-train: applied where glibc is, switched off by its variable."""

import os
import platform
import subprocess
import sys

import pytest

from maximask.allocator import ENV_SWITCH, keep_freed_memory


def test_environment_switch_disables_it(monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_in_a_fresh_process_and_memory_still_works():
    code = ("from maximask.allocator import keep_freed_memory; import torch; assert keep_freed_memory();"
            "x = [torch.ones(4 << 20) for _ in range(8)]; del x; y = torch.zeros(16 << 20); assert float(y.sum()) == 0")
    env = {k: v for k, v in os.environ.items() if k != ENV_SWITCH}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
