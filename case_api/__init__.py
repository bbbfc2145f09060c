"""CitySOC case API: tenants, API keys, alerts and the case queue over REST (``/api/v1``).

Entry points call :func:`case_api.app.create_app` and :func:`case_api.bootstrap.ensure_bootstrap_keys`.
"""
