"""The driver on real Ray: groups, failures as typed rows, actor death, timeouts, resume."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from hud_ray import SCHEMA_VERSION, read_rollouts
from hud_ray.engine import EvalConfig, run_eval_async
from hud_ray.errors import RecordError

pytestmark = pytest.mark.ray


async def run(tmp_path, source, agent="oracle", name="run", **kw):
    config = EvalConfig(source=str(source), agent=agent, out=str(tmp_path / name), **kw)
    result = await run_eval_async(config=config)
    return result, read_rollouts(result.out_dir).to_pylist()


async def test_letters_oracle_groups(ray_session, tmp_path, root):
    result, rows = await run(tmp_path, root / "tasksets/letters.py", group_size=3, workers=2)
    n_tasks = result.summary["rollouts"] // 3
    assert len(rows) == n_tasks * 3 and n_tasks > 10
    assert all(r["reward"] == 1.0 and r["reward_valid"] and r["status"] == "ok" for r in rows)
    groups = Counter(r["group_id"] for r in rows)
    assert len(groups) == n_tasks and set(groups.values()) == {3}
    by_slug = {}
    for r in rows:
        by_slug.setdefault(r["slug"], set()).add(r["group_id"])
    assert all(len(g) == 1 for g in by_slug.values())  # one group id per task
    assert {r["sample_index"] for r in rows} == {0, 1, 2}
    assert len({r["trace_id"] for r in rows}) == len(rows)
    assert json.loads(rows[0]["args"])  # args as JSON text
    assert result.summary["pass@3"] == 1.0 and result.summary["mean_reward"] == 1.0
    manifest = json.loads((result.out_dir / "_manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["taskset_digest"]


async def test_nop_on_quickstart_scores_zero(ray_session, tmp_path, fixtures):
    result, rows = await run(tmp_path, fixtures / "quickstart.py", agent="nop")
    assert len(rows) == 3
    assert all(r["reward"] == 0.0 and r["reward_valid"] for r in rows)


async def test_bad_templates_become_typed_rows(ray_session, tmp_path, fixtures):
    ids = ["good", "three_yields", "no_grade", "not_finite", "not_numeric", "raises_at_start",
           "raises_at_grade"]
    result, rows = await run(tmp_path, fixtures / "bad_templates.py", agent="nop",
                             task_ids=ids, max_retries=1)
    final = {r["template_id"]: r for r in rows if r["final"]}
    assert set(final) == set(ids)
    assert final["good"]["status"] == "ok" and final["good"]["reward"] == 0.0
    # as in HUD: a template that returns without grading scores 0.0, a third yield is
    # never reached
    assert final["three_yields"]["status"] == "ok" and final["three_yields"]["reward"] == 1.0
    assert final["no_grade"]["status"] == "ok" and final["no_grade"]["reward"] == 0.0
    for name in ("not_finite", "not_numeric", "raises_at_grade"):
        assert final[name]["status"] == "grader_error", name
        assert final[name]["reward"] is None and not final[name]["reward_valid"]
    start = final["raises_at_start"]
    assert start["status"] == "infra_error" and start["error_type"] == "template_start_error"
    assert "setup exploded" in start["error_message"]
    assert len(rows) == len(ids)  # deterministic failures are not retried


async def test_oracle_without_solution_is_agent_error(ray_session, tmp_path, fixtures):
    result, rows = await run(tmp_path, fixtures / "bad_templates.py", task_ids=["no_grade"])
    assert rows[0]["status"] == "agent_error" and rows[0]["error_type"] == "no_solution"


async def test_timeout_row_and_run_continues(ray_session, tmp_path, fixtures):
    result, rows = await run(tmp_path, fixtures / "bad_templates.py", task_ids=["slow", "good"],
                             rollout_timeout=1.5)
    final = {r["template_id"]: r for r in rows}
    assert final["slow"]["status"] == "timeout" and not final["slow"]["reward_valid"]
    assert final["slow"]["duration_s"] < 10
    assert final["good"]["status"] == "ok"


async def test_harness_actor_death_is_retried(ray_session, tmp_path, fixtures):
    from hud_ray import Taskset

    marker = tmp_path / "died"
    ts = Taskset.from_file(fixtures / "bad_templates.py")
    rows_src = tmp_path / "tasks.jsonl"
    bad = ts.environments["bad"].templates
    Taskset("t", [bad["dies_once"](marker=str(marker)), bad["good"](x=2)]).to_file(rows_src)
    result, rows = await run(tmp_path, rows_src, env_source=str(fixtures / "bad_templates.py"),
                             group_size=2, workers=1, max_retries=2)
    assert marker.exists()
    failed = [r for r in rows if r["status"] == "infra_error"]
    assert failed and all(r["error_type"] == "actor_lost" and not r["final"] for r in failed)
    valid = Counter(r["rollout_key"] for r in rows if r["final"] and r["reward_valid"])
    assert len(valid) == 4 and set(valid.values()) == {1}  # exactly one valid row per key
    assert all(r["reward"] == 1.0 for r in rows if r["final"])


async def test_pooled_sandbox_death_is_retried_on_fresh_sandbox(ray_session, tmp_path, fixtures):
    from hud_ray import Taskset

    marker = tmp_path / "died"
    ts = Taskset.from_file(fixtures / "stateful.py")
    tpl = ts.environments["stateful"].templates["write_pid"]
    Taskset("t", [tpl(n=1, marker=str(marker)), tpl(n=2), tpl(n=3)]).to_file(
        tmp_path / "rows.jsonl")
    result, rows = await run(tmp_path, tmp_path / "rows.jsonl", group_size=3,
                             env_source=str(fixtures / "stateful.py"), max_retries=2,
                             max_concurrent=4)
    final = [r for r in rows if r["final"]]
    assert len(final) == 9 and all(r["status"] == "ok" and r["reward"] == 1.0 for r in final)
    lost = [r for r in rows if not r["final"]]
    assert len(lost) == 1 and lost[0]["error_type"] == "actor_lost"


async def test_resume_skips_finished_and_refuses_other_config(ray_session, tmp_path, root):
    src = root / "tasksets/letters.py"
    first, rows = await run(tmp_path, src, group_size=2, task_ids=["count_letter"])
    # simulate an interrupted run: drop the last part's rows by deleting half the keys
    again = await run_eval_async(config=EvalConfig(source=str(src), agent="oracle", group_size=2,
                                                   task_ids=["count_letter"],
                                                   resume=str(first.out_dir)))
    after = read_rollouts(again.out_dir).to_pylist()
    assert len(after) == len(rows)  # nothing re-ran
    assert again.run_id == first.run_id
    with pytest.raises(RecordError, match="group_size"):
        await run_eval_async(config=EvalConfig(source=str(src), agent="oracle", group_size=3,
                                               task_ids=["count_letter"],
                                               resume=str(first.out_dir)))


async def test_resume_runs_only_missing_keys(ray_session, tmp_path, root):
    import pyarrow as pa

    src = root / "tasksets/letters.py"
    first, rows = await run(tmp_path, src, group_size=2)
    # keep only the first 10 rows, as if the run had been cut off
    table = read_rollouts(first.out_dir).slice(0, 10)
    for part in first.out_dir.glob("rollouts-*.arrow"):
        part.unlink()
    with pa.OSFile(str(first.out_dir / "rollouts-000000.arrow"), "wb") as f, \
            pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    again = await run_eval_async(config=EvalConfig(source=str(src), agent="oracle", group_size=2,
                                                   resume=str(first.out_dir)))
    after = read_rollouts(again.out_dir).to_pylist()
    assert len(after) == len(rows)
    assert Counter(r["rollout_key"] for r in after) == Counter(r["rollout_key"] for r in rows)


async def test_resume_an_old_layout_run_dir(ray_session, tmp_path, root):
    import pyarrow as pa
    import pyarrow.dataset as ds

    src = root / "tasksets/letters.py"
    first, rows = await run(tmp_path, src)
    out = first.out_dir
    (out / "_manifest.json").rename(out / "manifest.json")  # a run dir from before 0.2
    (out / "_summary.json").rename(out / "summary.json")
    table = read_rollouts(out).slice(0, 5)
    for part in out.glob("rollouts-*.arrow"):
        part.unlink()
    with pa.OSFile(str(out / "rollouts-000000.arrow"), "wb") as f, \
            pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    again = await run_eval_async(resume=str(out))  # config from the old manifest
    after = read_rollouts(out).to_pylist()
    assert again.run_id == first.run_id and len(after) == len(rows)
    assert Counter(r["rollout_key"] for r in after) == Counter(r["rollout_key"] for r in rows)
    assert ds.dataset(str(out), format="arrow").count_rows() == len(rows)
