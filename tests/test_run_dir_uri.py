"""Run directories at URIs: ``file://`` and a real S3-protocol server (moto, in server mode
on 127.0.0.1, spoken to by pyarrow's own S3 client). Eval writes there, ``read_rollouts``
and the data readers read it back from the same URI, an interrupted run resumes there,
and bad URIs, dead endpoints and wrong credentials are one line and exit 3, quickly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from _waits import wait_for

from hud_ray import read_rollouts
from hud_ray.data import follow, groups, read, run_dirs
from hud_ray.engine import run_eval_async
from hud_ray.errors import ConfigError, RecordError
from hud_ray.records import RolloutRecord
from hud_ray.sink import ArrowSink, read_manifest, read_summary

BIN = Path(sys.executable).parent / "hud-ray"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_EC2_METADATA_DISABLED": "true"}
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **CREDS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """A moto S3 server process on 127.0.0.1 with one bucket."""

    def __init__(self, *, auth: bool = False) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # the server's request log (never a full pipe)
        env = {**ENV, "INITIAL_NO_AUTH_ACTION_COUNT": "0"} if auth else ENV
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)

        def up() -> bool:
            if self.proc.poll() is not None:  # e.g. moto missing: say so, do not wait
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")
                raise AssertionError(f"the S3 server exited ({self.proc.returncode}): "
                                     f"{err.strip().splitlines()[-1:]} (moto comes with "
                                     "the dev extra: pip install -e '.[dev]')")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 60, "the S3 server")
        self.endpoint = f"127.0.0.1:{self.port}"
        self.fs = pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http",
                                    access_key="testing", secret_key="testing",
                                    allow_bucket_creation=True)
        if not auth:
            self.fs.create_dir("bucket")

    def uri(self, prefix: str) -> str:
        return f"s3://bucket/{prefix}?endpoint_override={self.endpoint}&scheme=http"

    def keys(self, prefix: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(f"bucket/{prefix}",
                                                        allow_not_found=True, recursive=True))
        return sorted(i.path.removeprefix(f"bucket/{prefix}/") for i in infos
                      if i.type == pafs.FileType.File)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def s3():
    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)  # pyarrow's S3 client takes credentials from the environment
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hud_ray(*args: str, cwd: Path, timeout: float = 240,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env or ENV)


def finals(rows: list[dict]) -> Counter:
    return Counter(r["rollout_key"] for r in rows if r["final"])


def one_line_error(proc: subprocess.CompletedProcess, code: int = 3) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def record(i: int) -> RolloutRecord:
    return RolloutRecord(run_id="r", trace_id=f"t{i}", rollout_key=f"s#{i}", slug="s", env="e",
                         template_id="t", args="{}", group_id=f"g{i}", sample_index=0,
                         attempt=0, final=True, agent="oracle", status="ok", reward=1.0,
                         reward_valid=True)


# ---- the sink alone --------------------------------------------------------------------
def test_sink_writes_whole_objects_and_resumes_numbering(s3):
    uri = s3.uri("sink")
    sink = ArrowSink(uri, flush_rows=2, flush_seconds=999)
    sink.open({"run_id": "r"})
    for batch in ([0, 1], [2, 3], [4]):
        sink.write([record(i) for i in batch])
    assert s3.keys("sink") == ["_manifest.json", "rollouts-000000.arrow",
                               "rollouts-000001.arrow"]  # no temp names, no dir markers
    assert read_rollouts(uri).num_rows == 4  # readable mid-run, from the URI
    sink.close({"rollouts": 5})
    assert read_rollouts(uri).num_rows == 5 and read_summary(uri)["rollouts"] == 5
    assert read_manifest(uri)["run_id"] == "r"
    again = ArrowSink(uri, flush_rows=1)  # a resumed run appends after the last part
    again.write([record(9)])
    assert s3.keys("sink")[-1] == "rollouts-000003.arrow" and read_rollouts(uri).num_rows == 6


def test_sink_write_failure_keeps_rows_and_leaves_no_part(s3):
    uri = s3.uri("nobucket").replace("s3://bucket/", "s3://no-such-bucket/")
    sink = ArrowSink(uri, flush_rows=100)
    sink.add([record(0).to_row()])
    with pytest.raises(RecordError) as info:
        sink.flush()
    assert info.value.code == "sink_write_failed" and "\n" not in str(info.value)
    assert sink.pending == 1 and sink.rows_written == 0


def test_follow_a_live_run_on_s3(s3):
    uri = s3.uri("live")
    seen: list[str] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            seen.extend(g.group_id for g in follow(uri, poll=0.05, idle_timeout=60))
        except BaseException as exc:
            errors.append(exc)

    follower = threading.Thread(target=consume, daemon=True)
    follower.start()  # before anything exists at the URI
    time.sleep(0.3)
    sink = ArrowSink(uri, flush_rows=1)
    sink.open({"run_id": "r", "config": {"group_size": 2}})

    def member(g: int, i: int) -> RolloutRecord:
        return RolloutRecord(run_id="r", trace_id=f"t{g}.{i}", rollout_key=f"s{g}#{i}",
                             slug=f"s{g}", env="e", template_id="t", args="{}",
                             group_id=f"g{g}", sample_index=i, attempt=0, final=True,
                             agent="oracle", status="ok", reward=float(i),
                             reward_valid=True, group_size=2)
    for g in range(3):  # each group split over two parts, a little apart
        for i in range(2):
            sink.write([member(g, i)])
            time.sleep(0.1)
    wait_for(lambda: len(seen) == 3, 60, "every group followed")
    sink.close({"rollouts": 6})
    follower.join(60)
    assert not follower.is_alive() and not errors, errors
    assert seen == ["g0", "g1", "g2"]


# ---- file:// ---------------------------------------------------------------------------
@pytest.mark.ray
async def test_file_uri_eval_read_back_and_resume(ray_session, tmp_path, root):
    run = tmp_path / "run dir"  # a space: the URI is %-quoted
    uri = "file://" + str(run).replace(" ", "%20")
    result = await run_eval_async(str(root / "tasksets/letters.py"), "oracle", out=uri,
                                  group_size=2, workers=1)
    assert result.out_dir == run and run.is_dir()  # a local run: a Path, as before
    rows = read_rollouts(uri).to_pylist()
    assert rows == read_rollouts(run).to_pylist()
    keys = finals(rows)
    assert keys and set(keys.values()) == {1} and len(keys) == result.summary["rollouts"]
    with pytest.raises(RecordError, match="not empty"):
        await run_eval_async(str(root / "tasksets/letters.py"), "oracle", out=uri)
    with pytest.raises(ConfigError, match="differs from --resume"):
        await run_eval_async(resume=uri, out=str(tmp_path / "elsewhere"))
    again = await run_eval_async(resume=uri, out=str(run))  # the same place, spelled apart
    assert again.summary["rollouts"] == len(keys) and again.out_dir == run
    assert read_rollouts(uri).num_rows == len(rows)  # nothing left to run: no new rows


# ---- S3 ----------------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_s3_eval_interrupt_resume_and_read_back(s3, tmp_path, fixtures):
    uri = s3.uri("runs/naps")
    proc = subprocess.Popen([str(BIN), "eval", str(fixtures / "naps.py"), "oracle", "-g", "2",
                             "--out", uri, "--workers", "1", "--max-concurrent", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=ENV)
    try:
        wait_for(lambda: any(k.startswith("rollouts-") for k in s3.keys("runs/naps")), 180,
                 "a first part object")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode not in (0, None) and "Traceback" not in stderr, stderr
    assert "SIGTERM" in stderr and f"--resume {uri}" in stderr
    assert not (tmp_path / "s3:").exists() and not list(tmp_path.iterdir())  # nothing local
    rows = read_rollouts(uri).to_pylist()
    assert set(finals(rows).values()) == {1} and len(finals(rows)) < 160
    assert "_summary.json" not in s3.keys("runs/naps")
    # The same URI again without --resume is refused; --resume URI finishes the run.
    refused = hud_ray("eval", str(fixtures / "naps.py"), "oracle", "--out", uri, cwd=tmp_path)
    assert "not empty" in one_line_error(refused)
    done = hud_ray("eval", "--resume", uri, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rollouts"] == 160 and summary["out_dir"] == uri
    rows = read_rollouts(uri).to_pylist()
    assert len(finals(rows)) == 160 and set(finals(rows).values()) == {1}
    assert all(r["status"] == "ok" for r in rows if r["final"])
    assert not [k for k in s3.keys("runs/naps") if k.startswith(".")]  # no probes, no temps
    # The data readers take the same URI: one run, or the folder above it (a sweep).
    assert run_dirs(s3.uri("runs")) == [uri]
    assert read(uri).num_rows == 160
    found = list(groups(s3.uri("runs")))
    assert len(found) == 80 and all(g.run_dir == uri and g.size == 2 for g in found)
    followed = list(follow(uri, idle_timeout=30))  # a finished run: every group, then stop
    assert sorted(g.group_id for g in followed) == sorted(g.group_id for g in found)
    exported = hud_ray("export", uri, "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"),
                       cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rows"] == 160


@pytest.mark.ray
def test_s3_failed_start_leaves_nothing_behind(s3, tmp_path, root):
    # The agent cannot be built inside the harness actors (no endpoint): the run fails
    # after its manifest was written; the same --out URI must work right after.
    env = {k: v for k, v in ENV.items() if not k.endswith("_API_KEY") and "GATEWAY" not in k
           and k not in ("HUD_RAY_BASE_URL", "OPENAI_BASE_URL")}
    uri = s3.uri("failed")
    proc = hud_ray("eval", str(root / "tasksets/letters.py"), "openai_compatible", "--model",
                   "m", "--out", uri, cwd=tmp_path, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert s3.keys("failed") == []
    ok = hud_ray("eval", str(root / "tasksets/letters.py"), "oracle", "-t",
                 "count_letter-8dec4244", "--out", uri, "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(read_rollouts(uri)) == 1


# ---- bad locations: one line, exit 3, quickly ---------------------------------------------
@pytest.mark.parametrize("uri, says", [
    ("foo://bucket/run", "Unrecognized filesystem type"),
    ("s3://bucket/run?no_such_option=1", "Unexpected query parameter"),
    ("file://otherhost/run", "not a usable file:// URI"),
])
def test_bad_uri_is_one_line(tmp_path, root, uri, says):
    t0 = time.monotonic()
    line = one_line_error(hud_ray("eval", str(root / "tasksets/letters.py"), "oracle",
                                  "--out", uri, cwd=tmp_path))
    assert says in line and uri.split("?")[0] in line
    line = one_line_error(hud_ray("eval", "--resume", uri, cwd=tmp_path))
    assert says in line
    assert time.monotonic() - t0 < 60
    with pytest.raises(RecordError, match=says):
        read_rollouts(uri)
    assert not list(tmp_path.iterdir())


def test_unreachable_endpoint_is_one_line_and_quick(tmp_path, root):
    uri = f"s3://bucket/run?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    for args in (["eval", str(root / "tasksets/letters.py"), "oracle", "--out", uri],
                 ["eval", "--resume", uri], ["export", uri, "--format", "jsonl", "--out",
                                             str(tmp_path / "x.jsonl")]):
        t0 = time.monotonic()
        line = one_line_error(hud_ray(*args, cwd=tmp_path))
        assert "NETWORK_CONNECTION" in line and "s3://bucket/run" in line, line
        assert time.monotonic() - t0 < 45, args  # bounded retries, no hang
    t0 = time.monotonic()
    with pytest.raises(RecordError, match="NETWORK_CONNECTION"):
        read_rollouts(uri)
    assert time.monotonic() - t0 < 30


def test_wrong_or_missing_credentials_are_one_line(tmp_path, root):
    server = S3Server(auth=True)  # checks the keys it is sent against its (empty) IAM
    try:
        uri = server.uri("run")
        no_keys = {k: v for k, v in ENV.items() if not k.startswith("AWS_")}
        no_keys.update(AWS_EC2_METADATA_DISABLED="true", HOME=str(tmp_path))
        wrong = {**ENV, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1"}
        for env in (wrong, no_keys):
            line = one_line_error(hud_ray("eval", str(root / "tasksets/letters.py"), "oracle",
                                          "--out", uri, cwd=tmp_path, env=env))
            assert "check the credentials" in line and "AWS_ACCESS_KEY_ID" in line, line
        # (moto answers a HEAD with wrong keys 500, not 403: only the shape is checked)
        line = one_line_error(hud_ray("eval", "--resume", uri, cwd=tmp_path, env=wrong))
        assert "s3://bucket/run" in line, line
    finally:
        server.stop()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_s3_sweep_runs_skips_and_reads_back(s3, tmp_path, root):
    import yaml

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "agents": ["oracle"], "group_sizes": [2], "seeds": [0, 1],
        "tasksets": [{"source": str(root / "tasksets" / "letters.py"),
                      "task_ids": ["count_letter-f25c58bc", "count_letter-3379c8f3"]}],
        "eval": {"workers": 1}}))
    uri = s3.uri("sweeps/one")
    first = hud_ray("sweep", str(sweep_file), "--out", uri, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert [r["rollouts"] for r in rows] == [4, 4]
    keys = s3.keys("sweeps/one")
    assert {"sweep.json", "_summary.json", "summary.csv", "reward.svg"} <= set(keys)
    assert json.loads(s3.fs.open_input_stream("bucket/sweeps/one/_summary.json").read()) == rows
    again = hud_ray("sweep", str(sweep_file), "--out", uri, "--json", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr.count("done, skipped") == 2, again.stderr
    assert not list(tmp_path.glob("s3*"))  # nothing written locally
    # the sweep folder URI reads as its runs
    assert len(run_dirs(uri)) == 2 and read(uri).num_rows == 8


def test_keys_in_a_uri_are_never_printed_or_stored():
    from hud_ray.rundir import RunDir

    run = RunDir.resolve("s3://AKID:s3cret@bucket/run?endpoint_override=127.0.0.1:1"
                         "&scheme=http")
    assert "s3cret" not in str(run) and "s3cret" not in run.where("x")
    assert str(run) == "s3://bucket/run?endpoint_override=127.0.0.1:1&scheme=http"
    assert "s3cret" in run.location  # still usable to read back in-process
    child = run.child("cell")
    assert child.path == "bucket/run/cell" and "s3cret" not in str(child)
