"""Dependencies shared by the HTTP routes, declared once as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from genecommons.access.models import Subject
from genecommons.config import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_subject(request: Request) -> Subject:
    """The caller. Until sign-in exists (the access issue), every HTTP caller is anonymous."""
    del request
    return Subject.anonymous()


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SubjectDep = Annotated[Subject, Depends(get_subject)]
