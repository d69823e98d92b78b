"""DataFrame helpers: the schema's columns and dtypes, whatever the API returns."""

from __future__ import annotations

import string
import warnings
from datetime import datetime
from email.utils import parsedate_to_datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metafold_jupyter as mf
from metafold_jupyter.errors import APIError, ConfigError, NotLoggedInError
from metafold_jupyter.frames import RFC1123, SCHEMAS, to_frame

# Every test that uses the sandbox runs against each answer shape and both date styles.
pytestmark = pytest.mark.answer_shapes("live", "live-iso8601", "reference")

DTYPES = {
    "string": "string",
    "datetime": "datetime64[ns, UTC]",
    "int64": "int64",
    "bool": "bool",
    "object": "object",
    "duration": "timedelta64[ns]",
}


def expected_dtypes(kind: str) -> list[tuple[str, str]]:
    return [(name, DTYPES[kind_]) for name, kind_ in SCHEMAS[kind]]


def leading(df: pd.DataFrame, kind: str) -> list[tuple[str, str]]:
    n = len(SCHEMAS[kind])
    return [(name, str(dtype)) for name, dtype in df.dtypes.iloc[:n].items()]


def api_date(text: str) -> pd.Timestamp:
    """An API date in either layout (RFC 1123 or ISO 8601), parsed by the standard library."""
    if text.endswith("GMT"):
        parsed = parsedate_to_datetime(text)
    else:  # Python 3.10's fromisoformat does not take "Z"
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return pd.Timestamp(parsed).tz_convert("UTC")


def assert_no_none_strings(df: pd.DataFrame) -> None:
    for name, dtype in df.dtypes.items():
        if str(dtype) == "string":
            assert not (df[name] == "None").any(), name


@pytest.mark.parametrize(
    ("helper", "kind"),
    [(mf.projects, "projects"), (mf.project, "projects"), (mf.assets, "assets"), (mf.jobs, "jobs"),
     (mf.workflows, "workflows"), (mf.license, "license")],
)
def test_helper_schema_and_dtypes(session, helper, kind):
    df = helper()
    assert len(df) >= 1
    assert leading(df, kind) == expected_dtypes(kind)
    assert_no_none_strings(df)


@pytest.mark.parametrize("helper", [mf.usage, mf.quota])
def test_counts_one_int64_column_per_key(session, helper):
    df = helper()
    raw = session.get_json(f"/user/{helper.__name__}")
    assert list(df.columns) == list(raw) and len(df) == 1
    assert all(str(t) == "int64" for t in df.dtypes)
    assert df.iloc[0].to_dict() == raw


def test_projects_values_parsed(session, sandbox):
    raw = {p["id"]: p for p in session.get_json("/projects")}
    df = mf.projects().set_index("id")
    pid = sandbox.default_project_id
    assert df.loc[pid, "created"] == api_date(raw[pid]["created"])
    assert (df["modified"] == [api_date(raw[i]["modified"]) for i in df.index]).all()
    assert df.loc[pid, "name"] == raw[pid]["name"]
    no_thumb = [i for i, p in raw.items() if p["thumbnail"] is None]
    assert no_thumb and df.loc[no_thumb, "thumbnail"].isna().all()
    # extra fields the API adds (project, graph) come after the schema, untouched
    assert list(df.columns[len(SCHEMAS["projects"]) - 1:]) == ["project", "graph"]
    assert list(mf.projects()["id"]) == list(raw)  # the API's order: id descending


def test_assets_values_parsed_and_list_links_are_an_extra_column(session, answer_shape):
    raw = session.get_json(f"/projects/{session.project_id}/assets")
    df = mf.assets()
    assert list(df["id"]) == [a["id"] for a in raw]
    assert list(df["size"]) == [a["size"] for a in raw]
    assert list(df["created"]) == [api_date(a["created"]) for a in raw]
    extra = list(df.columns[len(SCHEMAS["assets"]):])
    # the published reference lists a download link on every item: an extra column, never an error
    assert extra == (["link"] if answer_shape == "reference" else [])
    if extra:
        assert df["link"].str.contains("/blobs/").all()


