"""Authoring API: templates mint HUD-compatible Task rows; tasksets load and filter."""

from __future__ import annotations

import hashlib
import json

import pytest

from hud_ray import Environment, Task, Taskset
from hud_ray.errors import TasksetError, TemplateError


def hud_slug(task_id, args):
    if not args:
        return task_id
    return task_id + "-" + hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:8]


def test_calling_a_template_mints_a_row_with_hud_slug():
    env = Environment(name="letter-count")

    @env.template()
    async def count_letter(word: str = "strawberry", letter: str = "r"):
        answer = yield "q"
        yield 1.0

    task = count_letter(word="raspberry")
    assert isinstance(task, Task)
    assert (task.env, task.id, task.args) == ("letter-count", "count_letter", {"word": "raspberry"})
    assert task.slug == hud_slug("count_letter", {"word": "raspberry"})
    assert count_letter().slug == "count_letter"  # no args: the id alone
    positional = count_letter("kiwi", "i")
    assert positional.args == {"word": "kiwi", "letter": "i"}  # positional args by name


def test_quickstart_slugs_match_hud(fixtures):
    ts = Taskset.from_file(fixtures / "quickstart.py")
    assert [t.slug for t in ts] == [hud_slug("count_letter", {"word": w})
                                    for w in ("strawberry", "raspberry", "blueberry")]
    assert ts.sources["letter-count"].endswith("quickstart.py")


def test_template_must_be_async_generator():
    env = Environment(name="e")
    with pytest.raises(TemplateError, match="async generator"):
        @env.template()
        async def not_a_generator():
            return 1.0


def test_duplicate_template_id_is_rejected():
    env = Environment(name="e")

    @env.template(id="same")
    async def a():
        yield "p"
        yield 1.0

    with pytest.raises(TemplateError, match="already registered"):
        @env.template(id="same")
        async def b():
            yield "p"
            yield 1.0


def test_bad_arguments_fail_at_mint_time():
    env = Environment(name="e")

    @env.template()
    async def t(x: int = 1):
        yield "p"
        yield 1.0

    with pytest.raises(TemplateError, match="unexpected keyword"):
        t(y=2)


def test_rows_round_trip_through_json_and_jsonl(tmp_path, fixtures):
    ts = Taskset.from_file(fixtures / "quickstart.py")
    for name in ("rows.json", "rows.jsonl"):
        ts.to_file(tmp_path / name)
        back = Taskset.from_file(tmp_path / name)
        assert [t.model_dump() for t in back] == [t.model_dump() for t in ts]


def test_hud_exported_rows_load_unchanged(tmp_path):
    row = {"env": "letter-count", "id": "count_letter", "args": {"word": "kiwi"},
           "slug": "custom-slug", "columns": {"difficulty": "easy"},
           "agent_config": {"max_steps": 5}, "validation": None, "runtime_config": None}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(row) + "\n")
    ts = Taskset.from_file(tmp_path / "tasks.jsonl")
    assert ts["custom-slug"].agent_config == {"max_steps": 5}


def test_filter_and_exclude(fixtures):
    ts = Taskset.from_file(fixtures / "quickstart.py")
    first = ts.tasks[0].slug
    assert [t.slug for t in ts.filter([first])] == [first]
    assert first not in [t.slug for t in ts.exclude([first])]
    assert len(ts.filter(["count_letter"])) == 3  # template id selects all its rows
    assert len(ts.filter([first, "nope"])) == 1  # as HUD: unknown slugs match nothing
    assert [t.slug for t in ts.select([first])] == [first]
    with pytest.raises(TasksetError, match="unknown task id"):
        ts.select(["nope"])


def test_hud_taskset_api(fixtures):
    ts = Taskset.from_module(fixtures / "quickstart.py")
    assert [slug for slug, _ in ts.items()] == [t.slug for t in ts]
    assert ts.environment_names() == {t.env for t in ts}
    assert ts.taskset_id is None
    tagged = Taskset("named", ts, taskset_id="ts-1")
    assert tagged.filter([ts.tasks[0].slug]).taskset_id == "ts-1"
    verified = Task(env="a", id="t", verifier=Task(env="b", id="check"))
    assert Taskset("v", [verified]).environment_names() == {"a", "b"}
    with pytest.raises(ValueError, match="nested verifier"):
        Task(env="a", id="t", verifier=verified)
    row = json.loads(verified.model_dump_json())
    assert Task.model_validate(row).verifier.id == "check"


HUD_ENV = """
from hud import Environment

env = Environment(name="{name}")


@env.template()
async def count(word: str, letter: str):
    answer = yield f"How many {{letter}} in {{word}}?"
    yield 1.0 if answer == str(word.count(letter)) else 0.0
"""

HUD_TASKS = """
from env import count

tasks = [count(word="strawberry", letter="r"), count(word="kiwi", letter="i")]
"""


