"""Lifecycle operations against the sandbox: create, duplicate, rename, cancel, delete.

State is checked on the sandbox's side (``sandbox.store`` and the request log
``sandbox.requests``), not only in the returned frames. The write-once rule is
proved for POST, PATCH and DELETE under injected 500s, dropped connections and
401 refusals; the magics run in a real InteractiveShell.
"""

from __future__ import annotations

import fnmatch
import warnings

import pandas as pd
import pytest
from IPython.core.error import UsageError
from test_frames import expected_dtypes, leading
from test_magics import complete, dotenv, error_lines, logged_in, shell  # noqa: F401 - fixtures
from test_operations import OK_WORKFLOW

import metafold_jupyter as mf
from metafold_jupyter import lifecycle
from metafold_jupyter.errors import APIError, InvalidIdError, InvalidValueError, TransportError
from metafold_jupyter.transport import API_RETRY, AUTH_RETRY, WriteOnceRetry


def sent(sb, method, path="/projects*"):
    """The API requests of ``method`` to ``path`` (a glob) the sandbox received, oldest first."""
    return [r for r in sb.requests if r.method == method and fnmatch.fnmatchcase(r.path, path)]


def store_project(sb, pid):
    return sb.store.projects.get(int(pid))


def playground_ids(sb):
    """IDs of the default project's resources, as the store holds them."""
    pid = int(sb.default_project_id)
    store = sb.store
    return {
        "asset": sorted(str(a.id) for a in store.assets.values() if a.project_id == pid),
        "job": sorted(str(j.id) for j in store.jobs.values() if j.project_id == pid),
        "workflow": sorted(str(w.id) for w in store.workflows.values() if w.project_id == pid),
    }


def running_workflow():
    """A workflow that stays running for a while (the sandbox's per-run duration)."""
    row = mf.run_workflow(OK_WORKFLOW, parameters={"sandbox.duration": "60"}, wait=False, progress=False)
    return row.iloc[0]["id"]


# -- projects ------------------------------------------------------------------------------


def test_create_project_defaults_to_private_and_lands_in_the_store(session, sandbox):
    row = mf.create_project("Scratch for class")
    assert leading(row, "projects") == expected_dtypes("projects") and len(row) == 1
    record = store_project(sandbox, row.iloc[0]["id"])
    assert (record.name, record.access, record.type) == ("Scratch for class", "private", "unspecified")
    assert len(sent(sandbox, "POST", "/projects")) == 1


def test_create_project_with_access_and_type(session, sandbox):
    row = mf.create_project("Bench", access="Org", type="digital_test_bench_experiment")
    record = store_project(sandbox, row.iloc[0]["id"])
    assert (record.access, record.type) == ("org", "digital_test_bench_experiment")
    assert (row.iloc[0]["access"], row.iloc[0]["type"]) == ("org", "digital_test_bench_experiment")


@pytest.mark.parametrize("call", [
    lambda: mf.create_project("x", access="secret"),
    lambda: mf.duplicate_project("3", "x", access="everyone"),
    lambda: mf.update_project("3", access="friends"),
])
def test_lifecycle_bad_access_is_refused_before_sending(session, sandbox, call):
    before = len(sandbox.requests)
    with pytest.raises(InvalidValueError, match="is not one of private, public, org") as info:
        call()
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert len(sandbox.requests) == before


@pytest.mark.parametrize("name", ["", "   ", None, 12])
def test_create_project_empty_name_is_refused_before_sending(session, sandbox, name):
    before = len(sandbox.requests)
    with pytest.raises(InvalidValueError, match="project name"):
        mf.create_project(name)
    assert len(sandbox.requests) == before


def test_duplicate_project_copies_data_and_graph(session, sandbox):
    source = store_project(sandbox, sandbox.default_project_id)
    source.project, source.graph = {"lesson": 1}, {"nodes": [{"id": "a"}]}
    source.changed()
    row = mf.duplicate_project(sandbox.default_project_id, "Student 1", access="public")
    copy = store_project(sandbox, row.iloc[0]["id"])
    assert copy.id != source.id and (copy.name, copy.access) == ("Student 1", "public")
    assert (copy.project, copy.graph) == ({"lesson": 1}, {"nodes": [{"id": "a"}]})
    assert row.iloc[0]["name"] == "Student 1" and row.iloc[0]["project"] == {"lesson": 1}