def test_jobs_and_workflows_dates_parsed(session):
    for helper, path in ((mf.jobs, "jobs"), (mf.workflows, "workflows")):
        raw = session.get_json(f"/projects/{session.project_id}/{path}")
        df = helper()
        for column in ("created", "started", "finished"):
            expected = [pd.NaT if r[column] is None else api_date(r[column]) for r in raw]
            assert df[column].tolist() == expected, (path, column)


def test_license_dates_parsed(session):
    raw = session.get_json("/user/license")
    row = mf.license().iloc[0]
    assert row["issued"] == api_date(raw["issued"]) and row["expires"] == api_date(raw["expires"])
    assert bool(row["expired"]) is raw["expired"]


def test_api_errors_show_the_api_message_in_either_shape(session):
    with pytest.raises(APIError) as info:
        session.request("POST", "/projects", json={"access": "public"})
    assert info.value.status == 400 and "name: Field is required" in str(info.value)
    with pytest.raises(APIError) as info:
        mf.project("424242")
    assert info.value.message == "Resource does not exist"


def test_projects_sort_and_q_pass_through(session):
    names = list(mf.projects(sort="name:1")["name"])
    assert names == sorted(names, key=str.lower)
    one = mf.projects(q='name:"Sandbox playground"')
    assert list(one["name"]) == ["Sandbox playground"]
    assert leading(mf.projects(q="name:no-such-project*"), "projects") == expected_dtypes("projects")


def test_jobs_duration_is_finished_minus_started(session):
    df = mf.jobs()
    done = df.dropna(subset=["started", "finished"])
    assert len(done) and (done["duration"] == done["finished"] - done["started"]).all()
    assert df.loc[df["started"].isna(), "duration"].isna().all()
    failed = df[df["state"] == "failure"]
    assert len(failed) and failed["error"].notna().all()
    assert df.loc[df["state"] == "success", "error"].isna().all()


@pytest.mark.parametrize(("helper", "kind"), [(mf.assets, "assets"), (mf.jobs, "jobs"), (mf.workflows, "workflows")])
def test_empty_project_gives_typed_empty_frames(session, helper, kind):
    empty = session.request("POST", "/projects", json={"name": "empty"}).json()["id"]
    df = helper(project=empty)
    assert len(df) == 0
    assert leading(df, kind) == expected_dtypes(kind)
    assert list(df.columns) == [name for name, _ in SCHEMAS[kind]]


def test_project_by_id_and_default(session, sandbox):
    assert list(mf.project()["id"]) == [sandbox.default_project_id]
    other = mf.projects()["id"].iloc[-1]
    assert list(mf.project(other)["id"]) == [other]
    with pytest.raises(APIError) as info:
        mf.project("424242")
    assert info.value.status == 404


def test_helpers_need_a_login_and_a_project(sandbox):
    with pytest.raises(NotLoggedInError):
        mf.projects()
    from helpers import login_to

    login_to(sandbox)
    with pytest.raises(ConfigError, match="no default project"):
        mf.assets()


def test_to_frame_keeps_unknown_extra_fields_after_the_schema():
    record = {
        "id": "1", "filename": "a.stl", "size": 3, "checksum": "sha256:" + "0" * 64,
        "created": "Tue, 04 Mar 2025 14:05:09 GMT", "modified": "Tue, 04 Mar 2025 14:05:09 GMT",
        "project_id": "2", "job_id": None, "link": "https://x/y", "new_field": {"a": 1},
    }
    df = to_frame([record], "assets")
    assert list(df.columns) == [n for n, _ in SCHEMAS["assets"]] + ["link", "new_field"]
    assert df.loc[0, "new_field"] == {"a": 1} and pd.isna(df.loc[0, "job_id"])


