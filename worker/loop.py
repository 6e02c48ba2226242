"""`run_worker(api_url, token)`: claim a job, run it with heartbeats, report; again.

While a job runs, a background thread heartbeats every few seconds with the latest progress; each
answer extends the lease, and the worker keeps its new expiry. The run stops (at its next
progress report) when the API says the job was cancelled (nothing is reported), when the lease
is lost (409: the job is abandoned) or the token refused, or on SIGTERM (the job is released,
then the worker exits).

Failures are sorted as `client.worker` sorts them. A transient one (a 502, 503 or 504, a
timeout, a refused connection) never stops anything: a claim is retried with exponential
back-off and jitter, up to `MAX_BACKOFF_S` between tries (an idle worker polls on through any
outage); a heartbeat is retried sooner than its interval; a final report (complete, fail,
release) until the lease, as the last heartbeat extended it, runs out, or until SIGTERM. Only
the API's own answers stop: 401/403 (and its 503 "worker endpoints are disabled") end the worker,
409 abandons the job. A result the API refuses as a request (413, 422) fails the job with the
reason instead of running it again.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from client.base import ApiError
from client.worker import ApiInputError, ApiUnavailableError, WorkerClient
from planner.document import Plan
from planner.validation import ValidationResult, ValidationSettings
from wire.jobs import JobState
from wire.worker import ClaimPublic
from worker.settings import get_worker_settings

log = logging.getLogger("worker")

HEARTBEAT_INTERVAL_S = 5.0  # at most; a third of the granted lease when that is shorter
HEARTBEAT_FLOOR_S = 0.2
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 60.0
# Errors a retry cannot fix: the job's own input (settings, plan, dataset path) is wrong.
NOT_RETRYABLE = (ValueError, TypeError, FileNotFoundError)

RELEASED = "released"  # handed back to the queue on SIGTERM: the job's state is queued again
Runner = Callable[[Plan, ValidationSettings, Callable[[float, str], None]], ValidationResult]


class JobInterruptedError(Exception):
    """Raised from the progress callback to stop a run: cancelled, lease lost or terminating."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def monotonic_deadline(expires_at: datetime) -> float:
    """The API's `expires_at` on this process's monotonic clock: the seconds left by the wall
    clock now, converted once (later jumps of the wall clock move nothing)."""
    return time.monotonic() + (expires_at - datetime.now(UTC)).total_seconds()


class RunningJob:
    """What the run thread and the heartbeat thread share about the job in hand."""

    def __init__(self, stop: threading.Event, lease_expires_at: datetime) -> None:
        self.lock = threading.Lock()
        self.progress, self.message = 0.0, "claimed"
        self.lease_deadline = monotonic_deadline(lease_expires_at)  # monotonic seconds
        self.cancelled, self.lease_lost = threading.Event(), threading.Event()
        self.done, self.stop = threading.Event(), stop

    def extend(self, lease_expires_at: datetime) -> None:
        """A heartbeat's answer: the lease now runs until `lease_expires_at`."""
        deadline = monotonic_deadline(lease_expires_at)
        with self.lock:
            self.lease_deadline = deadline

    def deadline(self) -> float:
        """When the current lease runs out, on the monotonic clock."""
        with self.lock:
            return self.lease_deadline

    def report(self, fraction: float, message: str) -> None:
        """The run's progress callback: remember the latest, and stop the run if asked."""
        with self.lock:
            self.progress, self.message = fraction, message
        for event, reason in (
            (self.cancelled, "cancelled"),
            (self.lease_lost, "lease lost"),
            (self.stop, "terminating"),
        ):
            if event.is_set():
                raise JobInterruptedError(reason)

    def latest(self) -> tuple[float, str]:
        with self.lock:
            return self.progress, self.message


