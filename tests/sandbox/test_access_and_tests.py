"""Keys, error shapes for malformed requests, and the test catalogue routes."""

from __future__ import annotations

import pytest

from tests.fakes import imocha as fakes
from tests.fakes.imocha import BAD_KEY, GOOD_KEY, FakeImocha

fake_imocha = fakes.fake_imocha

ACCESS_DENIED = {
    "statusCode": 401,
    "message": ("Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."),
}

EVERY_ROUTE = [
    ("GET", "/v3/tests"),
    ("GET", "/v3/tests/1001"),
    ("GET", "/v3/tests/1001/testlinks"),
    ("POST", "/v3/tests/1001/invite"),
    ("POST", "/v3/tests/1001/testlinks/201001/invite"),
    ("POST", "/v3/invitations/3100001/reattempt"),
    ("POST", "/v3/invitations/3100001/cancel"),
    ("GET", "/v3/reports/3100001"),
    ("POST", "/v3/candidates/testattempts?state=completed"),
    ("POST", "/v3/callbacks/process"),
]


@pytest.mark.parametrize(("method", "path"), EVERY_ROUTE)
def test_every_route_denies_a_request_without_a_key(fake_imocha: FakeImocha, method: str, path: str) -> None:
    with fake_imocha.client(key=None) as client:
        response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json() == ACCESS_DENIED


@pytest.mark.parametrize(("method", "path"), EVERY_ROUTE)
def test_every_route_denies_an_unknown_key(fake_imocha: FakeImocha, method: str, path: str) -> None:
    with fake_imocha.client(key=BAD_KEY) as client:
        response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json() == ACCESS_DENIED


@pytest.mark.parametrize("header", ["X-API-KEY", "x-api-key", "X-Api-Key"])
def test_the_key_header_name_is_case_insensitive(fake_imocha: FakeImocha, header: str) -> None:
    with fake_imocha.client(key=None, headers={header: GOOD_KEY}) as client:
        assert client.get("/v3/tests").status_code == 200


def test_any_key_starting_with_sandbox_is_accepted_by_default(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client(key="sandbox-anything") as client:
        assert client.get("/v3/tests").status_code == 200


def test_a_custom_key_rule_replaces_the_default_one(fake_imocha: FakeImocha) -> None:
    fake_imocha.reset(accept_key=lambda key: key == "only-this")
    with fake_imocha.client(key="only-this") as client:
        assert client.get("/v3/tests").status_code == 200
    with fake_imocha.client(key="sandbox-anything") as client:
        assert client.get("/v3/tests").status_code == 401
    with fake_imocha.client(key=GOOD_KEY) as client:  # added explicitly, so still valid
        assert client.get("/v3/tests").status_code == 200


def test_the_call_log_records_method_path_query_body_and_key(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        client.get("/v3/tests", params={"pageNo": 1, "pageSize": 10})
        client.post("/v3/tests/1001/invite", json={"email": "a@example.com", "name": "A"})
    first, second = fake_imocha.state.calls
    assert (first.method, first.path, first.query, first.json, first.api_key) == (
        "GET",
        "/v3/tests",
        {"pageNo": "1", "pageSize": "10"},
        None,
        GOOD_KEY,
    )
    assert second.json == {"email": "a@example.com", "name": "A"}
    assert fake_imocha.state.count("/invite") == 1
    assert fake_imocha.state.count("/v3/tests", method="GET") == 1
    assert fake_imocha.state.count() == 2
    fake_imocha.state.reset_calls()
    assert fake_imocha.state.count() == 0


def test_invalid_json_is_answered_400_with_an_errors_list(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        response = client.post("/v3/tests/1001/invite", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors and "JSON" in errors[0]


def test_a_json_body_that_is_not_an_object_is_refused(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        response = client.post("/v3/tests/1001/invite", json=["a@example.com"])
    assert response.status_code == 400
    assert response.json() == {"errors": ["The request body must be a JSON object."]}


def test_an_unknown_api_path_answers_json_404(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        response = client.get("/v3/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Resource not found"}


def test_list_tests_answers_the_tests_and_count_envelope(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        body = client.get("/v3/tests", params={"pageNo": 1, "pageSize": 100}).json()
    assert body == {
        "tests": [
            {
                "testId": 1001,
                "testName": "Python Developer",
                "status": "Active",
                "duration": 40,
                "labels": ["python"],
            },
            {"testId": 1002, "testName": "SQL Basics", "status": "Active", "duration": 30, "labels": ["sql"]},
        ],
        "count": 2,
    }


def test_list_tests_pages_with_at_most_100_per_page(fake_imocha: FakeImocha) -> None:
    for test_id in range(2000, 2148):
        fake_imocha.state.add_test(test_id, f"Generated test {test_id}")
    with fake_imocha.client() as client:
        first = client.get("/v3/tests", params={"pageNo": 1, "pageSize": 500}).json()
        second = client.get("/v3/tests", params={"pageNo": 2, "pageSize": 500}).json()
        small = client.get("/v3/tests", params={"pageNo": 3, "pageSize": 10}).json()
        default = client.get("/v3/tests").json()
    assert first["count"] == second["count"] == 150
    assert len(first["tests"]) == 100 and len(second["tests"]) == 50
    assert {t["testId"] for t in first["tests"]}.isdisjoint(t["testId"] for t in second["tests"])
    assert [t["testId"] for t in small["tests"]] == list(range(2018, 2028))
    assert default["tests"] == first["tests"]


def test_list_tests_refuses_a_page_number_that_is_not_a_number(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        response = client.get("/v3/tests", params={"pageNo": "two"})
    assert response.status_code == 400
    assert "errors" in response.json()


def test_list_tests_filters_by_label(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        body = client.get("/v3/tests", params={"labelsFilter": "SQL"}).json()
    assert [t["testName"] for t in body["tests"]] == ["SQL Basics"]
    assert body["count"] == 1


def test_retrieve_a_test_includes_its_sections(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        body = client.get("/v3/tests/1001").json()
    assert body["testId"] == 1001
    assert body["testName"] == "Python Developer"
    assert body["duration"] == 40
    assert body["questions"] == 4
    assert [(s["sectionName"], s["sectionScore"], s["questions"]) for s in body["sections"]] == [
        ("Python basics", 30, 2),
        ("Problem solving", 20, 2),
    ]
    assert all(s["sectionType"] == "MCQ" and s["duration"] == 20 for s in body["sections"])


def test_retrieve_an_unknown_test_is_404(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        response = client.get("/v3/tests/999")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Test not found"}


def test_every_test_has_a_default_api_test_link(fake_imocha: FakeImocha) -> None:
    with fake_imocha.client() as client:
        links = client.get("/v3/tests/1001/testlinks").json()["testLinks"]
    assert len(links) == 1
    link = links[0]
    assert link["testId"] == 1001
    assert link["testLinkName"] == "Default test link"
    assert link["testLinkStatus"] == "active"
    assert link["isApiLink"] is True
    assert isinstance(link["testLinkId"], int)