def test_to_frame_missing_schema_fields_are_na():
    df = to_frame([{"id": 5}], "jobs")
    assert df.loc[0, "id"] == "5"
    assert pd.isna(df.loc[0, "created"]) and pd.isna(df.loc[0, "duration"]) and pd.isna(df.loc[0, "error"])
    assert leading(df, "jobs") == expected_dtypes("jobs")


def test_to_frame_records_with_different_keys():
    df = to_frame([{"id": "1", "a": 1}, {"id": "2", "b": 2}], "workflows")
    assert list(df.columns)[-2:] == ["a", "b"]
    assert df["a"].tolist()[1] is None


# -- property test: any valid API records give the schema ---------------------------

_dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
_rfc = _dates.map(lambda d: d.strftime(RFC1123))
# ISO 8601 as the published reference shows it (+00:00), and the variants a server may send
_iso = st.builds(
    lambda d, micro, offset: d.replace(microsecond=micro).isoformat() + offset,
    _dates, st.sampled_from([0, 0, 500000, 123456]), st.sampled_from(["+00:00", "+00:00", "Z", "+02:00", "-05:30"]))
_date = _rfc | _iso
_ids = st.integers(min_value=1, max_value=10**9).map(str)
_text = st.text(alphabet=string.ascii_letters + string.digits + " -_.éü", max_size=30)
_states = st.sampled_from(["pending", "started", "success", "failure", "canceled"])

_records = {
    "projects": st.fixed_dictionaries({
        "id": _ids, "user": _text, "name": _text, "access": st.sampled_from(["private", "public", "org"]),
        "type": st.sampled_from(["unspecified", "digital_test_bench_experiment"]), "created": _date,
        "modified": _date, "thumbnail": st.none() | _text, "project": st.none() | st.dictionaries(_text, _text),
        "graph": st.none()}),
    "assets": st.fixed_dictionaries({
        "id": _ids, "filename": _text, "size": st.integers(0, 2**40), "checksum": st.just("sha256:" + "a" * 64),
        "created": _date, "modified": _date, "project_id": _ids, "job_id": st.none() | _ids}),
    "jobs": st.fixed_dictionaries({
        "id": _ids, "name": st.none() | _text, "type": _text, "state": _states, "created": _date,
        "started": st.none() | _date, "finished": st.none() | _date, "error": st.none() | _text,
        "inputs": st.just({"params": None, "assets": None}), "outputs": st.just({"params": None, "assets": None}),
        "needs": st.lists(_ids, max_size=3), "project_id": _ids, "workflow_id": st.none() | _ids,
        "assets": st.just([]), "parameters": st.none(), "meta": st.none()}),
    "workflows": st.fixed_dictionaries({
        "id": _ids, "jobs": st.lists(_ids, max_size=4), "state": _states, "created": _date,
        "started": st.none() | _date, "finished": st.none() | _date, "definition": _text, "project_id": _ids},
        optional={"link": _text}),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_records)).flatmap(lambda k: st.tuples(st.just(k), st.lists(_records[k], max_size=6))))
def test_property_random_valid_records_give_the_schema(case):
    kind, records = case
    df = to_frame(records, kind)
    assert len(df) == len(records)
    assert leading(df, kind) == expected_dtypes(kind)
    strings = [name for name, k in SCHEMAS[kind] if k == "string"]
    for i, record in enumerate(records):
        assert df.loc[i, "id"] == record["id"]
        for name in strings:  # None is <NA>, never the string "None"; text stays text
            value = record.get(name)
            assert pd.isna(df.loc[i, name]) if value is None else df.loc[i, name] == value
        assert df.loc[i, "created"] == api_date(record["created"])
        if "duration" in df and record.get("started") and record.get("finished"):
            assert df.loc[i, "duration"] == api_date(record["finished"]) - api_date(record["started"])
        elif "duration" in df:
            assert pd.isna(df.loc[i, "duration"])


def test_duration_dtype_with_only_missing_values():
    df = to_frame([{"id": "1", "started": None, "finished": None}], "workflows")
    assert str(df["duration"].dtype) == "timedelta64[ns]" and df["duration"].isna().all()


