"""``sort`` and ``q`` on the sandbox's list endpoints (parser units and over HTTP)."""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from metafold_jupyter.sandbox.query import SPECS, QueryError, apply_list, parse_q, parse_sort
from metafold_jupyter.sandbox.resources import Project

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api(sandbox):
    http = requests.Session()
    token = http.post(sandbox.url + "/oauth/token", json={
        "grant_type": "client_credentials", "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret, "audience": sandbox.audience}, timeout=10).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def get(path, **params):
        return http.get(sandbox.url + path, params=params, timeout=10)

    yield get
    http.close()


def names(r):
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()]


# ---------------------------------------------------------------- parser units
def test_query_parse_q_both_negation_forms_and_quotes():
    t1, t2, t3 = parse_q('!name:foo AND user:!"a b" AND id:"!x"', SPECS["projects"].q_fields)
    assert (t1.field, t1.value, t1.negate) == ("name", "foo", True)
    assert (t2.field, t2.value, t2.negate) == ("user", "a b", True)
    assert (t3.field, t3.value, t3.negate) == ("id", "!x", False)  # a quoted ! is literal
    (double,) = parse_q("!name:!foo", ("name",))
    assert double.negate is False


def test_query_parse_q_and_is_case_insensitive_and_quotes_protect_it():
    assert len(parse_q("name:a and id:1 AnD user:u", ("name", "id", "user"))) == 3
    (term,) = parse_q('name:"salt AND pepper"', ("name",))
    assert term.value == "salt AND pepper"


def test_query_wildcard_matches_anywhere_and_other_chars_are_literal():
    (term,) = parse_q("name:*a.b*", ("name",))
    assert term.matches("xxA.Byy") and not term.matches("aXb")
    (exact,) = parse_q("name:Cube", ("name",))
    assert exact.matches("cube") and not exact.matches("cubes")
    (prefix,) = parse_q("name:cu*", ("name",))
    assert prefix.matches("CUBE.stl") and not prefix.matches("a cube")


@pytest.mark.parametrize(
    "q", ["name", "name:x AND", "color:red", 'name:"open', "name:a\"b", ":x"]
)
def test_query_parse_q_rejects_bad_terms(q):
    with pytest.raises(QueryError) as info:
        parse_q(q, ("name",))
    assert info.value.field == "q"


@pytest.mark.parametrize("sort", ["name", "name:2", "name:asc", "size:1", "", "id:1:1"])
def test_query_parse_sort_rejects_bad_values(sort):
    with pytest.raises(QueryError) as info:
        parse_sort(sort, SPECS["projects"].sort_fields)
    assert info.value.field == "sort"


@given(st.lists(st.integers(min_value=1, max_value=10**6), unique=True, max_size=30))
def test_query_default_order_is_numeric_id_descending(ids):
    rows = [Project(id=i, user="u", name=str(i), access="private", type="unspecified", created=0.0, modified=0.0)
            for i in ids]
    assert [r.id for r in apply_list(rows, SPECS["projects"])] == sorted(ids, reverse=True)
    assert [r.id for r in apply_list(rows, SPECS["projects"], sort="id:1")] == sorted(ids)


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"*'), min_size=1))
def test_query_exact_value_matches_itself_in_any_case(value):
    (term,) = parse_q(f'name:"{value}"', ("name",))
    assert term.matches(value) and term.matches(value.upper()) and term.matches(value.lower())


# ------------------------------------------------------------------ over HTTP
def test_query_projects_default_order_id_descending_numeric(api):
    ids = [int(p["id"]) for p in api("/projects").json()]
    assert ids == sorted(ids, reverse=True) and ids[0] == 11 and ids[-1] == 1


@pytest.mark.parametrize("field", ["id", "user", "name", "created", "modified"])
def test_query_projects_sort_every_allowed_field(api, field):
    asc = api("/projects", sort=f"{field}:1").json()
    desc = api("/projects", sort=f"{field}:-1").json()
    assert len(asc) == len(desc) == 10

    def key(p):
        if field == "id":
            return int(p["id"])
        if field in ("created", "modified"):
            from email.utils import parsedate_to_datetime
            return parsedate_to_datetime(p[field])
        return p[field].casefold()

    assert [key(p) for p in asc] == sorted(key(p) for p in asc)
    assert [key(p) for p in desc] == sorted((key(p) for p in desc), reverse=True)


def test_query_projects_sort_by_name_is_case_insensitive(api):
    got = names(api("/projects", sort="name:1"))
    assert got[0] == "Acoustic panel" and got[-1] == "Untitled project"


def test_query_projects_q_exact_case_insensitive(api):
    assert names(api("/projects", q="name:sandbox PLAYGROUND")) == ["Sandbox playground"]
    assert names(api("/projects", q='name:"tpms gallery"')) == ["TPMS gallery"]
    assert names(api("/projects", q="name:sandbox")) == []


def test_query_projects_q_wildcards(api):
    assert names(api("/projects", q="name:*heat*", sort="id:1")) == ["Gyroid heat exchanger", "Heat sink comparison"]
    assert names(api("/projects", q="name:B*")) == ["Bike saddle cushion"]
    assert len(api("/projects", q="user:*@clients").json()) == 10


def test_query_projects_q_and_with_quotes(api):
    got = names(api("/projects", q='name:"*heat*" AND id:8'))
    assert got == ["Heat sink comparison"]
    assert names(api("/projects", q='name:*heat* and !id:8')) == ["Gyroid heat exchanger"]


def test_query_projects_q_negation_both_forms(api):
    a = names(api("/projects", q="!name:*project*"))
    b = names(api("/projects", q="name:!*project*"))
    assert a == b and len(a) == 9 and "Untitled project" not in a


def test_query_projects_q_id_field(api):
    assert names(api("/projects", q="id:3")) == ["Sandbox playground"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"q": "access:public"}, "q"), ({"q": "created:*"}, "q"), ({"q": "nonsense"}, "q"),
     ({"sort": "access:1"}, "sort"), ({"sort": "name:up"}, "sort")],
)
def test_query_projects_bad_field_or_syntax_is_400(api, params, field):
    r = api("/projects", **params)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["field"] == field and error["msg"]


