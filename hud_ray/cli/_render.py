"""Terminal output for the CLI: the live progress line and the summary table."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import click

from hud_ray.engine.driver import Progress


class ProgressLine:
    """A single updating line on a TTY; periodic plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self._last = 0.0
        self._finished = False

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.done >= p.total and p.in_flight == 0
        if self._finished or (not self.tty and not final and now - self._last < self.every):
            return
        self._finished = final
        self._last = now
        width = 24
        filled = int(width * p.done / p.total) if p.total else width
        bar = "#" * filled + "-" * (width - filled)
        eta = f"{p.eta:5.0f}s" if p.eta is not None else "    ?"
        line = (f"[{bar}] {p.done}/{p.total} done  {p.failed} failed  {p.in_flight} in flight"
                f"  {p.retried} retried  {p.rate:6.1f}/s  eta {eta}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_summary(summary: dict[str, Any], *, max_rows: int = 40) -> str:
    k = summary["group_size"]
    tasks = summary["tasks"]
    name_w = min(48, max([len("task")] + [len(t["slug"]) for t in tasks]))
    lines = [f"{'task':<{name_w}}  {'n':>4}  {'reward':>7}  {f'pass@{k}':>7}  errors"]
    lines.append("-" * len(lines[0]))
    for t in tasks[:max_rows]:
        errors = ", ".join(f"{s}={c}" for s, c in sorted(t["errors"].items())) or "-"
        lines.append(f"{t['slug'][:name_w]:<{name_w}}  {t['rollouts']:>4}  "
                     f"{_fmt(t['mean_reward']):>7}  {_fmt(t['pass_at_k'], 2):>7}  {errors}")
    if len(tasks) > max_rows:
        lines.append(f"... {len(tasks) - max_rows} more tasks (see _summary.json)")
    lines.append("-" * len(lines[0]))
    status = ", ".join(f"{s}={c}" for s, c in sorted(summary["status"].items()))
    lines.append(f"rollouts {summary['rollouts']}  valid {summary['valid']}  "
                 f"mean reward {_fmt(summary['mean_reward'])}  pass@{k} "
                 f"{_fmt(summary.get(f'pass@{k}'), 3)}  pass@1 {_fmt(summary.get('pass@1'))}")
    lines.append(f"status: {status or '-'}  (attempt rows incl. retries: "
                 f"{summary['attempt_rows']})")
    lines.append(f"throughput {summary['rollouts_per_s'] or 0:.1f} rollouts/s over "
                 f"{summary['elapsed_s']:.1f}s   rows: {summary['out_dir']}")
    return "\n".join(lines)


def echo_err(message: str) -> None:
    click.echo(f"error: {message}", err=True)