def test_duplicate_project_unknown_source_is_the_apis_one_line(session, sandbox):
    with pytest.raises(APIError) as info:
        mf.duplicate_project("999999", "copy")
    assert info.value.status == 400
    assert info.value.message == "source: Project '999999' does not exist"
    assert str(info.value) == (
        "POST /projects failed (HTTP 400): source: Project '999999' does not exist — check the arguments"
    )
    assert len(sandbox.store.visible_projects(store_project(sandbox, 3).user)) == 10


def test_duplicate_project_name_conflict_as_the_api_reports_it(session, sandbox):
    # the sandbox allows equal names; a service that refuses them answers 409 in one of its shapes
    sandbox.inject("/projects", method="POST", status=409,
                   body='{"errors": [{"field": "name", "msg": "A project named \'Template\' already exists"}]}')
    with pytest.raises(APIError) as info:
        mf.duplicate_project("3", "Template")
    assert info.value.message == "name: A project named 'Template' already exists"
    assert str(info.value) == (
        "POST /projects failed (HTTP 409): name: A project named 'Template' already exists — choose another name"
    )
    assert len(sent(sandbox, "POST", "/projects")) == 1


def test_update_project_renames_and_changes_access(session, sandbox):
    pid = mf.create_project("Before").iloc[0]["id"]
    modified = store_project(sandbox, pid).modified
    row = mf.update_project(pid, name="After", access="public")
    record = store_project(sandbox, pid)
    assert (record.name, record.access) == ("After", "public") and record.modified >= modified
    assert (row.iloc[0]["id"], row.iloc[0]["name"], row.iloc[0]["access"]) == (pid, "After", "public")
    (patch,) = sent(sandbox, "PATCH")
    assert patch.path == f"/projects/{pid}"


def test_update_project_defaults_to_the_session_project(session, sandbox):
    mf.update_project(name="Playground, renamed")
    assert store_project(sandbox, sandbox.default_project_id).name == "Playground, renamed"


def test_update_project_with_nothing_to_change_sends_nothing(session, sandbox):
    before = len(sandbox.requests)
    with pytest.raises(InvalidValueError, match="nothing to update"):
        mf.update_project("3")
    assert len(sandbox.requests) == before


def test_delete_project_removes_it_and_everything_in_it(session, sandbox):
    pid = sandbox.default_project_id
    session.use_project(None)
    assert any(playground_ids(sandbox).values())
    row = mf.delete_project(pid)
    assert list(row["id"]) == [pid] and list(row["name"]) == ["Sandbox playground"]
    assert store_project(sandbox, pid) is None
    assert playground_ids(sandbox) == {"asset": [], "job": [], "workflow": []}
    assert [r.status for r in sent(sandbox, "DELETE")] == [200]


def test_delete_project_of_the_default_clears_it_and_warns(session, sandbox):
    pid = mf.create_project("Scratch").iloc[0]["id"]
    session.use_project(pid)
    with pytest.warns(lifecycle.DefaultProjectCleared, match=f"project {pid} was the default project"):
        mf.delete_project(pid)
    assert session.project_id is None and store_project(sandbox, pid) is None
    with pytest.raises(mf.ConfigError, match="no default project"):
        mf.assets()