def test_query_assets_fields(api, sandbox):
    pid = sandbox.default_project_id
    by_size = api(f"/projects/{pid}/assets", sort="size:-1").json()
    assert [a["size"] for a in by_size] == sorted((a["size"] for a in by_size), reverse=True)
    assert [a["filename"] for a in api(f"/projects/{pid}/assets", q="filename:*.STL AND !filename:pre*",
                                       sort="filename:1").json()] == ["cube.stl", "icosahedron.stl", "remesh-4.stl"]
    assert api(f"/projects/{pid}/assets", q="job_id:1").status_code == 400
    assert api(f"/projects/{pid}/assets", sort="checksum:1").status_code == 400


def test_query_jobs_fields(api, sandbox):
    pid = sandbox.default_project_id
    jobs = f"/projects/{pid}/jobs"
    assert [j["name"] for j in api(jobs, q="type:mesh/* AND state:success", sort="id:1").json()] == [
        "preprocess", "remesh", "preprocess", "export-obj"]
    assert [j["state"] for j in api(jobs, q="state:FAILURE").json()] == ["failure"]
    assert all(j["state"] != "success" for j in api(jobs, q="state:!success").json())
    started = api(jobs, sort="started:1").json()
    assert started[-1]["started"] is None  # nulls last ascending
    assert api(jobs, sort="started:-1").json()[0]["started"] is None
    finished = [j["name"] for j in api(jobs, sort="finished:-1").json()]
    assert finished[0] == "export-obj"
    assert api(jobs, q="error:*").status_code == 400


def test_query_workflows_fields(api, sandbox):
    wfs = f"/projects/{sandbox.default_project_id}/workflows"
    assert [w["state"] for w in api(wfs).json()] == ["failure", "success"]
    assert [w["state"] for w in api(wfs, sort="finished:1").json()] == ["success", "failure"]
    assert [w["id"] for w in api(wfs, q="state:succ*").json()] == ["1"]
    assert [w["id"] for w in api(wfs, q="!state:success AND id:2").json()] == ["2"]
    assert api(wfs, q="definition:*").status_code == 400
