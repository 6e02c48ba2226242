"""`/v1/device-profiles`: store, list and read measured profiles; plans that name one by id;
a job in mode "profile" that stores its own. On a real SQLite file and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from planner.device import DeviceProfile, builtin_profile


def measured(device_name: str = "cpu", launch_us: float = 5.0) -> dict[str, Any]:
    """A profile as `ltd profile` writes one (the numbers of a small CPU)."""
    return {
        "device_name": device_name, "dtype": "float32", "torch_version": "2.13.0",
        "source": "measured by ltd profile on cpu in 7 s",
        "matmul_rows": [16, 4096], "matmul_widths": [64, 2048],
        "matmul_tflops": [[0.03, 0.06], [0.2, 0.22]],
        "attention_lengths": [32, 2048], "attention_tflops": [0.05, 0.25],
        "memory_gbps": 45.0, "loss_gbps": 9.0, "launch_overhead_us": launch_us,
        "async_launch": False, "optimizer_ns_per_param": 1.3, "optimizer_us_per_tensor": 4.0,
    }  # fmt: skip


def test_store_list_and_read_immutable_by_content(client):
    created = client.post("/v1/device-profiles", json=measured())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("dp_") and created.headers["location"].endswith(body["id"])
    assert body["profile"]["launch_overhead_us"] == 5.0
    assert body["id"] == DeviceProfile.model_validate(measured()).id  # a hash of the content
    # The same profile again: the same id, stored once.
    same = client.post("/v1/device-profiles", json=measured())
    assert same.status_code == 201 and same.json() == body
    # A new measurement of the same device, dtype and torch: a new id; the old id's numbers
    # stay as they were.
    again = client.post("/v1/device-profiles", json=measured(launch_us=6.0)).json()
    assert again["id"] != body["id"] and again["profile"]["launch_overhead_us"] == 6.0
    assert client.get(f"/v1/device-profiles/{body['id']}").json() == body
    listed = client.get("/v1/device-profiles").json()
    assert listed["count"] == 2 and [p["id"] for p in listed["data"]] == [again["id"], body["id"]]
    other = client.post("/v1/device-profiles", json=measured(device_name="another cpu")).json()
    assert other["id"] not in (body["id"], again["id"])
    assert client.get("/v1/device-profiles").json()["count"] == 3
    assert client.get("/v1/device-profiles/dp_nothing").status_code == 404


def test_the_latest_profile_of_a_device(client):
    first = client.post("/v1/device-profiles", json=measured()).json()
    other = client.post("/v1/device-profiles", json=measured(device_name="another cpu")).json()
    latest = client.post("/v1/device-profiles", json=measured(launch_us=7.0)).json()
    found = client.get("/v1/device-profiles", params={"device": "cpu", "dtype": "float32"})
    assert found.status_code == 200, found.text
    assert [p["id"] for p in found.json()["data"]] == [latest["id"], first["id"]]
    assert found.json()["count"] == 2
    one = client.get("/v1/device-profiles", params={"device": "cpu", "limit": 1}).json()
    assert [p["id"] for p in one["data"]] == [latest["id"]] and one["count"] == 2
    theirs = client.get("/v1/device-profiles", params={"device": "another cpu"}).json()
    assert [p["id"] for p in theirs["data"]] == [other["id"]]
    none = client.get("/v1/device-profiles", params={"device": "cpu", "dtype": "bfloat16"})
    assert none.json() == {"data": [], "count": 0}


def test_a_plan_naming_a_profile_keeps_its_numbers(client, plan_request):
    """A plan that names a profile by id does not change when the device is measured again."""
    profile_id = client.post("/v1/device-profiles", json=measured()).json()["id"]
    request = plan_request(hardware={"num_gpus": 1, "device_profile": profile_id})
    before = client.post("/v1/plans", json=request).json()
    client.post("/v1/device-profiles", json=measured(launch_us=50.0))  # a slower measurement
    after = client.post("/v1/plans", json=request).json()
    assert after == before
    assert after["projection"]["device_profile_id"] == profile_id


def test_a_bad_profile_is_422_naming_the_field(client):
    bad = {**measured(), "matmul_rows": [4096, 16]}
    response = client.post("/v1/device-profiles", json=bad)
    assert response.status_code == 422
    assert "matmul_rows" in str(response.json()["detail"])
    assert client.get("/v1/device-profiles").json()["count"] == 0  # nothing stored


def test_a_plan_names_a_stored_profile_by_id(client, plan_request):
    profile_id = client.post("/v1/device-profiles", json=measured()).json()["id"]
    request = plan_request(hardware={"num_gpus": 1, "device_profile": profile_id})
    by_id = client.post("/v1/plans", json=request)
    assert by_id.status_code == 201, by_id.text
    inline = client.post(
        "/v1/plans", json=plan_request(hardware={"num_gpus": 1, "device_profile": measured()})
    ).json()
    # The id resolves to the very profile: the same plan as giving the profile inline.
    assert by_id.json()["id"] == inline["id"]
    assert by_id.json()["projection"]["device_profile_id"] == profile_id
    built_in = client.post("/v1/plans", json=plan_request(hardware={"num_gpus": 1})).json()
    assert built_in["projection"]["device_profile_id"] == builtin_profile("a100").id


def test_an_unknown_profile_id_is_422_at_its_field(client, plan_request):
    request = plan_request(hardware={"device_profile": "dp_0000000000000000"})
    field = ["hardware", "device_profile"]
    for path, body, loc in (
        ("/v1/plans", request, ["body", *field]),
        ("/v1/checks", {"request": request}, ["body", "request", *field]),
        ("/v1/jobs", {"plan_request": request}, ["body", "plan_request", *field]),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"] == loc


def test_a_profile_job_stores_the_profile_it_measured(
    client, worker_headers, stored_plan, validation_result
):
    job = client.post("/v1/jobs", json={"plan_id": stored_plan, "settings": {"mode": "profile"}})
    assert job.status_code == 202 and job.json()["settings"]["mode"] == "profile"
    claim = client.post("/v1/worker/claim", json={"worker_id": "w"}, headers=worker_headers).json()
    before = client.get(f"/v1/plans/{stored_plan}").json()
    result = validation_result(
        num_layers=None, num_ltd_layers=None, micro_batch_size=None, seq_len=None,
        scaled_down=[], step_times=[], step_time_fit=None, measured_wall_clock_saving=None,
        device_profile=measured(),
    )  # fmt: skip
    done = client.post(
        f"/v1/worker/jobs/{claim['job']['id']}/complete",
        json={"lease_id": claim["lease_id"], "result": result},
        headers=worker_headers,
    )
    assert done.status_code == 200, done.text
    listed = client.get("/v1/device-profiles").json()
    assert listed["count"] == 1 and listed["data"][0]["profile"]["device_name"] == "cpu"
    # A profile is no throughput measurement: the plan is not calibrated by it.
    assert client.get(f"/v1/plans/{stored_plan}").json() == before
