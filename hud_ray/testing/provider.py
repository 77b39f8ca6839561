"""A protocol-faithful local model provider for tests, demos and benchmarks.

Speaks OpenAI Chat Completions (``/v1/chat/completions``), OpenAI Responses
(``/v1/responses``) and Anthropic Messages (``/v1/messages``), streaming and not, well
enough for the official ``openai`` and ``anthropic`` clients. What it answers comes
from a *policy* (see :mod:`hud_ray.testing.policy`); faults (429 with Retry-After, 5xx,
hangs, disconnects, malformed tool JSON) are injected the same way. With
``token_ids=True`` (or a request carrying vLLM's ``return_token_ids``) chat responses
carry token ids and logprobs the way vLLM returns them.

    async with FakeProvider(letters_policy) as p:
        client = AsyncOpenAI(base_url=p.base_url, api_key="x")

Run it standalone with ``hud-ray fake-provider`` or ``python -m hud_ray.testing.provider``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import threading
from collections import Counter, deque
from typing import Any

from hud_ray.testing import _wire
from hud_ray.testing._http import Request, Response, serve
from hud_ray.testing.policy import (
    Fault,
    Policy,
    ProviderRequest,
    Reply,
    echo_policy,
    letters_policy,
    tool_turns,
)

_ROUTES = {"/v1/chat/completions": "chat", "/chat/completions": "chat",
           "/v1/responses": "responses", "/responses": "responses",
           "/v1/messages": "messages", "/messages": "messages"}


class FakeProvider:
    """A loopback HTTP server answering model calls from a policy."""

    def __init__(self, policy: Policy | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, token_ids: bool = False, api_key: str | None = None,
                 log_size: int = 1000) -> None:
        self.policy: Policy = policy or letters_policy
        self.host = host
        self.port = port
        self.latency = latency
        self.token_ids = token_ids
        self.api_key = api_key
        self.requests = 0
        self.log: deque[ProviderRequest] = deque(maxlen=log_size)
        self.stats: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> FakeProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeProvider:
        """Serve from a daemon thread with its own loop (for sync code and other processes)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-provider")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake provider did not start")
        return self

    def stop_thread(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

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
    def anthropic_base_url(self) -> str:
        """For the ``anthropic`` client (which appends ``/v1/messages``)."""
        return self.url

    # ---- requests -------------------------------------------------------------------------
    async def _handle(self, req: Request) -> Response:
        path = req.path.split("?", 1)[0]
        if req.method == "GET" and path.rstrip("/") in ("/v1/models", "/models"):
            return _json(200, {"object": "list", "data": [
                {"id": "fake", "object": "model", "created": 0, "owned_by": "hud-ray"}]})
        api = _ROUTES.get(path)
        if api is None or req.method != "POST":
            return _json(404, {"error": {"message": f"no route {req.method} {path}",
                                         "type": "not_found"}})
        self.requests += 1
        if self.api_key is not None and not self._authorised(req.headers):
            self.stats[f"{api}:401"] += 1
            return _json(401, _wire.error_json(api, 401, "invalid api key"))
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            return _json(400, _wire.error_json(api, 400, "body is not JSON"))
        preq = _wire.parse(api, body, req.headers)
        self.log.append(preq)
        outcome = self.policy(preq)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if isinstance(outcome, Fault):
            self.stats[f"{api}:{outcome.kind}:{outcome.status}"] += 1
            if outcome.kind == "hang":
                return Response(hang=True)
            if outcome.kind == "disconnect":
                return Response(disconnect=True)
            headers = {}
            if outcome.retry_after is not None:
                headers["retry-after"] = f"{outcome.retry_after:g}"
                headers["retry-after-ms"] = str(int(outcome.retry_after * 1000))
            return _json(outcome.status, _wire.error_json(api, outcome.status, outcome.message),
                         headers)
        reply: Reply = outcome
        delay = self.latency + reply.latency
        if delay > 0:
            await asyncio.sleep(delay)
        self.stats[f"{api}:200"] += 1
        stream = bool(body.get("stream"))
        if api == "chat":
            if stream:
                return _sse(_wire.chat_stream(preq, reply, self.token_ids))
            return _json(200, _wire.chat_json(preq, reply, self.token_ids))
        if api == "responses":
            if stream:
                return _sse(_wire.responses_stream(preq, reply))
            return _json(200, _wire.responses_json(preq, reply))
        if stream:
            return _sse(_wire.messages_stream(preq, reply))
        return _json(200, _wire.messages_json(preq, reply))

    def _authorised(self, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "")
        return bearer == f"Bearer {self.api_key}" or headers.get("x-api-key") == self.api_key


def _json(status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=json.dumps(data).encode(), headers=headers or {})


def _sse(stream: Any) -> Response:
    return Response(stream=stream, content_type="text/event-stream",
                    headers={"cache-control": "no-cache"})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="hud-ray fake-provider",
                                description="Serve the local fake model provider.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    p.add_argument("--policy", choices=["letters", "echo", "tools"], default="letters")
    p.add_argument("--turns", type=int, default=3, help="model turns for --policy tools")
    p.add_argument("--token-ids", action="store_true", help="return vLLM-style token ids")
    p.add_argument("--api-key", default=None, help="require this key")
    a = p.parse_args(argv)
    policy = {"letters": letters_policy, "echo": echo_policy,
              "tools": tool_turns(a.turns)}[a.policy]

    async def run() -> None:
        provider = FakeProvider(policy, host=a.host, port=a.port, latency=a.latency,
                                token_ids=a.token_ids, api_key=a.api_key)
        await provider.start()
        print(f"listening on {provider.url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