# -- values that do not fit the schema (#9.9) ---------------------------------------------


def _asset(**fields):
    record = {"id": "1", "filename": "a.stl", "size": 3, "checksum": "sha256:" + "0" * 64,
              "created": "Tue, 04 Mar 2025 14:05:09 GMT", "modified": "2025-03-04T14:05:09+00:00",
              "project_id": "2", "job_id": None}
    record.update(fields)
    return record


def test_to_frame_int64_misfits_are_missing_with_one_warning():
    sizes = [1, 2**70, 1.5, "abc", 3.0, "42", True, None, -(2**63), {"n": 1}, "9" * 5000]
    with pytest.warns(mf.frames.SchemaWarning) as caught:
        df = to_frame([_asset(id=str(i), size=v) for i, v in enumerate(sizes)], "assets")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'size'" in message and "6 values" in message and "64-bit integer" in message
    assert caught[0].filename == __file__  # points at the caller's line, not into the library
    assert str(df["size"].dtype) == "Int64"
    assert df["size"].tolist() == [1, pd.NA, pd.NA, pd.NA, 3, 42, pd.NA, pd.NA, -(2**63), pd.NA, pd.NA]


def test_to_frame_bool_misfits_are_missing_not_true():
    records = [{"product": "p", "issued": None, "expires": None, "expired": v} for v in (False, "no", True, 0, None)]
    with pytest.warns(mf.frames.SchemaWarning, match=r"2 values of 'expired' are not true/false") as caught:
        df = to_frame(records, "license")
    assert len(caught) == 1 and str(df["expired"].dtype) == "boolean"
    assert df["expired"].tolist() == [False, pd.NA, True, pd.NA, pd.NA]


def test_to_frame_date_misfits_are_missing_never_1970():
    created = [
        1700000000,                         # an epoch number: which unit? not guessed
        "1700000000",
        "Sat, 31 Feb 2025 10:00:00 GMT",    # no such day
        "Tue, 04 Mar 2025 25:00:00 GMT",    # no such hour
        "9999-12-31T00:00:00+00:00",        # beyond datetime64[ns]
        "May",                              # year and day would be guessed
        "no",
        "Tue, 04 Mar 2025 14:05:09 GMT",
        "2025-03-04T16:05:09+02:00",
        "2025-03-04T14:05:09Z",
        "Tuesday, 04-Mar-25 14:05:09 GMT",  # RFC 850, the obsolete HTTP date: the per-value fallback
        None,
    ]
    with pytest.warns(mf.frames.SchemaWarning) as caught:
        df = to_frame([_asset(id=str(i), created=v) for i, v in enumerate(created)], "assets")
    assert len(caught) == 1 and "7 values of 'created' are not a date" in str(caught[0].message)
    want = pd.Timestamp("2025-03-04 14:05:09", tz="UTC")
    assert df["created"].isna().tolist() == [True] * 7 + [False] * 4 + [True]
    assert (df["created"].iloc[7:11] == want).all()
    assert str(df["created"].dtype) == "datetime64[ns, UTC]"


def test_to_frame_several_misfit_columns_give_one_warning():
    with pytest.warns(mf.frames.SchemaWarning) as caught:
        to_frame([_asset(size="big", created=0, filename={"a": 1})], "assets")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert all(f"'{name}'" in message for name in ("size", "created", "filename"))