def _heartbeat_loop(
    api_url: str, token: str, claim: ClaimPublic, state: RunningJob, interval_s: float
) -> None:
    """Heartbeat until the job is done, keeping each answer's lease expiry; flag cancellation,
    or a lost lease on any refusal of the lease or of the credentials (the run stops at its next
    progress report, and the job is not run twice). A transient failure keeps the run going
    and is retried with back-off, sooner than the interval, while the lease still holds."""
    failures, wait_s = 0, interval_s
    with WorkerClient(api_url, token) as client:
        while not state.done.wait(wait_s):
            progress, message = state.latest()
            try:
                beat = client.heartbeat(claim.job.id, claim.lease_id, progress, message)
            except ApiUnavailableError as exc:  # a 502/503/504, a timeout: not a refusal
                failures += 1
                wait_s = min(interval_s, _backoff_s(failures))
                log.warning("heartbeat failed (%s); retrying in %.1f s", exc, wait_s)
                continue
            except ApiError as exc:  # 401/403, 404/409, any other 4xx: the job is not ours
                log.warning("heartbeat refused, stopping the run: %s", exc)
                state.lease_lost.set()
                return
            failures, wait_s = 0, interval_s
            if beat.lease_expires_at is not None:
                state.extend(beat.lease_expires_at)
            if beat.cancelled:
                state.cancelled.set()
                return


def _backoff_s(failures: int) -> float:
    """Exponential back-off with jitter: 0.5, 1, 2, ... up to MAX_BACKOFF_S seconds."""
    return min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** max(failures - 1, 0)) * random.uniform(0.8, 1)


def _until_reachable(
    call: Callable[[], Any], stop: threading.Event, deadline: float | None = None
) -> Any:
    """`call()` retried with back-off while the API is unavailable (None if told to stop, or
    once the monotonic `deadline` has passed)."""
    failures = 0
    while True:
        try:
            return call()
        except ApiUnavailableError as exc:
            failures += 1
            wait_s = _backoff_s(failures)
            if deadline is not None:
                wait_s = min(wait_s, deadline - time.monotonic())
                if wait_s <= 0:
                    log.warning("API unavailable (%s); giving up: the lease has expired", exc)
                    return None
            log.warning("API unavailable (%s); retrying in %.1f s", exc, wait_s)
            if stop.wait(wait_s):
                return None


def _report(
    call: Callable[[], Any], stop: threading.Event, what: str, deadline: float
) -> ApiInputError | None:
    """Send a final report, retried while the API is unavailable until the monotonic
    `deadline` (the lease as the last heartbeat extended it) or until told to stop (then the API
    requeues the job once the lease runs out). A refusal of the lease or of the credentials
    means the job is no longer ours (logged); a refusal of the request itself (413, 422: it can
    never be stored) is returned."""
    try:
        _until_reachable(call, stop, deadline)
    except ApiInputError as exc:
        log.warning("%s refused as a request: %s", what, exc)
        return exc
    except ApiError as exc:
        log.warning("%s refused, the job is no longer ours: %s", what, exc)
    return None


def lease_seconds_left(claim: ClaimPublic) -> float:
    """Seconds until the claim's lease expires, by the API's clock as it answered."""
    return (claim.lease_expires_at - datetime.now(UTC)).total_seconds()


def heartbeat_interval(claim: ClaimPublic, ceiling_s: float) -> float:
    """A third of the lease the API granted (so two heartbeats may fail before it lapses), at
    most `ceiling_s`, at least HEARTBEAT_FLOOR_S."""
    return max(HEARTBEAT_FLOOR_S, min(ceiling_s, lease_seconds_left(claim) / 3))


def confined_dataset(
    settings: ValidationSettings, data_dir: str | Path | None
) -> ValidationSettings:
    """A job's dataset is whoever submitted it's choice, read from this machine's disk: only
    'stdlib' or a file name under the operator's LTD_WORKER_DATA_DIR, never a path (ValueError:
    the job fails, not retried)."""
    name = settings.dataset
    if name == "stdlib":
        return settings
    if data_dir is None:
        raise ValueError(
            f"dataset {name!r}: this worker reads only 'stdlib' (its operator set no "
            "LTD_WORKER_DATA_DIR)"
        )
    root = Path(data_dir).resolve()
    path = (root / name).resolve()
    if Path(name).name != name or path.parent != root or not path.is_file():
        raise ValueError(f"dataset {name!r}: not a file name under LTD_WORKER_DATA_DIR")
    return settings.model_copy(update={"dataset": str(path)})


