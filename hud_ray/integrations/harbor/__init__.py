"""Harbor task folders run as-is: ``load(path) -> Taskset``, graded as Harbor grades.

    from hud_ray.integrations import harbor
    taskset = harbor.load("tasksets/harbor")     # a task folder or a folder of them

``hud-ray eval path/to/harbor/tasks AGENT`` accepts the same paths. See docs/HARBOR.md.
"""

from hud_ray.integrations.harbor.config import TaskConfig, parse_task_toml, resolve_env
from hud_ray.integrations.harbor.dockerfile import DockerPlan, plan_dockerfile
from hud_ray.integrations.harbor.export import export
from hud_ray.integrations.harbor.loader import (
    HarborTask,
    is_harbor_path,
    load,
    module_for,
    read_task,
    strip_canary,
)
from hud_ray.integrations.harbor.verifier import parse_rewards

__all__ = ["DockerPlan", "HarborTask", "TaskConfig", "export", "is_harbor_path", "load",
           "module_for",
           "parse_rewards", "parse_task_toml", "plan_dockerfile", "read_task", "resolve_env",
           "strip_canary"]