def test_delete_project_of_another_keeps_the_default(session, sandbox):
    pid = mf.create_project("Scratch").iloc[0]["id"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf.delete_project(pid)
    assert session.project_id == sandbox.default_project_id


def test_delete_unknown_id_is_a_404_and_nothing_is_deleted(session, sandbox):
    with pytest.raises(APIError) as info:
        mf.delete_project("999999")
    assert info.value.status == 404 and info.value.message == "Resource does not exist"
    with pytest.raises(APIError, match=r"assets/424242 failed \(HTTP 404\): Resource does not exist"):
        mf.delete_asset("424242")
    assert sent(sandbox, "DELETE") == []


def test_lifecycle_ids_become_one_path_segment(session, sandbox):
    before = len(sandbox.requests)
    for call in (lambda: mf.delete_asset("1/../../user"), lambda: mf.job("5?x=1"), lambda: mf.delete_project("3#"),
                 lambda: mf.duplicate_project("../3", "x"), lambda: mf.cancel_workflow("..")):
        with pytest.raises(InvalidIdError):
            call()
    assert len(sandbox.requests) == before


# -- jobs, workflows, assets -------------------------------------------------------------------


def test_job_and_workflow_are_the_rows_of_the_lists(session, sandbox):
    jobs, flows = mf.jobs(), mf.workflows()
    jid, wid = jobs.iloc[-1]["id"], flows.iloc[-1]["id"]
    one_job, one_flow = mf.job(jid), mf.workflow(wid, project=sandbox.default_project_id)
    assert leading(one_job, "jobs") == expected_dtypes("jobs")
    assert leading(one_flow, "workflows") == expected_dtypes("workflows")
    pd.testing.assert_frame_equal(one_job, jobs[jobs["id"] == jid].reset_index(drop=True))
    pd.testing.assert_frame_equal(one_flow, flows[flows["id"] == wid].reset_index(drop=True))


def test_job_in_another_project_is_a_404(session, sandbox):
    jid = mf.jobs().iloc[0]["id"]
    other = mf.create_project("empty").iloc[0]["id"]
    with pytest.raises(APIError) as info:
        mf.job(jid, project=other)
    assert info.value.status == 404


def test_cancel_workflow_cancels_it_on_the_server(session, sandbox):
    wid = running_workflow()
    row = mf.cancel_workflow(wid)
    assert list(row["state"]) == ["canceled"] and leading(row, "workflows") == expected_dtypes("workflows")
    assert sandbox.store.workflows[int(wid)].state == "canceled"
    assert {sandbox.store.jobs[j].state for j in sandbox.store.workflows[int(wid)].job_ids} <= {"canceled", "success"}


def test_cancel_finished_workflow_is_one_clear_line(session, sandbox):
    wid = mf.workflows(q="state:success").iloc[0]["id"]
    with pytest.raises(APIError) as info:
        mf.cancel_workflow(wid)
    assert info.value.status == 400 and "already finished (success)" in info.value.message
    assert "cannot be cancelled" in info.value.hint and sandbox.store.workflows[int(wid)].state == "success"


@pytest.mark.parametrize(("kind", "delete"), [
    ("asset", mf.delete_asset), ("job", mf.delete_job), ("workflow", mf.delete_workflow)])
def test_delete_asset_job_workflow_removes_it_from_the_store(session, sandbox, kind, delete):
    rid = playground_ids(sandbox)[kind][0]
    row = delete(rid)
    assert list(row["id"]) == [rid] and leading(row, kind + "s") == expected_dtypes(kind + "s")
    assert rid not in playground_ids(sandbox)[kind]
    (deleted,) = sent(sandbox, "DELETE")
    assert (deleted.path, deleted.status) == (f"/projects/{sandbox.default_project_id}/{kind}s/{rid}", 200)


def test_delete_asset_removes_its_file(session, sandbox):
    asset = sandbox.store.assets[int(mf.assets(q="filename:cube.stl").iloc[0]["id"])]
    assert asset.path.exists()
    mf.delete_asset(str(asset.id))
    assert not asset.path.exists()


def test_delete_workflow_takes_its_jobs(session, sandbox):
    wid = mf.workflows().iloc[0]["id"]
    job_ids = list(sandbox.store.workflows[int(wid)].job_ids)
    mf.delete_workflow(wid)
    assert not any(j in sandbox.store.jobs for j in job_ids)


# -- writes are sent once ---------------------------------------------------------------------------


def _create():
    return mf.create_project("once")


def _rename():
    return mf.update_project("3", name="once")


def _delete_asset():
    return mf.delete_asset(mf.assets(q="filename:cube.stl").iloc[0]["id"])


def _delete_project():
    return mf.delete_project("4")


WRITES = [  # (method, path glob, call, what tells whether the server acted)
    ("POST", "/projects", _create, lambda sb: any(p.name == "once" for p in sb.store.projects.values())),
    ("PATCH", "/projects/3", _rename, lambda sb: sb.store.projects[3].name == "once"),
    ("DELETE", "/projects/3/assets/*", _delete_asset,
     lambda sb: not any(a.filename == "cube.stl" for a in sb.store.assets.values())),
    ("DELETE", "/projects/4", _delete_project, lambda sb: 4 not in sb.store.projects),
]
WRITE_IDS = ["create", "rename", "delete-asset", "delete-project"]


@pytest.mark.parametrize(("method", "path", "call", "acted"), WRITES, ids=WRITE_IDS)
def test_write_answered_500_is_sent_exactly_once(session, sandbox, method, path, call, acted):
    sandbox.inject(path, method=method, status=500, count=3)
    with pytest.raises(APIError) as info:
        call()
    assert info.value.status == 500
    assert [r.status for r in sent(sandbox, method)] == [500]
    assert not acted(sandbox)  # the fault answered in the server's place


@pytest.mark.parametrize(("method", "path", "call", "acted"), WRITES, ids=WRITE_IDS)
def test_write_whose_connection_dropped_is_not_replayed(session, sandbox, method, path, call, acted):
    sandbox.inject(path, method=method, drop=True, count=3)
    with pytest.raises(TransportError) as info:
        call()
    assert [r.status for r in sent(sandbox, method)] == [None]  # one request, no answer
    assert "may have acted" in info.value.hint and "before trying again" in info.value.hint
    assert not acted(sandbox)


@pytest.mark.parametrize(("method", "path", "call", "acted"), WRITES, ids=WRITE_IDS)
def test_write_refused_with_503_and_retry_after_is_not_retried(session, sandbox, method, path, call, acted):
    sandbox.inject(path, method=method, status=503, retry_after=0, count=3)
    with pytest.raises(APIError):
        call()
    assert [r.status for r in sent(sandbox, method)] == [503]


@pytest.mark.parametrize(("method", "path", "call", "acted"), WRITES[1:], ids=WRITE_IDS[1:])
def test_patch_and_delete_refused_with_429_are_sent_again(session, sandbox, method, path, call, acted):
    sandbox.inject(path, method=method, status=429, retry_after=0, count=1)
    call()
    assert [r.status for r in sent(sandbox, method)] == [429, 200]
    assert acted(sandbox)


def test_post_refused_with_429_is_not_sent_again(session, sandbox):
    sandbox.inject("/projects", method="POST", status=429, retry_after=0, count=1)
    with pytest.raises(APIError) as info:
        _create()
    assert info.value.status == 429 and [r.status for r in sent(sandbox, "POST", "/projects")] == [429]


def test_write_once_retry_policy_table():
    reads, writes = ("GET", "HEAD", "OPTIONS"), ("POST", "PUT", "PATCH", "DELETE")
    for status in (408, 500, 502, 503, 504):
        assert all(API_RETRY.is_retry(m, status) for m in reads)
        assert not any(API_RETRY.is_retry(m, status, has_retry_after=True) for m in writes)
    assert [m for m in writes if API_RETRY.is_retry(m, 429)] == ["PATCH", "DELETE"]
    assert not any(API_RETRY.is_retry(m, s) for m in reads + writes for s in (400, 401, 404))
    assert isinstance(API_RETRY.new(), WriteOnceRetry) and isinstance(AUTH_RETRY, WriteOnceRetry)
    assert AUTH_RETRY.is_retry("POST", 503)  # the token exchange keeps its own rule


def test_delete_answered_401_is_replayed_once_with_a_fresh_token(session, sandbox):
    asset = mf.assets(q="filename:cube.stl").iloc[0]["id"]
    exchanges = sandbox.token_exchanges
    sandbox.inject(f"/projects/3/assets/{asset}", method="DELETE", status=401)  # the token expired in between
    mf.delete_asset(asset)
    deletes = sent(sandbox, "DELETE")
    assert [r.status for r in deletes] == [401, 200]
    assert deletes[0].authorization != deletes[1].authorization and sandbox.token_exchanges == exchanges + 1
    assert int(asset) not in sandbox.store.assets


def test_delete_after_revoked_tokens_reaches_the_store_once(session, sandbox):
    asset = mf.assets(q="filename:bracket.obj").iloc[0]["id"]
    sandbox.revoke_tokens()
    session.request("DELETE", f"/projects/3/assets/{asset}")
    assert [r.status for r in sent(sandbox, "DELETE")] == [401, 200]
    assert int(asset) not in sandbox.store.assets
    # and through the Python API: the read before the delete takes the 401, the delete goes once
    other = mf.assets(q="filename:icosahedron.stl").iloc[0]["id"]
    sandbox.revoke_tokens()
    mf.delete_asset(other)
    assert [r.status for r in sent(sandbox, "DELETE", f"/projects/3/assets/{other}")] == [200]
    assert int(other) not in sandbox.store.assets


def test_delete_dropped_after_a_401_replay_is_not_sent_a_third_time(session, sandbox):
    sandbox.inject("/projects/4", method="DELETE", status=401)
    sandbox.inject("/projects/4", method="DELETE", drop=True)
    with pytest.raises(TransportError):
        mf.delete_project("4")
    assert [r.status for r in sent(sandbox, "DELETE")] == [401, None]
    assert 4 in sandbox.store.projects


# -- magics -----------------------------------------------------------------------------------------


def test_magic_create_duplicate_rename_cancel(logged_in, sandbox):
    row = logged_in.run_line_magic("metafold", "create Class scratch --access public")
    pid = row.iloc[0]["id"]
    assert (store_project(sandbox, pid).name, store_project(sandbox, pid).access) == ("Class scratch", "public")
    copy = logged_in.run_line_magic("metafold", f"duplicate {pid} 'Student  copy' -o dup")
    assert logged_in.user_ns["dup"] is copy and store_project(sandbox, copy.iloc[0]["id"]).name == "Student  copy"
    logged_in.run_line_magic("metafold", f"rename {copy.iloc[0]['id']} Renamed --access org")
    record = store_project(sandbox, copy.iloc[0]["id"])
    assert (record.name, record.access) == ("Renamed", "org")
    wid = running_workflow()
    canceled = logged_in.run_line_magic("metafold", f"cancel {wid}")
    assert list(canceled["state"]) == ["canceled"] and sandbox.store.workflows[int(wid)].state == "canceled"


@pytest.mark.parametrize(("kind", "named"), [
    ("project", "'Sandbox playground' (your default project) with all its assets, jobs and workflows"),
    ("asset", "'cube.stl' (3,007 bytes) of project 3"),
    ("job", "'export-obj' (success) of project 3"),
    ("workflow", "(failure, 3 jobs) of project 3"),
])
def test_magic_delete_without_yes_refuses_and_names_it(logged_in, sandbox, capsys, kind, named):
    rid = {"project": "3", "asset": mf.assets(q="filename:cube.stl").iloc[0]["id"],
           "job": mf.jobs(q="name:export-obj").iloc[0]["id"], "workflow": mf.workflows(q="state:failure").iloc[0]["id"]}
    result, lines = error_lines(logged_in, capsys, f"%metafold delete {kind} {rid[kind]}")
    assert isinstance(result.error_in_exec, UsageError) and len(lines) == 1
    assert f"refused without --yes: this would delete {kind} {rid[kind]} {named}" in lines[0]
    assert f"%metafold delete {kind} {rid[kind]} --yes" in lines[0]
    assert sent(sandbox, "DELETE") == []
    assert rid[kind] in playground_ids(sandbox)[kind] if kind != "project" else store_project(sandbox, 3)


def test_magic_delete_with_yes_deletes_it(logged_in, sandbox):
    aid = mf.assets(q="filename:bracket.obj").iloc[0]["id"]
    row = logged_in.run_line_magic("metafold", f"delete asset {aid} --yes")
    assert list(row["filename"]) == ["bracket.obj"] and int(aid) not in sandbox.store.assets
    wid = mf.workflows().iloc[0]["id"]
    logged_in.run_line_magic("metafold", f"delete workflows {wid} --yes --project 3")
    assert int(wid) not in sandbox.store.workflows
    assert [r.status for r in sent(sandbox, "DELETE")] == [200, 200]


def test_magic_delete_prints_one_line_per_delete(logged_in, sandbox, capsys):
    asset = mf.assets(q="filename:bracket.obj").iloc[0]
    logged_in.run_line_magic("metafold", f"delete asset {asset['id']} --yes")
    assert capsys.readouterr().out.splitlines() == [
        f"Deleted asset {asset['id']} 'bracket.obj' ({asset['size']:,} bytes) of project 3."]


def test_magic_delete_default_project_clears_it_and_says_so(logged_in, sandbox, capsys):
    logged_in.run_line_magic("metafold", "delete project 3 --yes")
    out = capsys.readouterr().out.splitlines()
    assert out == ["Deleted project 3 'Sandbox playground'.",
                   "Project 3 was the default project; no default project is set now (choose one with "
                   "%metafold project ID or mf.session().use_project(ID))."]
    assert mf.session().project_id is None and store_project(sandbox, 3) is None
    result, lines = error_lines(logged_in, capsys, "%metafold assets")
    assert len(lines) == 1 and "no default project" in lines[0]


@pytest.mark.parametrize(("line", "message"), [
    ("create x --access secret", "access 'secret' is not one of private, public, org"),
    ("delete thing 3 --yes", "'thing' is not one of: project, asset, job, workflow"),
    ("delete project --yes", "usage: %metafold delete project|asset|job|workflow ID --yes"),
    ("delete project 3 --project 3 --yes", "takes the project's ID, not --project"),
    ("projects --yes", "--yes applies to delete only"),
    ("assets --access public", "--access applies to create, duplicate and rename only"),
    ("duplicate 3", "usage: %metafold duplicate ID NAME"),
    ("rename 3", "usage: %metafold rename ID NAME"),
    ("cancel", "usage: %metafold cancel WORKFLOW_ID"),
    ("delete asset 999999 --yes", "GET /projects/3/assets/999999 failed (HTTP 404): Resource does not exist"),
    ("cancel 1", "Workflow has already finished (success) — a finished workflow cannot be cancelled"),
])
def test_magic_lifecycle_mistakes_are_one_line(logged_in, sandbox, capsys, line, message):
    result, lines = error_lines(logged_in, capsys, "%metafold " + line)
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and message in lines[0], lines
    assert sent(sandbox, "DELETE") == [] and sent(sandbox, "POST", "/projects") == []
    assert len(logged_in.run_line_magic("metafold", "projects")) == 10  # the session stays usable


def test_magic_help_lists_the_lifecycle_subcommands(logged_in, capsys):
    logged_in.run_line_magic("metafold", "help")
    out = capsys.readouterr().out
    for sub in ("create", "duplicate", "rename", "cancel", "delete"):
        assert f"  {sub} " in out
    doc = logged_in.find_line_magic("metafold").__doc__
    assert "--access" in doc and "--yes" in doc


# -- completion -----------------------------------------------------------------------------------


def test_complete_lifecycle_subcommands_and_options(shell):
    assert {"delete", "duplicate"} <= set(complete(shell, "%metafold d"))
    assert {"create", "cancel"} <= set(complete(shell, "%metafold c"))
    assert set(complete(shell, "%metafold create x --")) == {"--access", "--out"}
    assert set(complete(shell, "%metafold create x --access ")) == {"private", "public", "org"}
    assert set(complete(shell, "%metafold delete --")) == {"--yes", "--project", "--out"}
    assert set(complete(shell, "%metafold delete ")) == {"project", "asset", "job", "workflow"}


def test_complete_lifecycle_ids(logged_in, sandbox):
    projects = set(mf.projects()["id"])
    for line in ("%metafold duplicate ", "%metafold rename ", "%metafold delete project "):
        assert set(complete(logged_in, line)) == projects, line
    ids = playground_ids(sandbox)
    for kind in ("asset", "job", "workflow"):
        assert sorted(complete(logged_in, f"%metafold delete {kind} ")) == ids[kind]
    assert sorted(complete(logged_in, "%metafold cancel ")) == ids["workflow"]
    other = mf.create_project("other").iloc[0]["id"]
    only = sandbox.store.add_asset_bytes(int(other), "only.stl", b"solid s\nendsolid s\n")
    assert complete(logged_in, f"%metafold delete asset --project {other} ") == [str(only.id)]


def test_complete_forgets_ids_after_a_write(logged_in, sandbox):
    assert "4" in complete(logged_in, "%metafold delete project ")
    logged_in.run_line_magic("metafold", "delete project 4 --yes")
    assert "4" not in complete(logged_in, "%metafold delete project ")
    row = logged_in.run_line_magic("metafold", "create fresh")
    assert row.iloc[0]["id"] in complete(logged_in, "%metafold rename ")
