"""Rate limits: real token accounting, typed errors through retries, the limiter's lifetime."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import openai
import pytest

from hud_ray import read_rollouts
from hud_ray.agents._retry import RetryPolicy, call_with_retries
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import AgentError, ConfigError, LimiterLost, ProviderError, one_line
from hud_ray.limits import LimitSettings, RateLimiter
from hud_ray.testing import FakeProvider, Fault, letters_policy

NO_RETRY = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)


def _excess(events: list[tuple[float, int]], rate: float) -> float:
    """The most any window [t_i, t_j] of (time, tokens) events exceeds ``rate * (t_j - t_i)``."""
    events = sorted(events)
    worst = 0.0
    for i, (ti, _) in enumerate(events):
        total = 0
        for tj, n in events[i:]:
            total += n
            worst = max(worst, total - rate * (tj - ti))
    return worst


def _limiters(ray) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("limiter:")]


async def _until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


# ---- the bucket, in process ------------------------------------------------------------------
async def test_a_call_larger_than_the_burst_is_charged_in_full():
    limiter = RateLimiter(tpm=60_000)  # 1000 tokens/s, burst 1000
    await limiter.acquire(2000)  # a full bucket admits it; the rest is debt
    t0 = time.monotonic()
    await limiter.acquire(10)
    assert time.monotonic() - t0 > 0.9  # ~1.0 s to pay off 1000 tokens of debt


async def test_usage_beyond_the_estimate_is_debt_and_a_surplus_is_refunded():
    limiter = RateLimiter(tpm=60_000)
    await limiter.acquire(100)
    limiter.record(100, 1600)  # the response used 1500 more than estimated
    t0 = time.monotonic()
    await limiter.acquire(10)
    assert time.monotonic() - t0 > 0.5
    refund = RateLimiter(tpm=60_000)
    await refund.acquire(1000)
    refund.record(1000, 10)  # used little: the bucket gets the estimate back
    t0 = time.monotonic()
    await refund.acquire(900)
    assert time.monotonic() - t0 < 0.2
    unknown = RateLimiter(tpm=60_000)
    await unknown.acquire(1000)
    unknown.record(1000, 0)  # no usage reported: the estimate stands
    assert unknown.tokens is not None and unknown.tokens.level < 10


@pytest.mark.parametrize("extras", [{"rpm": 0}, {"tpm": -5}, {"tpm": "lots"},
                                    {"rpm": 60, "burst": float("nan")}, {"rpm": True}])
def test_bad_limit_settings_are_config_errors(extras):
    with pytest.raises(ConfigError, match="expected a positive number"):
        LimitSettings.parse(extras)


def test_limit_settings_parse():
    assert LimitSettings.parse({}) is None
    s = LimitSettings.parse({"tpm": "6000", "limiter_lease": 4})
    assert s == LimitSettings(tpm=6000.0, lease=4)


# ---- the shared actor ---------------------------------------------------------------------------
@pytest.mark.ray
async def test_concurrent_clients_keep_tokens_per_minute(ray_session):
    """Four clients, batched leases, responses using 4x their estimate: the tokens used in
    any window stay within rate * window + burst + what calls in flight used beyond
    their estimates."""
    from actors.limiter import RemoteLimiter, get_or_create_limiter

    tpm, estimate, actual, clients = 30_000, 50, 200, 4  # 500 tokens/s, burst 500
    handle = get_or_create_limiter("test:tpm", 6000, tpm, run_id="concurrent-clients")
    used: list[tuple[float, int]] = []

    async def client() -> None:
        limiter = RemoteLimiter(handle, lease_size=3, count_tokens=True)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            await limiter.acquire(estimate)
            used.append((time.monotonic(), actual))
            await asyncio.sleep(0.01)  # the "call"
            limiter.record(estimate, actual)
        await limiter.close()

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
        total = sum(n for _, n in used)
        excess = _excess(used, tpm / 60)
        # batching lets each client hold up to 3 estimates; each has <= 1 call in flight
        slack = tpm / 60 + clients * (3 * estimate + actual)
        assert excess <= slack, (excess, slack, total)
        assert total >= 4 * tpm / 60 * 0.5  # and it is not starved either
    finally:
        ray_session.kill(handle)


@pytest.mark.ray
async def test_agent_loop_tokens_per_minute(ray_session, tmp_path, root):
    """The real harness loop against the local provider: every call uses 1000 tokens but
    is estimated at ~30 (max_tokens=16), so only charging the reported usage keeps the
    provider's tokens/min within the limit."""
    tpm, per_call, concurrency = 30_000, 1000, 2  # 500 tokens/s, burst 500
    served: list[tuple[float, int]] = []

    def policy(req):
        served.append((time.monotonic(), per_call))
        return dataclasses.replace(letters_policy(req), prompt_tokens=600, completion_tokens=400)

    with FakeProvider(policy) as provider:
        cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                         base_url=provider.base_url, model="m", group_size=50, workers=2,
                         max_concurrent=concurrency, out=str(tmp_path / "run"),
                         agent_config={"tpm": tpm, "max_tokens": 16})
        task = asyncio.create_task(run_eval_async(config=cfg))
        try:
            await _until(lambda: bool(served), 60, "the first model call")
            await asyncio.sleep(7)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    excess = _excess(served, tpm / 60)
    slack = tpm / 60 + concurrency * per_call + 100  # burst + usage not yet reported
    assert excess <= slack, (excess, slack, len(served))
    assert len(served) >= 3


