"""The local Ray cluster of the engine tests: one per test module, and the check that a test gave its CPUs back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

CPUS = 2


@contextmanager
def local_cluster(ray: Any, module: ModuleType) -> Iterator[None]:
    """A local ``CPUS``-CPU cluster for ``module``'s tests (unless one is running), its test actors pickled by
    value so the workers need not import the test module; shut down at the end if this started it."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def all_cpus_free(ray: Any, timeout: float = 30.0) -> bool:
    """Whether every CPU of the cluster is free again (within ``timeout`` s: resource reports lag a little)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0.0) >= ray.cluster_resources().get("CPU", CPUS):
            return True
        time.sleep(0.1)
    return False
