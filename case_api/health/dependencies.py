"""The intake's stores the API reads, built once per application from its settings (`create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from citysoc.deadletter import DeadLetterStore
from citysoc.health import HealthStore


def get_health_store(request: Request) -> HealthStore:
    store: HealthStore = request.app.state.health_store
    return store


def get_dead_letter_store(request: Request) -> DeadLetterStore:
    store: DeadLetterStore = request.app.state.dead_letters
    return store


HealthStoreDep = Annotated[HealthStore, Depends(get_health_store)]
DeadLetterStoreDep = Annotated[DeadLetterStore, Depends(get_dead_letter_store)]