def test_to_frame_good_values_warn_nothing():
    records = [_asset(id=str(i), size=i * 1000, job_id=str(i) if i % 2 else None) for i in range(50)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = to_frame(records, "assets")
        to_frame([{"project": 1, "import": 2**62}], "quota")
    assert str(df["size"].dtype) == "int64" and df["created"].notna().all() and df["modified"].notna().all()


def test_to_frame_counts_misfits_are_missing():
    with pytest.warns(mf.frames.SchemaWarning, match=r"quota: 1 value of 'export' is not a 64-bit integer"):
        df = to_frame({"project": 3, "export": 2**64, "import": "7"}, "quota")
    assert df.iloc[0].tolist() == [3, pd.NA, 7] and str(df["export"].dtype) == "Int64"


# -- answers that are not what a list endpoint returns (#9.8) -------------------------------


@pytest.mark.answer_shapes("live")
@pytest.mark.parametrize(("body", "what"), [
    ("null", "expected a list of objects, got null"),
    ("[1, 2]", "item 0 is a number (1)"),
    ("[[1]]", "item 0 is a list"),
    ('{"id": "1"}', "expected a list of objects, got an object"),
    ('"projects"', "got a string ('projects')"),
])
def test_list_helpers_answering_a_non_list_are_one_line_api_errors(session, sandbox, body, what):
    pid = session.project_id
    for helper, path in ((mf.projects, "/projects"), (mf.assets, f"/projects/{pid}/assets"),
                         (mf.jobs, f"/projects/{pid}/jobs"), (mf.workflows, f"/projects/{pid}/workflows")):
        sandbox.inject(path, status=200, body=body, content_type="application/json")
        with pytest.raises(APIError) as info:
            helper()
        text = str(info.value)
        assert "\n" not in text and f"GET {path} failed" in text and what in text, text


@pytest.mark.answer_shapes("live")
@pytest.mark.parametrize("body", ["null", "[]", '[{"id": "3"}]', "7"])
def test_object_helpers_answering_a_non_object_are_one_line_api_errors(session, sandbox, body):
    for helper, path in ((mf.project, f"/projects/{session.project_id}"), (mf.license, "/user/license"),
                         (mf.usage, "/user/usage"), (mf.quota, "/user/quota")):
        sandbox.inject(path, status=200, body=body, content_type="application/json")
        with pytest.raises(APIError, match=rf"GET {path} failed \(HTTP 200\): unexpected answer: expected an object"):
            helper()


def test_to_frame_rejects_what_is_not_records_with_a_clear_type_error():
    for bad, what in ((None, "got null"), ([1], "item 0 is a number"), ([[1]], "item 0 is a list"), ("ab", "string")):
        with pytest.raises(TypeError, match=what):
            to_frame(bad, "projects")


# -- both date layouts, across everything datetime64[ns] holds --------------------------------

_wide = st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2262, 4, 10)).map(
    lambda d: d.replace(microsecond=0))
_offsets = st.sampled_from(["+00:00", "Z", "+02:00", "-05:30", "+14:00", "-12:00"])
_layouts = st.one_of(
    _wide.map(lambda d: d.strftime(RFC1123)),
    st.builds(lambda d, off: d.isoformat() + off, _wide, _offsets),
    st.builds(lambda d, micro, off: d.replace(microsecond=micro).isoformat() + off, _wide,
              st.integers(1, 999999), _offsets),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_layouts, min_size=1, max_size=8))
def test_property_parse_dates_reads_both_layouts_exactly(texts):
    stamps, bad = mf.frames.parse_dates(texts)
    for text, stamp in zip(texts, stamps):
        expected = api_date(text)
        in_range = pd.Timestamp("1677-09-22", tz="UTC") <= expected <= pd.Timestamp("2262-04-10 23:59:59", tz="UTC")
        assert (pd.Timestamp(stamp, tz="UTC") == expected) if in_range else pd.isna(stamp), text
    assert bad == sum(pd.isna(stamps))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.text(max_size=32), _layouts),
                max_size=10))
def test_property_parse_dates_never_raises_and_counts_what_is_not_a_date(values):
    stamps, bad = mf.frames.parse_dates(values)
    assert len(stamps) == len(values) and str(stamps.dtype) == "datetime64[ns]"
    assert bad == sum(1 for v, s in zip(values, stamps) if v is not None and pd.isna(s))
    assert all(pd.isna(s) for v, s in zip(values, stamps) if not isinstance(v, str))
