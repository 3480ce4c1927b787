"""The settings of the definitions being built.

``segflow.definitions.build_defs(settings)`` puts its settings in scope while
``dg.load_from_defs_folder`` calls the ``@dg.definitions`` function of each module under ``defs/``,
so every module builds its assets, checks and partitions from that one value, and a process can
build definitions for several configs. Nothing here reads settings at import time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from segflow.config import Settings, load_settings

_IN_SCOPE: ContextVar[Settings | None] = ContextVar("segflow_settings", default=None)


@contextmanager
def settings_scope(settings: Settings) -> Iterator[Settings]:
    token = _IN_SCOPE.set(settings)
    try:
        yield settings
    finally:
        _IN_SCOPE.reset(token)


def settings_in_scope() -> Settings:
    """The settings being built; outside ``build_defs`` (dg's own tools load ``segflow.defs``
    directly), the file ``$SEGFLOW_CONFIG`` names, read now rather than at import."""
    current = _IN_SCOPE.get()
    return current if current is not None else load_settings()
