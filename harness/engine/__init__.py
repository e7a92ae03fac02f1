"""Compute engines for the heavy retrieval work: this process (the default) or a Ray cluster.

:func:`remote_engine` gives the stage what ``[engine]`` asks for: None for ``local``, a
:class:`~harness.engine.ray_engine.RayEngine` for ``ray`` (checked at once: Ray missing is one
:class:`~harness.errors.MissingDependencyError`, exit 2). Ray itself is imported only when the engine first
runs something, so neither the local path nor a fully cached ``ray`` run pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.types import ComputeEngine

if TYPE_CHECKING:
    from harness.engine.ray_engine import RayEngine

__all__ = ["remote_engine"]


def remote_engine(config: ComputeEngine) -> RayEngine | None:
    """The engine ``config`` names, None for the local one."""
    if config.kind == "local":
        return None
    from harness.engine.ray_engine import RayEngine

    return RayEngine(config)
