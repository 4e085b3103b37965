"""The recorder's REST calls: Gamma discovery, the closed-markets poll, ``POST /books`` reseeds.

Every successful response is archived verbatim (a ``rest`` record) before
anything is decided from it: those are the responses that produce rows
(markets, resolutions, books). Failed calls produce nothing and are only
counted and logged.

- Discovery: Gamma ``GET /markets/keyset?limit=100&closed=false`` (plus the
  filters), following ``next_cursor`` as ``after_cursor`` until the last
  page (no ``next_cursor``) or enough tokens.
- Closed poll: Gamma ``GET /markets/keyset?closed=true&condition_ids=...``
  (at most 100 ids, so one page, per call) for the subscribed markets: a
  ``market_resolved`` the socket never delivered is found this way.
- Reseed: CLOB ``POST /books`` with ``[{"token_id": ...}, ...]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

__all__ = ["DiscoveredMarket", "Rest", "RestError", "market_facts"]

logger = logging.getLogger("pmstore.recorder")

PAGE: Final = 100
"""Gamma page size (the keyset endpoint's documented maximum)."""
IDS_PER_CALL: Final = 100
BOOKS_PER_CALL: Final = 100

Emit = Callable[[dict[str, Any]], None]


class RestError(Exception):
    """A REST call failed (status, network); internal: the recorder logs it and retries later."""


@dataclass(frozen=True, slots=True)
class DiscoveredMarket:
    """What the recorder decides on from a Gamma market: id, slug, tokens, whether open."""

    condition_id: str
    slug: str | None
    tokens: tuple[str, ...]
    open: bool


def _token_ids(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return ()
    if not isinstance(raw, list):
        return ()
    return tuple(str(t) for t in raw if isinstance(t, str | int) and str(t).isdigit())


def market_facts(item: object) -> DiscoveredMarket | None:
    """The recorder's view of one Gamma (or ``new_market``) market; None if it has no id.

    Open: active, not closed, and accepting orders when the field is there.
    """
    if not isinstance(item, dict):
        return None
    cid = item.get("conditionId") or item.get("condition_id") or item.get("market")
    if not isinstance(cid, str) or not cid:
        return None
    tokens = _token_ids(
        item.get("clobTokenIds", item.get("clob_token_ids", item.get("assets_ids")))
    )
    active = item.get("active", True) is not False
    closed = item.get("closed", False) is True
    accepting = item.get("acceptingOrders", True) is not False
    slug = item.get("slug")
    return DiscoveredMarket(cid, slug if isinstance(slug, str) else None, tokens,
                            active and not closed and accepting)  # fmt: skip


class Rest:
    """The REST side of one recorder (one aiohttp session, the archive's ``emit``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        emit: Emit,
        *,
        gamma_url: str,
        clob_url: str,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.emit = emit
        self.gamma_url = gamma_url.rstrip("/")
        self.clob_url = clob_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.calls = 0
        self.failures = 0

    async def _call(
        self, method: str, url: str, what: str, *, params: Any = None, body: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> str:  # fmt: skip
        """The response text of a 2xx answer, archived first; RestError otherwise."""
        self.calls += 1
        try:
            async with self.session.request(
                method, url, params=params, json=body, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                if resp.status // 100 != 2:
                    raise RestError(f"{method} {resp.url}: HTTP {resp.status}: {text[:200]}")
                record: dict[str, Any] = {"k": "rest", "what": what, "url": str(resp.url),
                                          "status": resp.status, "d": text}  # fmt: skip
                if extra:
                    record.update(extra)
                self.emit(record)
                return text
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
            self.failures += 1
            raise RestError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        except RestError:
            self.failures += 1
            raise

    async def discover(
        self,
        *,
        max_tokens: int | None,
        slugs: Sequence[str] = (),
        tag_id: str | None = None,
    ) -> list[DiscoveredMarket]:
        """Every open market Gamma lists (keyset pages), filtered, until ``max_tokens``.

        Raises RestError when a page fails (the pages before it are archived).
        """
        found: list[DiscoveredMarket] = []
        tokens = 0
        cursor: str | None = None
        while True:
            params: list[tuple[str, str]] = [("limit", str(PAGE)), ("closed", "false")]
            params += [("slug", s) for s in slugs]
            if tag_id is not None:
                params.append(("tag_id", tag_id))
            if cursor is not None:
                params.append(("after_cursor", cursor))
            text = await self._call(
                "GET", f"{self.gamma_url}/markets/keyset", "gamma_markets", params=params
            )
            try:
                page = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise RestError(f"Gamma keyset page is not JSON: {exc}") from exc
            items = page.get("markets") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise RestError("Gamma keyset page has no 'markets' list")
            for item in items:
                facts = market_facts(item)
                if facts is None or not facts.open or not facts.tokens:
                    continue
                if slugs and facts.slug not in slugs:
                    continue
                found.append(facts)
                tokens += len(facts.tokens)
                if max_tokens is not None and tokens >= max_tokens:
                    return found
            nxt = page.get("next_cursor")
            if not isinstance(nxt, str) or not nxt or not items:
                return found
            cursor = nxt

    async def closed(self, condition_ids: Sequence[str]) -> list[DiscoveredMarket]:
        """Which of ``condition_ids`` Gamma lists as closed (the responses are archived)."""
        out: list[DiscoveredMarket] = []
        ids = list(condition_ids)
        for k in range(0, len(ids), IDS_PER_CALL):
            params = [("closed", "true"), ("limit", str(IDS_PER_CALL))]
            params += [("condition_ids", c) for c in ids[k : k + IDS_PER_CALL]]
            text = await self._call("GET", f"{self.gamma_url}/markets/keyset", "gamma_closed",
                                    params=params)  # fmt: skip
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise RestError(f"Gamma markets answer is not JSON: {exc}") from exc
            items = body.get("markets") if isinstance(body, dict) else body
            for item in items if isinstance(items, list) else ():
                facts = market_facts(item)
                if facts is not None and not facts.open:
                    out.append(facts)
        return out

    async def books(self, tokens: Sequence[str]) -> int:
        """``POST /books`` for ``tokens`` (in calls of 100); the books received (archived)."""
        got = 0
        ids = list(tokens)
        for k in range(0, len(ids), BOOKS_PER_CALL):
            chunk = ids[k : k + BOOKS_PER_CALL]
            text = await self._call(
                "POST", f"{self.clob_url}/books", "books",
                body=[{"token_id": t} for t in chunk], extra={"req": chunk},
            )  # fmt: skip
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            got += len(body) if isinstance(body, list) else 0
        return got
