"""Imports every table module, so ``Base.metadata`` knows the whole schema."""

from __future__ import annotations


def load_all_models() -> None:
    import case_api.alerts.models
    import case_api.auth.models
    import case_api.cases.models
    import case_api.sources.models
    import case_api.tenants.models  # noqa: F401
