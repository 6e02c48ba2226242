"""The typed clients against the real API over loopback HTTP (`ltd serve`, a SQLite file): every
request they build is one the API accepts as it documents, and every answer reads back into the
wire models, with no dict in between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from client.base import ApiAuthError, ApiRefusedError  # noqa: E402
from client.server import ServerClient  # noqa: E402
from client.worker import WorkerClient  # noqa: E402
from planner import CheckLimits, PlanRequest  # noqa: E402
from planner.validation import ValidationResult, ValidationSettings  # noqa: E402
from tests.factories import tiny_plan_request, validation_result  # noqa: E402
from tests.servers import ltd_serve  # noqa: E402
from wire.jobs import JobCreate, JobState  # noqa: E402
from wire.limits import ERROR_CHARS  # noqa: E402
from wire.plans import CheckCreate  # noqa: E402

API_KEY, TOKEN = "client-test-key", "client-test-token"
TINY = PlanRequest.model_validate(tiny_plan_request(train_steps=100))


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `ltd serve` for the module's tests (each works on jobs of its own)."""
    cwd = tmp_path_factory.mktemp("clients")
    with ltd_serve(cwd, worker_token=TOKEN, env={"LTD_API_KEYS": API_KEY}) as server:
        yield server.url


def test_the_server_client_plans_checks_and_runs_jobs_in_wire_models(api_url: str) -> None:
    with ServerClient(api_url, API_KEY) as server:
        plan = server.create_plan(TINY)
        assert server.get_plan(plan.id) == plan
        check = server.check(
            CheckCreate(
                request=TINY,
                limits=CheckLimits(max_gpu_hours=plan.random_ltd.gpu_hours / 2),
                compare_plan_id=plan.id,
            )
        )
        assert not check.passed and check.violations[0].limit == "max_gpu_hours"
        assert check.plan.id == plan.id
        job = server.submit_job(JobCreate(plan_id=plan.id, settings=ValidationSettings(seed=7)))
        assert job.state == JobState.QUEUED and job.settings.seed == 7
        queued = server.list_jobs(state=JobState.QUEUED)
        assert [j.id for j in queued.data] == [job.id] and queued.count == 1
        cancelled = server.cancel_job(job.id)
        assert cancelled.state == JobState.CANCELLED == server.get_job(job.id).state
        assert server.list_jobs(state=JobState.QUEUED).count == 0


def test_the_server_client_sends_its_api_key(api_url: str) -> None:
    with ServerClient(api_url) as server, pytest.raises(ApiAuthError):
        server.create_plan(TINY)
    with ServerClient(api_url, API_KEY) as server, pytest.raises(ApiRefusedError):
        server.get_job("j_unknown")


def test_the_worker_client_speaks_the_protocol_in_wire_models(api_url: str) -> None:
    with ServerClient(api_url, API_KEY) as server, WorkerClient(api_url, TOKEN) as worker:
        first = server.submit_job(JobCreate(plan_request=TINY))
        second = server.submit_job(JobCreate(plan_request=TINY))
        claim = worker.claim("w-1")
        assert claim is not None and claim.job.id == first.id and claim.plan.id == first.plan_id
        assert claim.lease_expires_at > datetime.now(UTC)  # a datetime, read by the model
        beat = worker.heartbeat(claim.job.id, claim.lease_id, 1.5, "m" * 5000)  # clamped, kept
        assert not beat.cancelled and beat.lease_expires_at is not None
        assert server.get_job(first.id).progress == 1.0
        # A CPU measurement has no GPU name, MFU or peak memory: explicit nulls the API needs.
        result = ValidationResult.model_validate(
            validation_result(
                micro_batch_size=1, seq_len=64, scaled_down=[], step_times=[],
                step_time_fit=[1.0, 0.0, 0.0], measured_wall_clock_saving=0.1,
                flops_saving=0.2, seconds=1.0,
            )
        )  # fmt: skip
        done = worker.complete(claim.job.id, claim.lease_id, result)
        assert done.state == JobState.SUCCEEDED and done.result == result
        claim = worker.claim("w-1")
        assert claim is not None and claim.job.id == second.id
        failed = worker.fail(claim.job.id, claim.lease_id, "e" * 30_000, retryable=False)
        assert failed.state == JobState.FAILED and len(failed.error or "") == ERROR_CHARS
        assert worker.claim("w-1") is None  # 204: nothing queued