@pytest.mark.ray
async def test_a_batched_lease_charges_every_call(ray_session):
    from actors.limiter import RemoteLimiter, get_or_create_limiter

    handle = get_or_create_limiter("test:batch", 60_000, 6_000_000, run_id="batch")
    try:
        limiter = RemoteLimiter(handle, lease_size=3, count_tokens=True)
        for _ in range(6):
            await limiter.acquire(100)
        stats = await handle.stats.remote()
        assert stats["granted"] == 6 and stats["tokens_charged"] == 600
        limiter.record(100, 400)  # one call used 300 more: charged at once
        limiter.record(100, 0)  # no usage reported: nothing changes
        await limiter.close()
        assert (await handle.stats.remote())["tokens_charged"] == 900
    finally:
        ray_session.kill(handle)


# ---- errors through the retry wrapper ---------------------------------------------------------
@pytest.mark.ray
async def test_dead_limiter_is_an_infra_error_not_the_providers(ray_session):
    from actors.limiter import RemoteLimiter, get_or_create_limiter

    handle = get_or_create_limiter("test:dead", 600, None, run_id="dead-limiter")
    limiter = RemoteLimiter(handle)  # no reconnect: the death must surface, typed
    await limiter.acquire()
    ray_session.kill(handle)
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        await limiter.acquire()
        return "never"

    with pytest.raises(LimiterLost) as info:
        await call_with_retries(attempt, NO_RETRY, what="test call")
    err = info.value
    assert err.code == "limiter_lost" and err.retryable and not isinstance(err, ProviderError)
    assert calls == 1  # not retried as if the provider had failed
    message = str(err)
    assert "\x1b" not in message and "\n" not in message and "Traceback" not in message
    assert message.startswith("rate limiter actor died: ")


