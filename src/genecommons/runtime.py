"""The CLI's process-wide context: settings and a session factory, made on first use."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from genecommons.config import Settings, get_settings
from genecommons.db import make_session_factory, node_engine
from genecommons.policy.models import Subject


@dataclass(frozen=True, slots=True)
class Runtime:
    """Settings and database access for one CLI process."""

    settings: Settings
    factory: sessionmaker[Session]


@cache
def runtime() -> Runtime:
    """The CLI's runtime, from the environment's settings."""
    settings = get_settings()
    engine = node_engine(settings)
    return Runtime(settings, make_session_factory(engine))


def reset() -> None:
    """Forget the runtime, closing its database connections (the next use reads the settings
    again)."""
    if runtime.cache_info().currsize:
        runtime().factory.kw["bind"].dispose()
    runtime.cache_clear()
    get_settings.cache_clear()


def operator() -> Subject:
    """The operator running the CLI on this node."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Subject.operator(name)
