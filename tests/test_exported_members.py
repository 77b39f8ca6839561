import hud_ray


def test_public_api_is_pinned():
    assert sorted(hud_ray.__all__) == sorted([
        "SCHEMA", "SCHEMA_VERSION", "Capability", "Environment", "EvalConfig", "EvalResult",
        "EvaluationResult", "HudRayError", "RolloutRecord", "SubScore", "Task", "Taskset",
        "Template", "__version__", "current_session", "read_rollouts", "run_eval",
        "run_eval_async",
    ])
    for name in hud_ray.__all__:
        assert hasattr(hud_ray, name)
