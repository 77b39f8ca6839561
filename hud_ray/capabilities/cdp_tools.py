"""Model tools over ``cdp/1.3``: navigate, click, type, select, read, screenshot.

Selectors are Playwright selectors (CSS, or ``text=Submit``); ``browser_read`` lists the
page's text and its links and form fields with a selector for each, so a model can act
without seeing pixels.
"""

from __future__ import annotations

import base64
from typing import Any

from hud_ray.agents.tools import Tool, ToolOutput
from hud_ray.capabilities.cdp_client import CDPClient

MAX_TEXT = 8000
_FIELDS_JS = """() => {
  const sel = e => e.id ? '#' + e.id : (e.name ? `${e.tagName.toLowerCase()}[name="${e.name}"]`
                                              : null);
  const out = [];
  for (const e of document.querySelectorAll('a[href]'))
    out.push(`link "${e.innerText.trim()}" -> ${e.getAttribute('href')}`);
  for (const e of document.querySelectorAll('input, select, textarea, button')) {
    const label = e.labels && e.labels[0] ? e.labels[0].innerText.trim() : '';
    let desc = `${e.tagName.toLowerCase()}${e.type ? ' type=' + e.type : ''}`;
    if (sel(e)) desc += ` selector=${sel(e)}`;
    if (label) desc += ` label="${label}"`;
    if (e.tagName === 'BUTTON') desc += ` text="${e.innerText.trim()}"`;
    if (e.tagName === 'SELECT')
      desc += ' options=' + JSON.stringify([...e.options].map(o => o.value));
    else if (e.value) desc += ` value="${e.value}"`;
    out.push(desc);
  }
  return out.join('\\n');
}"""


def _obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


_S = {"type": "string"}


def browser_tools(client: CDPClient, *, prefix: str = "") -> list[Tool]:
    """The tools a harness offers for one browser capability."""
    page = client.page

    async def where() -> str:
        return f"ok; now at {page.url} ({await page.title()})"

    async def navigate(args: dict[str, Any]) -> str:
        await page.goto(str(args["url"]), wait_until="load")
        return await where()

    async def click(args: dict[str, Any]) -> str:
        await page.click(str(args["selector"]))
        await page.wait_for_load_state("load")
        return await where()

    async def type_(args: dict[str, Any]) -> str:
        await page.fill(str(args["selector"]), str(args["text"]))
        return await where()

    async def select(args: dict[str, Any]) -> str:
        await page.select_option(str(args["selector"]), str(args["value"]))
        return await where()

    async def read(args: dict[str, Any]) -> str:
        text = await page.inner_text("body")
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + "\n[... truncated]"
        fields = await page.evaluate(_FIELDS_JS)
        return f"url: {page.url}\ntitle: {await page.title()}\n\n{text}\n\n" \
               f"interactive elements:\n{fields}"

    async def screenshot(args: dict[str, Any]) -> str:
        shot = await page.screenshot(type="jpeg", quality=60)
        return ToolOutput(f"screenshot of {page.url} ({await page.title()}) attached",
                          images=(("image/jpeg", base64.b64encode(shot).decode()),))

    def tool(name: str, desc: str, params: dict[str, Any], run: Any) -> Tool:
        async def guarded(args: dict[str, Any]) -> str:
            try:
                out = await run(args)
                return out if isinstance(out, ToolOutput) else str(out)
            except Exception as exc:  # the model sees the failure and may recover
                first = (str(exc).splitlines() or [""])[0][:300]
                return f"error: {type(exc).__name__}: {first}"

        return Tool(name=f"{prefix}{name}", description=desc, parameters=params, run=guarded)

    return [
        tool("browser_navigate", "Open a URL in the browser page.", _obj(url=_S), navigate),
        tool("browser_click", "Click the element matching a selector (CSS or text=...).",
             _obj(selector=_S), click),
        tool("browser_type", "Fill a form field (selector) with text.",
             _obj(selector=_S, text=_S), type_),
        tool("browser_select", "Choose an option (by value) in a <select>.",
             _obj(selector=_S, value=_S), select),
        tool("browser_read", "Read the page: URL, title, text, links and form fields.",
             _obj(), read),
        tool("browser_screenshot", "Take a screenshot of the page (returned as an image).",
             _obj(), screenshot),
    ]
