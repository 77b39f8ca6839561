"""The ``cdp/1.3`` capability, harness side: Playwright over the published endpoint.

Connects with Playwright's ``connect_over_cdp`` (the connections open on one event loop
share one Playwright driver process, kept for ``DRIVER_IDLE_S`` after the last one closes;
no Playwright-downloaded browser is used) and picks out this rollout's page by its
``target_id``. Closing only disconnects: the page and its context stay with the sandbox,
which grades them and disposes of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any, ClassVar, Self

from hud_ray.capabilities.base import Capability, CapabilityClient
from hud_ray.errors import CapabilityError

CONNECT_TIMEOUT = 30.0
#: A driver nobody uses is stopped after this many seconds (the next rollout on the
#: same loop, usually seconds later, then connects without starting one).
DRIVER_IDLE_S = 30.0
#: Playwright driver processes shared by the connections open on one event loop
#: (starting a driver costs ~0.4-1 s; connecting over CDP ~40 ms):
#: loop -> [driver, users, idle timer].
_DRIVERS: dict[asyncio.AbstractEventLoop, list[Any]] = {}
_DRIVER_LOCK: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = \
    weakref.WeakKeyDictionary()


async def _acquire_driver() -> Any:
    from playwright.async_api import async_playwright

    loop = asyncio.get_running_loop()
    async with _DRIVER_LOCK.setdefault(loop, asyncio.Lock()):
        entry = _DRIVERS.get(loop)
        if entry is None:
            entry = _DRIVERS[loop] = [await async_playwright().start(), 0, None]
        entry[1] += 1
        if entry[2] is not None:
            entry[2].cancel()
            entry[2] = None
        return entry[0]


async def _release_driver() -> None:
    loop = asyncio.get_running_loop()
    async with _DRIVER_LOCK.setdefault(loop, asyncio.Lock()):
        entry = _DRIVERS.get(loop)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0 and entry[2] is None:
            entry[2] = loop.create_task(_stop_when_idle(loop, entry))


async def stop_idle_driver() -> None:
    """Stop this loop's driver now if no connection uses it (call before closing a loop)."""
    entry = _DRIVERS.get(asyncio.get_running_loop())
    if entry is not None and entry[1] <= 0 and entry[2] is not None:
        entry[2].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await entry[2]


async def _stop_when_idle(loop: asyncio.AbstractEventLoop, entry: list[Any]) -> None:
    """Stop a driver left unused for DRIVER_IDLE_S (or when its loop shuts down)."""
    try:
        await asyncio.sleep(DRIVER_IDLE_S)
    except asyncio.CancelledError:
        if entry[1] > 0:  # a new connection took the driver: keep it
            raise
    async with _DRIVER_LOCK.setdefault(loop, asyncio.Lock()):
        if entry[1] <= 0 and _DRIVERS.get(loop) is entry:
            del _DRIVERS[loop]
            await entry[0].stop()


class CDPClient(CapabilityClient):
    """A Playwright connection to a sandbox's Chromium; ``page`` is this rollout's page."""

    protocol: ClassVar[str] = "cdp/1.3"

    def __init__(self, capability: Capability, playwright: Any, browser: Any,
                 page: Any) -> None:
        self.capability = capability
        self.playwright = playwright
        self.browser = browser
        self.page = page

    @classmethod
    async def connect(cls, capability: Capability) -> Self:
        pw = await _acquire_driver()
        try:
            browser = await pw.chromium.connect_over_cdp(
                capability.url, timeout=CONNECT_TIMEOUT * 1000)
            page = await asyncio.wait_for(
                _find_page(browser, capability.params.get("target_id")), CONNECT_TIMEOUT)
        except BaseException as exc:
            await _release_driver()
            if isinstance(exc, CapabilityError) or not isinstance(exc, Exception):
                raise
            first = (str(exc).splitlines() or [""])[0][:200]
            raise CapabilityError(f"cdp capability {capability.name!r}: cannot connect: "
                                  f"{type(exc).__name__}: {first}") from exc
        page.set_default_timeout(15_000)
        return cls(capability, pw, browser, page)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.browser.close(), 10)  # disconnects; pages stay
        except Exception:
            pass
        finally:
            await _release_driver()


async def _find_page(browser: Any, target_id: str | None) -> Any:
    pages = [p for c in browser.contexts for p in c.pages]
    if target_id is None:
        if not pages:
            raise CapabilityError("the browser has no page", retryable=False)
        return pages[-1]
    for page in pages:
        try:  # other rollouts' pages may close while we look
            session = await page.context.new_cdp_session(page)
            info = await session.send("Target.getTargetInfo")
            await session.detach()
        except Exception:
            continue
        if info["targetInfo"]["targetId"] == target_id:
            return page
    raise CapabilityError(f"this rollout's page ({target_id}) is gone", retryable=True)
