"""The one documented client of the case API's HTTP contract (`/api/v1`).

The correlator and the CLI talk to the case API only through this client, over HTTP. In the embedded
default there is no server to run: the CLI hands the client an in-process transport to the same
FastAPI application, so the contract exercised is identical.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import anyio.from_thread
import httpx

from citysoc.errors import CitySocError


class CaseClientError(CitySocError):
    """The case API refused a request; the message carries its status and explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"case API answered {status}: {detail}")
        self.status = status
        self.detail = detail


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI application in this process.

    httpx only ships an async ASGI transport; this one runs it on an event loop in a helper thread
    (an anyio blocking portal), so synchronous code talks to the application over real HTTP
    semantics (routing, auth, validation, status codes) without a socket.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal()
        )
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a fully read body can be replayed on the portal's loop

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self._asgi.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.aiter_raw()])
            return response.status_code, response.headers.raw, body

        status, headers, body = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


class CaseClient:
    """Thin typed wrapper over `/api/v1`; every call authenticates with one API key."""

    def __init__(self, http: httpx.Client, api_key: str) -> None:
        self._http = http
        self._http.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def remote(cls, base_url: str, api_key: str, *, timeout: float = 30.0) -> CaseClient:
        return cls(httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout), api_key)

    @classmethod
    def in_process(cls, app: ASGIApp, api_key: str) -> CaseClient:
        """A client of an application object in this process (the embedded default)."""
        return cls(httpx.Client(transport=InProcessTransport(app), base_url="http://citysoc.embedded"), api_key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/api/v1{path}", **kwargs)
        if response.is_error:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise CaseClientError(response.status_code, str(detail))
        return response.json() if response.content else None

    # Tenants
    def add_tenant(self, tenant_id: str, name: str) -> dict[str, Any]:
        return self._request("POST", "/tenants", json={"id": tenant_id, "name": name})  # type: ignore[no-any-return]

    def list_tenants(self) -> list[dict[str, Any]]:
        return self._request("GET", "/tenants")  # type: ignore[no-any-return]

    def get_contract(self, tenant_id: str) -> dict[str, Any]:
        """The member's SLA contract (`default: true` when it has none of its own)."""
        return self._request("GET", f"/tenants/{tenant_id}/contract")  # type: ignore[no-any-return]

    def set_contract(self, tenant_id: str, contract: Mapping[str, Any] | None) -> dict[str, Any]:
        """Give the member `contract` (calendar and targets); `None` puts it back on the default."""
        if contract is None:
            return self._request("DELETE", f"/tenants/{tenant_id}/contract")  # type: ignore[no-any-return]
        return self._request("PUT", f"/tenants/{tenant_id}/contract",  # type: ignore[no-any-return]
                             json=dict(contract))

    # Users, keys and the audit log (admin)
    def add_user(self, user_id: str, *, role: str, tenant_id: str | None = None,
                 display_name: str | None = None) -> dict[str, Any]:
        body = {"id": user_id, "role": role, "tenant_id": tenant_id, "display_name": display_name}
        return self._request("POST", "/users", json={k: v for k, v in body.items() if v is not None})  # type: ignore[no-any-return]

    def list_users(self) -> list[dict[str, Any]]:
        return self._request("GET", "/users")  # type: ignore[no-any-return]

    def update_user(self, user_id: str, **changes: Any) -> dict[str, Any]:
        return self._request("PATCH", f"/users/{user_id}", json=changes)  # type: ignore[no-any-return]

    def create_key(self, *, name: str, role: str | None = None, tenant_id: str | None = None,
                   user_id: str | None = None, expires_at: str | None = None) -> dict[str, Any]:
        """A key for ``user_id``; or, with ``role``, a user named ``name`` and a key for them."""
        body = {"name": name, "role": role, "tenant_id": tenant_id, "user_id": user_id, "expires_at": expires_at}
        return self._request("POST", "/keys", json={k: v for k, v in body.items() if v is not None})  # type: ignore[no-any-return]

    def list_keys(self, *, user_id: str | None = None) -> list[dict[str, Any]]:
        params = {"user_id": user_id} if user_id else {}
        return self._request("GET", "/keys", params=params)  # type: ignore[no-any-return]

    def revoke_key(self, key_id: int) -> None:
        self._request("DELETE", f"/keys/{key_id}")

    def audit_entries(self, *, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        params = {"limit": limit, **{k: v for k, v in filters.items() if v is not None}}
        return self._request("GET", "/audit", params=params)  # type: ignore[no-any-return]

    def verify_audit(self) -> dict[str, Any]:
        return self._request("GET", "/audit/verify")  # type: ignore[no-any-return]

    # Sources
    def add_source(self, *, tenant_id: str, kind: str, name: str, datasets: Sequence[str] = (),
                   parser: str | None = None, networks: Sequence[str] = (), cloud_accounts: Sequence[str] = (),
                   certificate_sha256: str | None = None, pull: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register a source; an http source's answer carries its bearer `token`, shown this once. `pull`: a
        pulled kind's settings, credentials as references (env:NAME, file:/path)."""
        body: dict[str, Any] = {"tenant_id": tenant_id, "kind": kind, "name": name, "datasets": list(datasets),
                                "networks": list(networks), "cloud_accounts": list(cloud_accounts)}
        if pull:
            body["pull"] = dict(pull)
        if parser is not None:
            body["parser"] = parser
        if certificate_sha256 is not None:
            body["certificate_sha256"] = certificate_sha256
        return self._request("POST", "/sources", json=body)  # type: ignore[no-any-return]

    def list_sources(self, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Sources with their data health (`health`)."""
        params = {"tenant": tenant} if tenant else {}
        return self._request("GET", "/sources", params=params)  # type: ignore[no-any-return]

    def get_source(self, source_id: int) -> dict[str, Any]:
        return self._request("GET", f"/sources/{source_id}")  # type: ignore[no-any-return]

    def update_source(self, source_id: int, **changes: Any) -> dict[str, Any]:
        """Change `datasets`, `networks`, `cloud_accounts` or `certificate_sha256` (lists replace)."""
        return self._request("PATCH", f"/sources/{source_id}", json=changes)  # type: ignore[no-any-return]

    def issue_source_token(self, source_id: int) -> dict[str, Any]:
        """A new bearer token for an http source (in `token`, shown once); the old one stops working."""
        return self._request("POST", f"/sources/{source_id}/token")  # type: ignore[no-any-return]

    def delete_source(self, source_id: int) -> None:
        self._request("DELETE", f"/sources/{source_id}")

    def source_access(self) -> list[dict[str, Any]]:
        """Every source's access data (digests, fingerprints, networks, accounts); service and admin keys only."""
        return self._request("GET", "/sources/access")  # type: ignore[no-any-return]

    def source_audit(self, *, tenant: str | None = None, source_id: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"tenant": tenant, "source_id": source_id}
        return self._request("GET", "/sources/audit",  # type: ignore[no-any-return]
                             params={k: v for k, v in params.items() if v is not None})

    def source_health(self, source_id: int) -> dict[str, Any]:
        return self._request("GET", f"/sources/{source_id}/health")  # type: ignore[no-any-return]

    def list_dead_letters(self, *, tenant: str | None = None, source: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        """Records the collectors refused, newest first, as far as this key's tenant scope reaches."""
        params: dict[str, Any] = {"tenant": tenant, "source": source, "limit": limit}
        return self._request("GET", "/deadletters",  # type: ignore[no-any-return]
                             params={k: v for k, v in params.items() if v is not None})

    # Alerts
    def post_alerts(self, alerts: Sequence[Mapping[str, Any]], *, batch_size: int = 500) -> dict[str, Any]:
        """Send alerts in batches; the API is idempotent by (tenant, alert id), so a retry is safe.

        The answer adds up the batches' `created`, `duplicates`, `pending` and `cases`, and lists in
        `rejected` the alerts the API refused one by one (each with `index` into `alerts`, `id`,
        `tenant_id`, `reason`); a batch refused whole (every alert in it invalid) counts its alerts there too.
        """
        total: dict[str, Any] = {"created": 0, "duplicates": 0, "cases": [], "pending": 0, "rejected": []}
        for start in range(0, len(alerts), batch_size):
            batch = list(alerts[start : start + batch_size])
            try:
                answer = self._request("POST", "/alerts", json={"alerts": batch})
            except CaseClientError as exc:
                if exc.status != 422:
                    raise
                total["rejected"] += [{"index": start + i, "id": a.get("id"), "tenant_id": None, "reason": exc.detail}
                                      for i, a in enumerate(batch)]
                continue
            total["created"] += answer["created"]
            total["duplicates"] += answer["duplicates"]
            total["pending"] += answer.get("pending", 0)  # held as entity risk when its batch was placed
            total["cases"] = sorted(set(total["cases"]) | set(answer["cases"]))
            total["rejected"] += [{**r, "index": start + r["index"]} for r in answer.get("rejected", [])]
        return total

    def list_alerts(self, *, tenant: str | None = None, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """Alerts the case API holds, newest first, as far as this key's tenant scope reaches."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if tenant:
            params["tenant"] = tenant
        return self._request("GET", "/alerts", params=params)  # type: ignore[no-any-return]

    def iter_alerts(self, *, tenant: str | None = None, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every alert in scope, page by page."""
        offset = 0
        while batch := self.list_alerts(tenant=tenant, limit=page, offset=offset):
            yield from batch
            offset += len(batch)

    # Cases
    def list_cases(self, *, tenant: str | None = None, status: str | None = None, open_only: bool = False,
                   limit: int = 500) -> list[dict[str, Any]]:
        """The queue: by SLA due time, then severity; `open_only` leaves out resolved and closed cases."""
        params: dict[str, Any] = {"limit": limit}
        if tenant:
            params["tenant"] = tenant
        if status:
            params["status"] = status
        if open_only:
            params["open"] = "true"
        return self._request("GET", "/cases", params=params)  # type: ignore[no-any-return]

    def get_case(self, case_id: int) -> dict[str, Any]:
        """The case with a page of its alerts and audit trail; `version` is what `if_match` takes."""
        return self._request("GET", f"/cases/{case_id}")  # type: ignore[no-any-return]

    def update_case(self, case_id: int, *, if_match: int | None = None, **changes: Any) -> dict[str, Any]:
        """Change `status` (with `resolution` to close), `assignee` or `severity`.

        With `if_match` (the `version` read), a case someone changed since is refused (412).
        """
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        return self._request("PATCH", f"/cases/{case_id}", json=changes,  # type: ignore[no-any-return]
                             headers=headers)

    def case_part(self, case_id: int, part: str) -> list[dict[str, Any]]:
        """One of a case's lists: `alerts`, `events`, `comments`, `tasks` or `observables`."""
        return self._request("GET", f"/cases/{case_id}/{part}")  # type: ignore[no-any-return]

    def case_evidence(self, case_id: int, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """A page of the raw events behind the case's alerts (`items`, each with its ECS `event` or null when the
        event store does not hold it) and `total`, the distinct event ids its alerts list."""
        return self._request("GET", f"/cases/{case_id}/evidence",  # type: ignore[no-any-return]
                             params={"limit": limit, "offset": offset})

    def comment_case(self, case_id: int, body: str) -> dict[str, Any]:
        return self._request("POST", f"/cases/{case_id}/comments", json={"body": body})  # type: ignore[no-any-return]

    def merge_cases(self, target_id: int, sources: Sequence[int]) -> dict[str, Any]:
        """Merge `sources` into `target_id` (one member's cases); each source is closed as a duplicate."""
        return self._request("POST", f"/cases/{target_id}/merge",  # type: ignore[no-any-return]
                             json={"sources": list(sources)})

    def bulk_cases(self, action: str, case_ids: Sequence[int], **arguments: Any) -> list[dict[str, Any]]:
        """`assign` (assignee), `close` (resolution, comment) or `merge` (into) many cases; one outcome each."""
        body = {"action": action, "case_ids": list(case_ids), **arguments}
        return self._request("POST", "/cases/bulk", json=body)  # type: ignore[no-any-return]

    # Notifications
    def add_contact(self, tenant_id: str, *, channel: str, address: str) -> dict[str, Any]:
        """A member's email or webhook contact; a webhook's answer carries its signing secret, this once."""
        return self._request("POST", f"/tenants/{tenant_id}/contacts",  # type: ignore[no-any-return]
                             json={"channel": channel, "address": address})

    def list_contacts(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/tenants/{tenant_id}/contacts")  # type: ignore[no-any-return]

    def remove_contact(self, tenant_id: str, contact_id: int) -> None:
        self._request("DELETE", f"/tenants/{tenant_id}/contacts/{contact_id}")

    def list_notifications(self, *, tenant: str | None = None, case_id: int | None = None,
                           status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The outbox, newest first, each with its delivery log."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("tenant", tenant), ("case_id", case_id), ("status", status)):
            if value is not None:
                params[name] = value
        return self._request("GET", "/notifications", params=params)  # type: ignore[no-any-return]

    def metrics(self, *, tenant: str | None = None, since: str | None = None,
                until: str | None = None) -> dict[str, Any]:
        """MTTA, MTTT and MTTR with percentiles and SLA breaches per member and severity (`rows`) and per severity
        over every member in scope (`overall`), for the cases opened in [since, until)."""
        params = {k: v for k, v in {"tenant": tenant, "since": since, "until": until}.items() if v is not None}
        return self._request("GET", "/metrics", params=params)  # type: ignore[no-any-return]

    # Campaigns
    def list_campaigns(self, *, limit: int = 500) -> list[dict[str, Any]]:
        """Campaigns as this key may see them: whole for city roles, a member's own part for tenant keys."""
        return self._request("GET", "/campaigns", params={"limit": limit})  # type: ignore[no-any-return]

    def get_campaign(self, campaign_id: int) -> dict[str, Any]:
        return self._request("GET", f"/campaigns/{campaign_id}")  # type: ignore[no-any-return]

    def iter_cases(self, tenants: Sequence[str]) -> Iterator[dict[str, Any]]:
        for tenant in tenants:
            yield from self.list_cases(tenant=tenant)
