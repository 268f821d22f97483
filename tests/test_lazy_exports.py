"""Packages export some names lazily, so ``driftwatch check`` never loads the Kubernetes
client or the election and store modules it does not use."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import driftwatch.incidents as incidents, driftwatch.live as live
loaded = sorted(m for m in ("driftwatch.live.leader", "driftwatch.incidents.kubernetes")
                if m in sys.modules)
print(loaded)
print(live.LeaderElector.__module__, incidents.KubernetesStore.__module__)
print("LeaderElector" in dir(live), "KubernetesStore" in dir(incidents))
try:
    live.NoSuchName
except AttributeError as e:
    print(e)
"""


@pytest.mark.slow
def test_lazy_names_load_on_first_use_and_unknown_names_are_attribute_errors() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "[]",
        "driftwatch.live.leader driftwatch.incidents.kubernetes",
        "True True",
        "module 'driftwatch.live' has no attribute 'NoSuchName'",
    ]
