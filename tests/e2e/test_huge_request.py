"""A 260-byte plan request that once took a core for 49 s and returned a 188 MB plan (issue 19:
10 million reserved lengths) is refused at once over a real `ltd serve`, naming the field and
the cap, and eight of them arriving together, again and again, do not stall `/healthz`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.factories import huge_plan_request
from tests.servers import LtdServer

pytestmark = pytest.mark.slow

BURSTS = 10  # of 8 requests each, while /healthz is polled throughout


def test_eight_huge_requests_together_are_422_at_once_and_healthz_stays_fast(
    live_server: Callable[..., LtdServer],
) -> None:
    server = live_server()
    health: list[tuple[int, float]] = []
    done = threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as h:
            while not done.is_set():
                start = time.perf_counter()
                status = h.get("/healthz").status_code
                health.append((status, time.perf_counter() - start))

    with httpx.Client(base_url=server.url, timeout=30) as http:

        def post(_: int) -> tuple[httpx.Response, float]:
            start = time.perf_counter()
            response = http.post("/v1/plans", json=huge_plan_request())
            return response, time.perf_counter() - start

        assert http.get("/healthz").status_code == 200  # warm: the first ping opens its connection
        poller = threading.Thread(target=poll_health)
        poller.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = [a for _ in range(BURSTS) for a in pool.map(post, range(8))]
        finally:
            done.set()
            poller.join()
        assert len(answers) == 8 * BURSTS
        for response, seconds in answers:
            assert response.status_code == 422, response.text
            (error,) = response.json()["detail"]
            assert error["loc"] == ["body", "random_ltd", "seq_per_step"], error
            assert "over the cap of 10,000" in error["msg"], error
            assert seconds < 1.0, seconds
        assert len(health) >= 5 and {status for status, _ in health} == {200}, health
        assert max(seconds for _, seconds in health) < 0.05, sorted(s for _, s in health)[-5:]
        assert http.get("/v1/plans").json()["count"] == 0  # nothing stored