def run_job(
    client: WorkerClient,
    claim: ClaimPublic,
    run: Runner,
    *,
    api_url: str,
    token: str,
    stop: threading.Event,
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    data_dir: str | Path | None = None,
) -> str:
    """Run one claimed job to its end; returns what became of it: the JobState it ends in
    (succeeded, failed, cancelled), or "lease lost" or "released" (back in the queue)."""
    state = RunningJob(stop, claim.lease_expires_at)
    interval_s = heartbeat_interval(claim, heartbeat_interval_s)
    beat = threading.Thread(
        target=_heartbeat_loop,
        name=f"heartbeat-{claim.job.id}",
        args=(api_url, token, claim, state, interval_s),
        daemon=True,
    )
    beat.start()
    outcome: str = JobState.SUCCEEDED
    result: ValidationResult | None = None
    error: BaseException | None = None
    try:
        settings = confined_dataset(claim.job.settings, data_dir)
        result = run(claim.plan, settings, state.report)
    except JobInterruptedError as exc:
        outcome = {"terminating": RELEASED}.get(exc.reason, exc.reason)
    except Exception as exc:  # any failure of the run is the job's failure, reported
        outcome, error = JobState.FAILED, exc
    finally:
        state.done.set()
        beat.join()
    if outcome == JobState.SUCCEEDED and state.cancelled.is_set():
        outcome = JobState.CANCELLED  # cancelled after the last progress report: report nothing
    if outcome in (JobState.SUCCEEDED, JobState.FAILED) and state.lease_lost.is_set():
        outcome, result, error = "lease lost", None, None  # lost after the last report: the
        # API would refuse this lease's report, and another worker may hold the job now
    # Final reports are retried until the current lease (as the last heartbeat extended it)
    # runs out, or SIGTERM.
    deadline = state.deadline()
    job_id, lease_id = claim.job.id, claim.lease_id
    if result is not None and outcome == JobState.SUCCEEDED:
        done = result
        refused = _report(
            lambda: client.complete(job_id, lease_id, done), stop, "complete", deadline
        )
        if refused is not None:  # 413, 422: this result will never be stored; do not rerun
            outcome = JobState.FAILED
            reason = f"the API refused the result: {refused}"
            report = partial(client.fail, job_id, lease_id, reason, retryable=False)
            _report(report, stop, "fail", deadline)
    elif error is not None:
        text = "".join(traceback.format_exception(error))  # FailRequest keeps it to its limit
        retryable = not isinstance(error, NOT_RETRYABLE)
        report = partial(client.fail, job_id, lease_id, text, retryable=retryable)
        _report(report, stop, "fail", deadline)
    elif outcome == RELEASED:
        _report(lambda: client.release(job_id, lease_id), threading.Event(), "release", deadline)
    log.info("job %s: %s", job_id, outcome)
    return outcome


@contextmanager
def _sigterm_sets(stop: threading.Event):
    """While inside, SIGTERM (and SIGINT) set `stop` instead of killing the process (main
    thread only; elsewhere signals are left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def run_worker(
    api_url: str,
    token: str,
    *,
    worker_id: str | None = None,
    once: bool = False,
    poll_interval_s: float = 2.0,
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    run: Runner | None = None,
    stop: threading.Event | None = None,
    data_dir: str | Path | None = None,
) -> None:
    """Claim, run and report jobs until SIGTERM/SIGINT (or `stop` is set); with `once`, handle
    at most one job (none if the queue is empty) and return. `run` defaults to
    `worker.validate.run_validation`; `data_dir` to the worker settings' (LTD_WORKER_DATA_DIR)."""
    if run is None:
        from worker.validate import run_validation  # torch loads only when needed

        run = partial(run_validation, profile_cache=get_worker_settings().profile_cache_dir)
    stop = stop or threading.Event()
    worker_id = worker_id or default_worker_id()
    if data_dir is None:
        data_dir = get_worker_settings().worker_data_dir
    with _sigterm_sets(stop), WorkerClient(api_url, token) as client:
        log.info("worker %s polling %s", worker_id, api_url)
        while not stop.is_set():
            claim = _until_reachable(lambda: client.claim(worker_id), stop)
            if claim is not None:
                log.info("job %s claimed", claim.job.id)
                run_job(
                    client,
                    claim,
                    run,
                    api_url=api_url,
                    token=token,
                    stop=stop,
                    heartbeat_interval_s=heartbeat_interval_s,
                    data_dir=data_dir,
                )
            if once or stop.is_set():
                return
            if claim is None:
                stop.wait(poll_interval_s)
