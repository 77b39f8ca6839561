"""The limit: the leanest program doing the benchmark's work, with no Ray.

One asyncio loop, the official ``openai`` client against the local provider, the grade
computed inline, rows appended to an Arrow file. Prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

import pyarrow as pa


async def main(base_url: str, n_tasks: int, group: int, concurrency: int, out: str) -> dict:
    os.environ["HUD_RAY_BENCH_TASKS"] = str(n_tasks)
    import httpx
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    from benchmarks.tasks_letters import words

    def make() -> AsyncOpenAI:
        # One client per slot, each with a small pool: the fastest way to drive the SDK
        # (a single client with hundreds of connections burns CPU in httpcore's pool).
        http = DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=2,
                                                           max_keepalive_connections=2),
                                       verify=tls)
        return AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0,
                           http_client=http)

    import ssl

    tls = ssl.create_default_context()
    idle = [make() for _ in range(concurrency)]
    clients = list(idle)
    work = [(w, ch, s) for w, ch in words(n_tasks) for s in range(group)]
    schema = pa.schema([("word", pa.string()), ("letter", pa.string()),
                        ("sample", pa.int32()), ("answer", pa.string()),
                        ("reward", pa.float64())])
    rows: list[dict] = []
    sem = asyncio.Semaphore(concurrency)
    sink = pa.OSFile(out, "wb")
    writer = pa.ipc.new_file(sink, schema)

    async def one(word: str, letter: str, sample: int) -> None:
        async with sem:
            prompt = f"How many '{letter}'s are in '{word}'? Reply with just the number."
            client = idle.pop()
            try:
                resp = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": prompt}],
                    max_tokens=16)
            finally:
                idle.append(client)
            answer = resp.choices[0].message.content
            reward = 1.0 if answer is not None and answer.strip() == str(word.count(letter)) \
                else 0.0
            rows.append({"word": word, "letter": letter, "sample": sample, "answer": answer,
                         "reward": reward})
            if len(rows) >= 1000:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows.clear()

    start = time.perf_counter()
    await asyncio.gather(*(one(*w) for w in work))
    if rows:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    writer.close()
    sink.close()
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.close()
    return {"rollouts": len(work), "elapsed_s": elapsed, "rollouts_per_s": len(work) / elapsed,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--tasks", type=int, default=1250)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--out", default="/tmp/bare-loop.arrow")
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.base_url, a.tasks, a.group, a.concurrency, a.out))))