@pytest.fixture
def hud_project(tmp_path, request):
    from hud_ray.compat import uninstall_hud_shim

    name = f"split-{request.node.name[-20:]}".replace("[", "-").replace("]", "")
    (tmp_path / "env.py").write_text(HUD_ENV.format(name=name))
    (tmp_path / "tasks.py").write_text(HUD_TASKS)
    yield tmp_path, name
    uninstall_hud_shim()


async def test_hud_guide_layout_env_py_and_tasks_py(hud_project):
    from hud_ray.sandbox import Sandbox, load_environments

    folder, name = hud_project
    ts = Taskset.from_file(folder / "tasks.py")
    assert len(ts) == 2 and set(ts.sources) == {name}
    envs = load_environments(ts.sources)  # what a sandbox does in its own process
    sb = Sandbox(envs)
    prompt = await sb.start(ts.tasks[0])
    assert (await sb.grade(prompt.session_id, "3")).reward == 1.0


def test_hud_shim_can_be_turned_off(hud_project, monkeypatch):
    from hud_ray.compat import uninstall_hud_shim

    uninstall_hud_shim()
    monkeypatch.setenv("HUD_RAY_HUD_SHIM", "0")
    folder, _ = hud_project
    with pytest.raises(TasksetError, match="No module named 'hud'") as info:
        Taskset.from_file(folder / "tasks.py")
    assert "\n" not in str(info.value)


def test_hud_shim_never_shadows_an_installed_hud(tmp_path, monkeypatch):
    import sys

    from hud_ray.compat import install_hud_shim, uninstall_hud_shim

    uninstall_hud_shim()
    real = tmp_path / "site" / "hud"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        assert install_hud_shim() is False
        import hud

        assert hud.REAL is True
    finally:
        sys.modules.pop("hud", None)
        uninstall_hud_shim()


def test_hud_shim_names_unsupported_api(hud_project):
    from hud_ray.compat import install_hud_shim

    assert install_hud_shim() is True
    with pytest.raises(ImportError, match=r"hud\.Job is HUD SDK API"):
        from hud import Job  # noqa: F401
    from hud.graders import LLMJudgeGrader

    from hud_ray.graders import LLMJudgeGrader as Ours

    assert LLMJudgeGrader is Ours


@pytest.mark.parametrize("name, message", [
    ("broken_syntax.py", r"broken_syntax.py:6: syntax error"),
    ("broken_import.py", r"broken_import.py:2: ModuleNotFoundError"),
    ("missing.py", "no such file"),
])
def test_broken_sources_give_one_line_errors(fixtures, name, message):
    with pytest.raises(TasksetError, match=message) as info:
        Taskset.from_file(fixtures / name)
    assert "\n" not in str(info.value)


def test_empty_source_has_no_tasks(fixtures):
    assert len(Taskset.from_file(fixtures / "empty.py")) == 0


def test_duplicate_slugs_in_a_taskset_are_rejected():
    a = Task(env="e", id="t", slug="s", args={"x": 1})
    b = Task(env="e", id="t", slug="s", args={"x": 2})
    with pytest.raises(TasksetError, match="duplicate slug"):
        Taskset("x", [a, b])


def test_hud_capability_factories():
    from hud_ray.capabilities.base import Capability

    ssh = Capability.ssh(url="h", host_pubkey="k", cwd="/w")
    assert (ssh.protocol, ssh.url, ssh.params["cwd"]) == ("ssh/2", "ssh://h:22", "/w")
    assert Capability.cdp(url="h").url == "ws://h:9222"
    assert Capability.rfb(url="h", display=2).url == "rfb://h:5902"
    mcp = Capability.mcp(url="https://tools.example/mcp")
    assert (mcp.url, mcp.params["transport"]) == ("https://tools.example:443/mcp",
                                                  "streamable-http")
    assert Capability.robot(url="h", contract={}).protocol == "openpi/0"
    with pytest.raises(ValueError, match="stdio"):
        Capability.mcp(url="stdio://x")
    with pytest.raises(ValueError, match="does not fit"):
        Capability.mcp(url="http://h", transport="websocket")


def test_tasks_of_an_installed_hud_are_refused_clearly(tmp_path, monkeypatch):
    import sys

    from hud_ray.compat import uninstall_hud_shim

    uninstall_hud_shim()
    site = tmp_path / "site" / "hud"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("class Task:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (tmp_path / "tasks.py").write_text("from hud import Task\ntasks = [Task(), Task()]\n")
    try:
        with pytest.raises(TasksetError, match="installed `hud` SDK"):
            Taskset.from_file(tmp_path / "tasks.py")
    finally:
        sys.modules.pop("hud", None)


def test_one_task_id_splitter():
    from hud_ray.task import split_task_ids

    assert split_task_ids(("a,b", " c ", ",,")) == ["a", "b", "c"]
    assert split_task_ids("a, b") == ["a", "b"]
    assert split_task_ids(()) is None and split_task_ids(None) is None
