"""README.md's REST API examples, sent over HTTP to the app on a real database: the bodies are
the README's own (parsed out of its `curl ... -d '...'` lines), and every value its responses
show must come back (tests/test_readme.py pins the CLI examples the same way)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from tests.test_readme import Example, assert_matches, elided_json, readme_example


def _send(client: Any, example: Example) -> Any:
    """The README's curl command, sent through the test client; returns the response."""
    argv = example.argv
    assert argv[0] == "curl", argv
    method, body, url = "GET", None, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-d":
            body = json.loads(next(args))
        elif arg == "-H":
            assert next(args).lower() == "content-type: application/json"
        elif not arg.startswith("-"):
            url = arg
    assert url is not None, argv
    return client.request(method, urlsplit(f"http://{url}").path, json=body)


def test_readme_plan_example(client):
    example = readme_example("curl -s -X POST localhost:8000/v1/plans", containing="h100-sxm")
    response = _send(client, example)
    assert response.status_code == 201, response.text  # "POST /v1/plans (201; ..."
    compared = assert_matches(response.json(), elided_json(example.output))
    # The README shows these (values parsed above: id p_37d8d75553aa648c73fa, savings 0.3333 and
    # 0.3295, 248526 steps, 1281.47 GPU-hours, $3203.68); all of them must have been compared.
    assert set(compared) >= {
        "id",
        "savings.layer_tokens",
        "savings.flops",
        "random_ltd.steps",
        "random_ltd.gpu_hours",
        "random_ltd.cost_usd",
    }


def test_readme_check_example(client):
    example = readme_example("curl -s -X POST localhost:8000/v1/checks")
    response = _send(client, example)
    assert response.status_code == 200, response.text
    result = response.json()
    compared = assert_matches(result, elided_json(example.output))
    # The README's: passed false, one violation max_gpu_hours, allowed 1000.0, actual 4770.33.
    assert set(compared) >= {
        "passed",
        "violations[0].limit",
        "violations[0].allowed",
        "violations[0].actual",
        "plan",
    }
    assert result["violations"][0]["actual"] == result["plan"]["random_ltd"]["gpu_hours"]


def test_readme_bad_request_example(client):
    example = readme_example(
        "curl -s -X POST localhost:8000/v1/plans", containing='"train_tokens": -5'
    )
    response = _send(client, example)
    assert response.status_code == 422, response.text  # "422 names the field"
    compared = assert_matches(response.json(), elided_json(example.output))
    # The README's: detail[0].loc is ["body", "train_tokens"].
    assert {"detail[0].loc[0]", "detail[0].loc[1]", "detail[0].msg"} <= set(compared)