@pytest.mark.ray
async def test_a_killed_limiter_is_replaced_during_a_run(ray_session, tmp_path, root):
    """ray.kill the run's limiter mid-run: the harnesses make a new one and every row is
    fine; nothing is blamed on the provider, and no message carries a traceback."""
    with FakeProvider(letters_policy) as provider:
        cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                         base_url=provider.base_url, model="m", group_size=6, workers=2,
                         max_concurrent=4, out=str(tmp_path / "run"), max_retries=2,
                         agent_config={"rpm": 600, "tpm": 600_000})
        before = set(_limiters(ray_session))
        task = asyncio.create_task(run_eval_async(config=cfg))
        await _until(lambda: provider.requests >= 3, 60, "model calls")
        (name,) = set(_limiters(ray_session)) - before
        ray_session.kill(ray_session.get_actor(name, namespace="hud_ray"))
        start = provider.requests
        result = await task
    assert provider.requests > start  # calls went on after the kill
    rows = read_rollouts(result.out_dir).to_pylist()
    finals = [r for r in rows if r["final"]]
    assert len(finals) == result.summary["rollouts"] and all(
        r["status"] == "ok" for r in finals), [(r["status"], r["error_message"]) for r in rows]
    for r in rows:
        assert r["error_type"] in (None, "limiter_lost"), r["error_message"]
        assert "\x1b" not in (r["error_message"] or "") and "\n" not in (r["error_message"] or "")


async def test_other_exceptions_keep_their_type():
    async def bug() -> None:
        raise KeyError("choices")

    with pytest.raises(KeyError):
        await call_with_retries(bug, NO_RETRY)

    async def typed() -> None:
        raise AgentError("no model", code="no_model")

    with pytest.raises(AgentError) as info:
        await call_with_retries(typed, NO_RETRY)
    assert info.value.code == "no_model"


async def test_provider_http_errors_are_one_line_and_typed():
    ansi = "\x1b[31mbad request\x1b[0m\nTraceback (most recent call last):\n" \
           '  File "x.py", line 1, in f\n    boom()\nValueError: nope'
    codes = {400: ansi, 503: "down"}
    async with FakeProvider(lambda req: Fault(int(req.model),
                                              message=codes[int(req.model)])) as p:
        client = openai.AsyncOpenAI(base_url=p.base_url, api_key="x", max_retries=0)
        try:
            for model, code, retryable in (("400", "provider_rejected", False),
                                           ("503", "provider_error", True)):
                def call(model=model):
                    return client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi"}])

                with pytest.raises(ProviderError) as info:
                    await call_with_retries(call, NO_RETRY, what="call")
                assert info.value.code == code and info.value.retryable is retryable
                message = str(info.value)
                assert "\x1b" not in message and "\n" not in message
                assert "File " not in message and message.startswith(f"call failed: HTTP {model}")
        finally:
            await client.close()

    async def refused() -> None:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ProviderError) as info:
        await call_with_retries(refused, NO_RETRY, what="call")
    assert info.value.code == "provider_error" and info.value.retryable


def test_one_line():
    text = "\x1b[36mray::A.f()\x1b[39m (pid=1)\nTraceback (most recent call last):\n" \
           '  File "/a.py", line 3, in f\n    raise ValueError("x")\nValueError: x\n'
    assert one_line(text) == "ray::A.f() (pid=1) ValueError: x"
    assert one_line("a\n\tb  c\x07") == "a b c"
    assert len(one_line("x" * 1000, 50)) == 50


# ---- lifetime -----------------------------------------------------------------------------------
@pytest.mark.ray
async def test_no_limiter_outlives_its_run(ray_session, tmp_path, root):
    with FakeProvider(letters_policy) as provider:
        cfg = EvalConfig(source=str(root / "tasksets/letters.py"), agent="openai_compatible",
                         base_url=provider.base_url, model="m", group_size=2, workers=2,
                         out=str(tmp_path / "run"), agent_config={"rpm": 6000})
        before = set(_limiters(ray_session))
        task = asyncio.create_task(run_eval_async(config=cfg))
        seen: set[str] = set()
        while not task.done():
            seen.update(set(_limiters(ray_session)) - before)
            await asyncio.sleep(0.05)
        result = await task
    assert all(r["status"] == "ok" for r in read_rollouts(result.out_dir).to_pylist())
    await _until(lambda: not _limiters(ray_session), 30, "the limiter actor to go")
    assert len(seen) == 1 and result.run_id in seen.pop()  # one per run, shared by both
