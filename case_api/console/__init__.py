"""The web console: server-rendered pages for the city's analysts and the member organisations.

Served by the case API under ``/console``, through the same services and tenant scope as ``/api/v1``.
"""
