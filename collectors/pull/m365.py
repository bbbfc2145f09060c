"""Microsoft 365's Management Activity API: start a subscription per content type, list the content blobs that
became available in a time window (at most 24 hours, within the last 7 days; more pages behind the
`NextPageUri` header), fetch each blob (a JSON array of audit records).

Checkpoint per content type: `start`, the end of the last window listed whole, and the blobs stored since
`start - OVERLAP` (`seen`, content id -> contentCreated). Each poll lists again from `start - OVERLAP` (a blob
can be listed a little after the instant it is dated) and skips what `seen` holds, so a blob is stored once
however the polls and restarts fall. Token: OAuth 2.0 client credentials (RFC 6749 4.4) at the Microsoft
identity platform with scope `https://manage.office.com/.default`; the app needs `ActivityFeed.Read`
(and `ActivityFeed.ReadDlp` for DLP.All) application permission, admin-consented.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson

from collectors.pull.base import Checkpoint, PullBatch, Puller, PullError, register_puller
from collectors.pull.http import RateLimitedClient
from collectors.pull.rest import iso_seconds, json_elements, parse_time, same_host

CONTENT_TYPES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")
WINDOW = timedelta(hours=24)  # the longest window the API lists
RETENTION = timedelta(days=7) - timedelta(minutes=10)  # content older than 7 days cannot be listed
OVERLAP = timedelta(minutes=30)
MAX_PAGES = 1000
SCOPE = "https://manage.office.com/.default"


@register_puller
class M365Puller(Puller):
    kind = "m365"
    required_settings = ("tenant_id", "client_id", "client_secret")
    secret_settings = ("client_secret",)

    def batches(self, checkpoint: Checkpoint | None) -> Iterator[PullBatch]:
        tenant_id = self.source.setting("tenant_id")
        self.base = self.source.setting("api_url", "https://manage.office.com").rstrip("/")
        self.feed = f"{self.base}/api/v1.0/{tenant_id}/activity/feed"
        self.client = RateLimitedClient(where=self.source.where, sleep=self.sleep, clock=self.clock)
        self._token: tuple[str, float] | None = None
        types = self.source.setting("content_types") or list(CONTENT_TYPES)
        unknown = sorted(set(types) - set(CONTENT_TYPES))
        if unknown:
            raise PullError(f"unknown content types {unknown}; the API has {', '.join(CONTENT_TYPES)}",
                            where=self.source.where)
        state: dict[str, Any] = {name: dict(value) for name, value in (checkpoint or {}).get("types", {}).items()}
        try:
            for content_type in types:
                self._subscribe(content_type)
                yield from self._content(content_type, state)
        finally:
            self.client.close()

    # --- the protocol -------------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if self._token is None or self._token[1] <= time.monotonic():
            token_url = self.source.setting("token_url") or (
                f"https://login.microsoftonline.com/{self.source.setting('tenant_id')}/oauth2/v2.0/token")
            response = self.client.request("POST", token_url, data={
                "grant_type": "client_credentials", "client_id": self.source.setting("client_id"),
                "client_secret": self.secret("client_secret"), "scope": SCOPE})
            try:
                answer = orjson.loads(response.content)
                token, lifetime = str(answer["access_token"]), float(answer.get("expires_in", 3599))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise PullError("the token endpoint's answer holds no access_token", where=self.source.where) from None
            self._token = (token, time.monotonic() + max(lifetime - 60, 0))
        return {"Authorization": f"Bearer {self._token[0]}"}

    def _publisher(self) -> dict[str, str]:
        return {"PublisherIdentifier": self.source.setting("tenant_id")}

    def _subscribe(self, content_type: str) -> None:
        query = urlencode({"contentType": content_type, **self._publisher()})
        response = self.client.request("POST", f"{self.feed}/subscriptions/start?{query}", ok=(200, 400),
                                       headers=self._headers())
        # AF20024: the subscription is already enabled, which is what we want
        if response.status_code == 400 and b"AF20024" not in response.content:
            raise PullError(f"starting the {content_type} subscription was refused: {response.text[:300]}",
                            where=self.source.where)

    def _content(self, content_type: str, state: dict[str, Any]) -> Iterator[PullBatch]:
        now = self.clock()
        current = state.setdefault(content_type, {})
        start = parse_time(current["start"]) if current.get("start") else now - timedelta(hours=24)
        start = max(start - OVERLAP, now - RETENTION)
        seen: dict[str, str] = dict(current.get("seen", {}))
        while start < now:
            end = min(start + WINDOW, now)
            blobs = sorted(self._list(content_type, start, end), key=lambda blob: str(blob.get("contentCreated")))
            for blob in blobs:
                content_id = str(blob.get("contentId") or blob.get("contentUri"))
                if content_id in seen:
                    continue
                batch = self._blob(content_type, blob)
                seen[content_id] = str(blob.get("contentCreated") or iso_seconds(end))
                current["seen"] = dict(seen)
                batch.checkpoint = {"types": _copy(state)}
                yield batch
            floor = iso_seconds(end - OVERLAP)
            seen = {key: created for key, created in seen.items() if created[:19] >= floor}
            current.update(start=iso_seconds(end), seen=seen)
            yield PullBatch([], {"types": _copy(state)})
            start = end

    def _list(self, content_type: str, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        query = urlencode({"contentType": content_type, "startTime": iso_seconds(start), "endTime": iso_seconds(end),
                           **self._publisher()})
        url: str | None = f"{self.feed}/subscriptions/content?{query}"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.client.get(url, headers=self._headers())
            try:
                listing = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise PullError("the content listing is not JSON", where=self.source.where) from None
            if not isinstance(listing, list):
                raise PullError("the content listing is not a JSON array", where=self.source.where)
            yield from (blob for blob in listing if isinstance(blob, dict))
            following = response.headers.get("NextPageUri")
            url = same_host(following, base=self.base, where=self.source.where) if following else None

    def _blob(self, content_type: str, blob: dict[str, Any]) -> PullBatch:
        uri = blob.get("contentUri")
        origin = f"m365 {content_type} {blob.get('contentId', '')}"
        if not isinstance(uri, str):
            return PullBatch([], dead=[(self.record(orjson.dumps(blob), origin), "the listing has no contentUri")])
        response = self.client.get(same_host(uri, base=self.base, where=self.source.where), headers=self._headers())
        elements = json_elements(response)
        if isinstance(elements, str):
            return PullBatch([], dead=[(self.record(response.content, origin), f"content blob: {elements}")])
        return PullBatch([self.record(element, f"{origin} #{number}")
                          for number, element in enumerate(elements, start=1)])


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return {name: {"start": value.get("start"), "seen": dict(value.get("seen", {}))} for name, value in state.items()}
