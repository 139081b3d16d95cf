"""The CLI's process-wide context: the same `Services` the app is built with, made on first
use."""

from __future__ import annotations

import getpass
from functools import cache

from genecommons.config import get_settings
from genecommons.policy.models import Subject
from genecommons.services import Services, build_services


@cache
def runtime() -> Services:
    """The CLI's services, from the environment's settings."""
    return build_services(get_settings(), defer_guards=True)


def reset() -> None:
    """Forget the runtime, closing its database connections (the next use reads the settings
    again)."""
    if runtime.cache_info().currsize:
        runtime().engine.dispose()
    runtime.cache_clear()
    get_settings.cache_clear()


def operator() -> Subject:
    """The operator running the CLI on this node."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Subject.operator(name)
