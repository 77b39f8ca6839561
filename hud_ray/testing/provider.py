"""A protocol-faithful local model provider for tests, demos and benchmarks.

Speaks OpenAI Chat Completions (``/v1/chat/completions``), OpenAI Responses
(``/v1/responses``), Anthropic Messages (``/v1/messages``) and Gemini
(``/v1beta/models/M:generateContent``), streaming and not, well enough for the official
``openai``, ``anthropic`` and ``google-genai`` clients. What it answers comes
from a *policy* (see :mod:`hud_ray.testing.policy`); faults (429 with Retry-After, 5xx,
hangs, disconnects, malformed tool JSON) are injected the same way. With
``token_ids=True`` (or a request carrying vLLM's ``return_token_ids``) chat responses
carry token ids and logprobs the way vLLM returns them.

``strict=True`` (the default) rejects what the real APIs reject (see
:mod:`hud_ray.testing._strict`): unknown or model-inappropriate parameters, broken
tool call / result pairing, reasoning (thinking blocks, reasoning items,
``reasoning_content``) not sent back unchanged. ``strict=False`` accepts anything.

    async with FakeProvider(letters_policy) as p:
        client = AsyncOpenAI(base_url=p.base_url, api_key="x")

Run it standalone with ``hud-ray fake-provider`` or ``python -m hud_ray.testing.provider``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import re
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from hud_ray.testing import _anthropic, _gemini, _openai, _strict
from hud_ray.testing._http import HTTPServer, Request, Response
from hud_ray.testing._wire import dumps, error_body, new_id, parse
from hud_ray.testing.policy import (
    Fault,
    Outcome,
    Policy,
    ProviderRequest,
    Reply,
    echo_policy,
    letters_policy,
    tool_turns,
)

logger = logging.getLogger(__name__)

_ROUTES = {"/v1/chat/completions": "chat", "/chat/completions": "chat",
           "/v1/responses": "responses", "/responses": "responses",
           "/v1/messages": "messages", "/messages": "messages"}
_GEMINI = re.compile(r"^/(?:v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_SSE = {"cache-control": "no-cache"}
MODEL = "fake"

Answer = Response | Awaitable[Response]


class FakeProvider:
    """A loopback HTTP server answering model calls from a policy.

    ``requests`` counts model calls (faults and refusals included), ``log`` keeps the
    most recent :class:`ProviderRequest` objects, and ``stats`` counts outcomes by
    ``"<api>:<status>"`` (faults as ``"<api>:<kind>:<status>"``).
    """

    def __init__(self, policy: Policy | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, token_ids: bool = False, api_key: str | None = None,
                 log_size: int = 1000, strict: bool = True) -> None:
        self.policy: Policy = policy or letters_policy
        self.host = host
        self.port = port
        self.latency = latency
        self.token_ids = token_ids
        self.api_key = api_key
        self.strict = strict
        #: tool call id -> the reasoning issued with it (what strict mode wants back)
        self.issued: OrderedDict[str, str] = OrderedDict()
        self.requests = 0
        self.log: deque[ProviderRequest] = deque(maxlen=log_size)
        self.stats: Counter[str] = Counter()
        self._http: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        http = HTTPServer(self._handle)
        self.port = await http.listen(self.host, self.port)
        self._http = http

    async def stop(self) -> None:
        """Stop listening and drop open connections (hanging requests included)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def __aenter__(self) -> FakeProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeProvider:
        """Serve from a daemon thread with its own event loop (for sync code, and for
        Ray actors in other processes that reach it by URL)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-provider")
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For the ``openai`` clients."""
        return f"{self.url}/v1"

    @property
    def gemini_base_url(self) -> str:
        """For the ``google-genai`` client (which appends ``/v1beta/models/...``)."""
        return self.url

    @property
    def anthropic_base_url(self) -> str:
        """For the ``anthropic`` client (which appends ``/v1/messages``)."""
        return self.url

    # ---- requests -------------------------------------------------------------------------
    def _handle(self, req: Request) -> Answer:
        path = req.path.partition("?")[0]
        api = _ROUTES.get(path)
        gemini = _GEMINI.match(path) if api is None else None
        if gemini is not None:
            api = "gemini"
        if api is None:
            return self._other(req, path.rstrip("/"))
        if req.method != "POST":
            return _error(api, 405, f"{req.method} not allowed on {path}")
        self.requests += 1
        if self.api_key is not None and not self._authorised(req.headers):
            self.stats[f"{api}:401"] += 1
            return _error(api, 401, "Incorrect API key provided.")
        try:
            body = json.loads(req.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.stats[f"{api}:400"] += 1
            return _error(api, 400, "The request body is not a JSON object.")
        strict_body = body
        if gemini is not None:  # model and streaming live in the URL
            body = {**body, "model": gemini.group(1),
                    "stream": gemini.group(2) == "streamGenerateContent"}
        preq = parse(api, body, req.headers)
        self.log.append(preq)
        if self.strict and (bad := _strict.check(api, strict_body, self.issued)) is not None:
            self.stats[f"{api}:strict:{bad.status}"] += 1
            logger.info("fake provider rejected a %s request: %s", api, bad.message)
            return Response(status=bad.status,
                            body=error_body(api, bad.status, bad.message, bad.param, bad.code))
        try:
            outcome = self.policy(preq)
        except Exception:
            return self._policy_failed(preq)
        if inspect.isawaitable(outcome):
            return self._await_policy(preq, outcome)
        return self._answer(preq, outcome)

    async def _await_policy(self, preq: ProviderRequest, pending: Awaitable[Outcome]) -> Response:
        try:
            outcome = await pending
        except Exception:
            return self._policy_failed(preq)
        answer = self._answer(preq, outcome)
        return await answer if inspect.isawaitable(answer) else answer

    def _policy_failed(self, preq: ProviderRequest) -> Response:
        logger.exception("fake provider policy failed")
        self.stats[f"{preq.api}:500"] += 1
        return _error(preq.api, 500, "The provider policy raised an exception.")

    def _answer(self, preq: ProviderRequest, outcome: Outcome) -> Answer:
        api = preq.api
        if isinstance(outcome, Fault):
            self.stats[f"{api}:{outcome.kind}:{outcome.status}"] += 1
            if outcome.kind in ("cut", "truncate"):
                cut = self._render(preq, Reply(text=" ".join([outcome.message] * 8)))
                cut.action = outcome.kind
                return cut
            if outcome.kind != "http":
                return Response(action=outcome.kind)
            headers = {}
            if outcome.retry_after is not None:
                headers["retry-after"] = f"{outcome.retry_after:g}"
                headers["retry-after-ms"] = str(round(outcome.retry_after * 1000))
            return _error(api, outcome.status, outcome.message, headers)
        if not isinstance(outcome, Reply):
            logger.error("fake provider policy returned %r, not a Reply or Fault", outcome)
            self.stats[f"{api}:500"] += 1
            return _error(api, 500, "The provider policy returned neither a Reply nor a Fault.")
        delay = self.latency + outcome.latency
        if delay > 0:
            return self._delayed(delay, preq, outcome)
        return self._render(preq, outcome)

    async def _delayed(self, delay: float, preq: ProviderRequest, reply: Reply) -> Response:
        await asyncio.sleep(delay)
        return self._render(preq, reply)

    def _render(self, preq: ProviderRequest, reply: Reply) -> Response:
        api = preq.api
        self.stats[f"{api}:200"] += 1
        reply = self._remember(preq, reply)
        if preq.body.get("stream"):
            if api == "chat":
                stream = _openai.chat_stream(preq, reply, self.token_ids)
            elif api == "responses":
                stream = _openai.responses_stream(preq, reply)
            elif api == "gemini":
                stream = _gemini.gemini_stream(preq, reply)
            else:
                stream = _anthropic.messages_stream(preq, reply)
            return Response(stream=stream, content_type="text/event-stream", headers=_SSE)
        if api == "chat":
            return Response(body=_openai.chat_json(preq, reply, self.token_ids))
        if api == "responses":
            return Response(body=_openai.responses_json(preq, reply))
        if api == "gemini":
            return Response(body=_gemini.gemini_json(preq, reply))
        return Response(body=_anthropic.messages_json(preq, reply))

    def _remember(self, preq: ProviderRequest, reply: Reply) -> Reply:
        """Give tool calls ids and remember the reasoning that came with them."""
        if not reply.tool_calls:
            return reply
        prefix = "toolu_" if preq.api == "messages" else "call_"
        calls = tuple(c if c.id else replace(c, id=new_id(prefix)) for c in reply.tool_calls)
        reasoning = reply.reasoning
        if preq.api == "messages" and not _anthropic.thinking_enabled(preq.body):
            reasoning = None  # no thinking block is sent, so none can come back
        if reasoning is not None:
            for c in calls:
                self.issued[c.id] = reasoning  # type: ignore[index]
            while len(self.issued) > 100_000:
                self.issued.popitem(last=False)
        return replace(reply, tool_calls=calls)

    def _other(self, req: Request, path: str) -> Response:
        """The model list (in the shape of whichever SDK asks) and a health check."""
        anthropic = "anthropic-version" in req.headers
        api = "messages" if anthropic else "chat"
        if req.method != "GET" or not (path in ("", "/health") or "models" in path):
            return _error(api, 404, f"No route for {req.method} {req.path}.")
        if path in ("", "/health"):
            return Response(body=b'{"status":"ok"}')
        if self.api_key is not None and not self._authorised(req.headers):
            return _error(api, 401, "Incorrect API key provided.")
        prefix, _, model = path.partition("/models")
        model = model.lstrip("/")
        if prefix not in ("", "/v1") or model not in ("", MODEL):
            return _error(api, 404, f"The model {model!r} does not exist.")
        if anthropic:
            info: dict[str, Any] = {"type": "model", "id": MODEL,
                                    "display_name": "Fake model",
                                    "created_at": "2025-01-01T00:00:00Z", "lifecycle": "active"}
            data: dict[str, Any] = info if model else {
                "data": [info], "has_more": False, "first_id": MODEL, "last_id": MODEL}
        else:
            info = {"id": MODEL, "object": "model", "created": 0, "owned_by": "hud-ray"}
            data = info if model else {"object": "list", "data": [info]}
        return Response(body=dumps(data).encode())

    def _authorised(self, headers: dict[str, str]) -> bool:
        return (headers.get("authorization") == f"Bearer {self.api_key}"
                or headers.get("x-api-key") == self.api_key
                or headers.get("x-goog-api-key") == self.api_key)


def _error(api: str, status: int, message: str,
           headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=error_body(api, status, message), headers=headers or {})


_POLICIES = {"letters": letters_policy, "echo": echo_policy}


def main(argv: list[str] | None = None) -> None:
    """Serve forever; prints ``listening on http://HOST:PORT`` once bound."""
    p = argparse.ArgumentParser(prog="hud-ray fake-provider",
                                description="Serve the local fake model provider (OpenAI "
                                            "chat/responses and Anthropic messages).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    p.add_argument("--policy", choices=[*_POLICIES, "tools"], default="letters",
                   help="letters: count letters; echo: repeat the last message; tools: call "
                        "the first offered tool for --turns - 1 turns, then answer")
    p.add_argument("--turns", type=int, default=3, help="model turns for --policy tools")
    p.add_argument("--token-ids", action="store_true", help="return vLLM-style token ids")
    p.add_argument("--api-key", default=None, help="require this key")
    p.add_argument("--lenient", action="store_true",
                   help="accept requests the real APIs would reject (no strict checks)")
    a = p.parse_args(argv)
    policy = tool_turns(a.turns) if a.policy == "tools" else _POLICIES[a.policy]

    async def serve() -> None:
        provider = FakeProvider(policy, host=a.host, port=a.port, latency=a.latency,
                                token_ids=a.token_ids, api_key=a.api_key,
                                strict=not a.lenient)
        await provider.start()
        print(f"listening on {provider.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await provider.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
