"""The SOC's notification contacts, built once per application from its settings (`create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from case_api.notifications.service import SocContacts


def get_soc_contacts(request: Request) -> SocContacts:
    contacts: SocContacts = request.app.state.soc_contacts
    return contacts


SocContactsDep = Annotated[SocContacts, Depends(get_soc_contacts)]
