"""Agents that need no model: ``oracle`` runs the reference solution, ``nop`` does nothing."""

from __future__ import annotations

from hud_ray.agents.base import Agent
from hud_ray.errors import AgentError
from hud_ray.types import AgentContext, AgentResult


class OracleAgent(Agent):
    """Answers with the template's registered ``@template.solution``."""

    name = "oracle"

    async def run(self, ctx: AgentContext) -> AgentResult:
        if ctx.solve is None or not ctx.prompt.has_solution:
            return AgentResult(answer=None, stop_reason="error", model="oracle",
                               error=AgentError(f"task {ctx.task_slug!r} has no solution "
                                                "(register one with @template.solution)",
                                                code="no_solution"))
        answer = await ctx.solve()
        text = None if answer is None else str(answer)
        return AgentResult(answer=text, model="oracle",
                           steps=[{"role": "assistant", "content": text}])


class NopAgent(Agent):
    """Submits no answer: a correct task must score 0.0 against it."""

    name = "nop"

    async def run(self, ctx: AgentContext) -> AgentResult:
        return AgentResult(answer=None, model="nop")
