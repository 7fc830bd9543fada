"""Subprocesses of ``distribution_worker.py`` for the distribution tests.

``start_workers`` starts the worker groups a test session needs: "mirrored" (one process
with 2 logical CPUs) and "multiworker" (two processes joined by ``TF_CONFIG`` on
127.0.0.1, ports picked free at run time). ``conftest.py`` starts them when the session's
first test starts, so they run while the in-process tests do; ``test_distribution.py``
awaits their results. Output goes to files, so no pipe can fill up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distribution_worker.py")
WORKER_TIMEOUT = 600  # seconds, for each group of subprocesses (2 busy cores)
RESULT_PREFIX = "RESULT "


class WorkerGroup:
    """Subprocesses of ``distribution_worker.py`` started now, awaited by ``results()``.

    Output goes to files (no pipe can fill up). ``results()`` waits until every process
    has exited or ``WORKER_TIMEOUT`` has passed since the start; on a timeout, or as
    soon as one process fails, it kills the others and fails the test with their stderr.
    """

    def __init__(self, mode: str, envs: list[dict], directory: Path):
        self.mode = mode
        self.started = time.monotonic()
        self.processes = []
        self.outputs = []
        self._results = None
        for index, env in enumerate(envs):
            out = directory / f"{mode}{index}.out"
            err = directory / f"{mode}{index}.err"
            with open(out, "w") as stdout, open(err, "w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, str(WORKER), mode],
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=WORKER.parent.parent,
                )
            self.processes.append(process)
            self.outputs.append((out, err))

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def _stderr_tail(self) -> str:
        return "\n".join(f"--- {err.name}:\n{err.read_text()[-3000:]}" for _, err in self.outputs)

    def results(self) -> list[dict]:
        if self._results is not None:
            return self._results
        while any(p.poll() is None for p in self.processes):
            failed = [p for p in self.processes if p.poll() not in (None, 0)]
            overdue = time.monotonic() - self.started > WORKER_TIMEOUT
            if failed or overdue:
                self.kill()
                why = "timed out" if overdue else "failed"
                pytest.fail(f"{self.mode} worker {why}:\n{self._stderr_tail()}")
            time.sleep(0.2)
        if any(p.returncode != 0 for p in self.processes):
            pytest.fail(f"{self.mode} worker failed:\n{self._stderr_tail()}")
        results = []
        for out, _ in self.outputs:
            lines = [line for line in out.read_text().splitlines() if line.startswith("RESULT ")]
            assert lines, f"no result from {out.name}:\n{self._stderr_tail()}"
            results.append(json.loads(lines[-1][len(RESULT_PREFIX) :]))
        self._results = results
        return results


def free_local_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while picking, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **extra})
    return env


def start_workers(modes: set[str], directory: Path) -> dict[str, WorkerGroup]:
    """The worker groups for ``modes`` ("mirrored", "multiworker"), started now. The
    multiworker tests compare with the mirrored worker's single-device runs, so they
    start it too."""
    groups: dict[str, WorkerGroup] = {}
    if modes & {"mirrored", "multiworker"}:
        groups["mirrored"] = WorkerGroup("mirrored", [worker_env()], directory)
    if "multiworker" in modes:
        ports = free_local_ports(2)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        envs = [
            worker_env(
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            )
            for i in range(2)
        ]
        groups["multiworker"] = WorkerGroup("multiworker", envs, directory)
    return groups


# The `mirrored` subprocess of a published-spec group's support module --------------------


def mirrored_main(argv: list[str], results) -> int:
    """A support module's ``python tests/support/<module>.py mirrored``: 2 logical CPUs
    (before TensorFlow starts), then ``results()`` printed as one ``RESULT`` JSON line."""
    from tests.support.distribution_worker import configure_logical_cpus

    if argv[1:] != ["mirrored"]:
        raise SystemExit(f"usage: {Path(argv[0]).name} mirrored")
    configure_logical_cpus(2)
    sys.stdout.write(RESULT_PREFIX + json.dumps(results()) + "\n")
    return 0


def mirrored_subprocess_results(module: str) -> dict:
    """The results of ``tests/support/<module>.py mirrored``, run in a subprocess."""
    script = Path(__file__).with_name(f"{module}.py")
    done = subprocess.run(
        [sys.executable, str(script), "mirrored"],
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        cwd=script.parent.parent,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def case_run(results: dict, case: str):
    """One case of a subprocess's results as a ``Run`` (a case that raised fails the
    test with its traceback)."""
    from tests.support.fit import Run

    data = results[case]
    if "error" in data:
        pytest.fail(f"{case}: {data['error']}: {data['message']}\n{data['traceback']}")
    return Run.from_json(data)
