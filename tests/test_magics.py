"""The magics in a real InteractiveShell against the sandbox."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from helpers import leaks
from IPython.core.error import UsageError
from test_operations import FAILING_WORKFLOW, OK_WORKFLOW

import metafold_jupyter as mf
from metafold_jupyter.magics import MetafoldMagics


@pytest.fixture
def shell(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = str(tmp_path / "history.sqlite")
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    ip.history_manager.db_cache_size = 0
    ip.extension_manager.load_extension("metafold_jupyter")
    yield ip
    ip.extension_manager.unload_extension("metafold_jupyter")
    ip.history_manager.end_session()
    InteractiveShell.clear_instance()


@pytest.fixture
def dotenv(sandbox, tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        f"METAFOLD_CLIENT_ID={sandbox.client_id}\nMETAFOLD_CLIENT_SECRET={sandbox.client_secret}\n"
        f"METAFOLD_AUTH_DOMAIN={sandbox.url}\nMETAFOLD_BASE_URL={sandbox.url}\n"
        f"METAFOLD_PROJECT_ID={sandbox.default_project_id}\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def logged_in(shell, dotenv, capsys):
    shell.run_line_magic("metafold_login", "")
    capsys.readouterr()
    return shell


def error_lines(shell, capsys, cell):
    """Run a cell as a user would and return what it printed (stdout + stderr lines)."""
    result = shell.run_cell(cell, store_history=True)
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    return result, lines


def history_db_sources(shell):
    shell.history_manager.writeout_cache()
    db = sqlite3.connect(shell.history_manager.hist_file)
    try:
        return [row for r in db.execute("SELECT source, source_raw FROM history") for row in r]
    finally:
        db.close()


# -- login ------------------------------------------------------------------------------


def test_login_from_dotenv_prints_one_status_line(shell, dotenv, sandbox, capsys):
    shell.run_line_magic("metafold_login", "")
    (line,) = capsys.readouterr().out.splitlines()
    # the sandbox's public client ID marks the session as a sandbox one
    assert line.startswith("Logged in to the Metafold sandbox at " + sandbox.url)
    assert f"credentials from {dotenv}" in line and f"project {sandbox.default_project_id}" in line
    assert "token valid until" in line and sandbox.client_id not in line
    assert leaks([line], [sandbox.client_secret, *sandbox.issued_tokens]) == []


def test_login_sandbox_says_sandbox(shell, capsys):
    try:
        shell.run_line_magic("metafold_login", "--sandbox")
        out = capsys.readouterr().out
        assert out.startswith("Logged in to the embedded Metafold sandbox at http://127.0.0.1:")
    finally:
        from metafold_jupyter import kernel_session

        kernel_session.reset_session()


def test_login_missing_env_file_one_line(shell, capsys, tmp_path):
    result, lines = error_lines(shell, capsys, "%metafold_login --env missing.env")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "env file" in lines[0] and "does not exist" in lines[0]


def test_login_wrong_secret_one_line(shell, capsys, sandbox, tmp_path):
    (tmp_path / "bad.env").write_text(
        f"METAFOLD_CLIENT_ID={sandbox.client_id}\nMETAFOLD_CLIENT_SECRET=wrong-wrong\n"
        f"METAFOLD_AUTH_DOMAIN={sandbox.url}\nMETAFOLD_BASE_URL={sandbox.url}\n")
    (tmp_path / "bad.env").chmod(0o600)
    result, lines = error_lines(shell, capsys, "%metafold_login --env bad.env")
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "Unauthorized" in lines[0]
    assert "METAFOLD_CLIENT_SECRET" in lines[0] and "wrong-wrong" not in lines[0]
    assert "Traceback" not in lines[0]


@pytest.mark.parametrize("line", [
    "--client-secret Zq8xY2vB7nM4kL1pR6tW9sD3fG5hJ0aQ",
    "client_secret=Zq8xY2vB7nM4kL1pR6tW9sD3fG5hJ0aQ",
    "--project 3 Zq8xY2vB7nM4kL1pR6tW9sD3fG5hJ0aQxx",
    "--password hunter2isnotgood",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlZm9v",
])
def test_login_refuses_secrets_and_scrubs_history(shell, capsys, line):
    secret = line.split()[-1].split("=")[-1]
    result, lines = error_lines(shell, capsys, f"%metafold_login {line}")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "refused" in lines[0] and ".env" in lines[0] and secret not in lines[0]
    ns = shell.user_ns
    kept = [*ns["In"], *ns["_ih"], ns.get("_i", ""), ns.get("_i1", ""), shell.history_manager._i00, *shell.history_manager.input_hist_raw,
            *history_db_sources(shell)]
    assert not any(secret in text for text in kept)
    assert any("%metafold_login" in text for text in kept)  # the rest of the line is still there
    shell.run_cell("x = 1")
    assert not any(secret in str(ns.get(k, "")) for k in ("_i", "_ii", "_iii"))


def test_login_help_is_the_docstring(shell):
    doc = shell.find_line_magic("metafold_login").__doc__
    assert "--env PATH" in doc and "--prompt" in doc and "--sandbox" in doc


# -- the form and getpass ------------------------------------------------------------


def enter(field):
    """What the frontend sends when Enter is pressed in a text field."""
    field._handle_custom_msg({"event": "submit"}, [])


def test_login_form_logs_in_and_clears_the_secret(shell, sandbox, monkeypatch):
    import ipywidgets

    from metafold_jupyter import prompt

    shown = []
    monkeypatch.setattr(prompt, "has_widget_frontend", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    shell.run_line_magic("metafold_login", f"--prompt --auth-domain {sandbox.url} --base-url {sandbox.url}")
    (form,) = shown
    form.client_id.set_state({"value": sandbox.client_id})
    form.client_secret.set_state({"value": "not-the-secret"})  # focus left the field: no login yet
    assert sandbox.token_exchanges == 0 and "✗" not in form.status.value
    enter(form.client_secret)
    assert "✗" in form.status.value and "HTTP 401" in form.status.value
    assert form.client_secret.value == "" and not form.button.disabled  # try again
    form.client_secret.set_state({"value": sandbox.client_secret})
    enter(form.client_secret)
    assert form.client_secret.value == ""
    assert "✓ Logged in" in form.status.value and "credentials from prompt" in form.status.value
    assert form.button.disabled and form.client_secret.disabled
    assert mf.session().status()["source"] == "prompt"
    state = json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False))
    assert leaks([state, form.status.value], [sandbox.client_secret, *sandbox.issued_tokens]) == []


def make_form(sandbox):
    from metafold_jupyter import kernel_session
    from metafold_jupyter.prompt import LoginForm

    return LoginForm(lambda cid, secret: kernel_session.login_with_prompted(
        cid, secret, auth_domain=sandbox.url, base_url=sandbox.url), describe=lambda s: s.describe())


def test_login_form_click_after_the_secret_arrives(sandbox):
    form = make_form(sandbox)
    form.client_id.set_state({"value": sandbox.client_id})
    form.client_secret.set_state({"value": sandbox.client_secret})  # sent when the button takes focus
    form.button.click()
    form.button.click()  # a double click logs in once, and says nothing wrong
    assert form.session is not None and "✓ Logged in" in form.status.value
    assert sandbox.token_exchanges == 1 and form.client_secret.value == ""


def test_login_form_click_before_the_secret_arrives(sandbox):
    form = make_form(sandbox)
    form.client_id.set_state({"value": sandbox.client_id})
    form.button.click()  # the click overtook the secret's sync
    assert form.session is None and "✗" not in form.status.value
    form.client_secret.set_state({"value": sandbox.client_secret})
    assert form.session is not None and "✓ Logged in" in form.status.value


def test_login_form_click_without_a_secret_says_what_is_missing(sandbox, monkeypatch):
    from metafold_jupyter import prompt

    monkeypatch.setattr(prompt, "SECRET_GRACE", 0.05)
    form = make_form(sandbox)
    form.client_id.set_state({"value": sandbox.client_id})
    form.button.click()
    import time

    time.sleep(0.3)
    assert "Both the client ID and the secret are needed" in form.status.value
    assert sandbox.token_exchanges == 0


def test_login_form_concurrent_requests_log_in_once(sandbox):
    import threading

    form = make_form(sandbox)
    form.client_id.set_state({"value": sandbox.client_id})
    form.client_secret.set_state({"value": sandbox.client_secret})
    threads = [threading.Thread(target=form.request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sandbox.token_exchanges == 1 and "✓ Logged in" in form.status.value


def test_login_form_secret_is_not_echoed():
    from metafold_jupyter.prompt import _secret_field

    field = _secret_field()
    assert field.trait_metadata("value", "echo_update") is False


def test_login_getpass_fallback_without_widgets(shell, sandbox, monkeypatch, capsys):
    from metafold_jupyter import kernel_session, prompt

    monkeypatch.setattr(prompt, "has_widget_frontend", lambda: False)
    monkeypatch.setattr(kernel_session, "_can_prompt", lambda: True)
    monkeypatch.setattr("builtins.input", lambda p="": sandbox.client_id)
    monkeypatch.setattr("getpass.getpass", lambda p="": sandbox.client_secret)
    shell.run_line_magic("metafold_login", f"--auth-domain {sandbox.url} --base-url {sandbox.url}")
    assert "credentials from prompt" in capsys.readouterr().out


# -- %metafold subcommands -------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["usage", "quota", "license", "projects", "project", "assets", "jobs", "workflows"])
def test_subcommands_return_dataframes(logged_in, sub):
    df = logged_in.run_line_magic("metafold", sub)
    assert isinstance(df, pd.DataFrame) and len(df) >= 1
    pd.testing.assert_frame_equal(df, getattr(mf, sub)())


def test_status_returns_the_status_dict(logged_in, sandbox):
    st = logged_in.run_line_magic("metafold", "status")
    assert isinstance(st, dict) and st["logged_in"] and st["project_id"] == sandbox.default_project_id
    html = st._repr_html_()
    assert "<table>" in html and "expires_at" in html and "UTC" in html
    assert leaks([html, repr(st)], [sandbox.client_secret, *sandbox.issued_tokens]) == []


def test_assignment_and_out_option(logged_in):
    logged_in.run_cell("df = %metafold projects --sort name:1")
    df = logged_in.user_ns["df"]
    assert list(df["name"]) == sorted(df["name"], key=str.lower)
    logged_in.run_cell("%metafold jobs -o my_jobs --q state:failure")
    assert set(logged_in.user_ns["my_jobs"]["state"]) == {"failure"}


def test_q_with_quotes_and_spaces(logged_in):
    df = logged_in.run_line_magic("metafold", """projects --q 'name:"Sandbox playground"'""")
    assert list(df["name"]) == ["Sandbox playground"]


def test_project_sets_the_default(logged_in, sandbox):
    other = mf.projects()["id"].iloc[-1]
    df = logged_in.run_line_magic("metafold", f"project {other}")
    assert list(df["id"]) == [other] and mf.session().project_id == other
    assert len(logged_in.run_line_magic("metafold", "assets --project " + sandbox.default_project_id)) >= 3


def test_get_returns_frame_for_lists_and_dict_otherwise(logged_in):
    assert isinstance(logged_in.run_line_magic("metafold", "get /projects"), pd.DataFrame)
    assert logged_in.run_line_magic("metafold", "get user/license")["product"]


def test_download_and_upload(logged_in, tmp_path):
    cube = mf.assets(q="filename:cube.stl").iloc[0]
    path = logged_in.run_line_magic("metafold", f"download {cube['id']} {tmp_path / 'dl'}/")
    assert path == tmp_path / "dl" / "cube.stl" and path.stat().st_size == cube["size"]
    (tmp_path / "mine.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    row = logged_in.run_line_magic("metafold", f"upload {tmp_path / 'mine.obj'}")
    assert list(row["filename"]) == ["mine.obj"]


@pytest.mark.answer_shapes("live", "reference")
def test_quota_403_is_one_line_pointing_at_quota_and_license(logged_in, sandbox, capsys, tmp_path):
    sandbox.set_quota(**{"import": 0})
    logged_in.run_line_magic("config", "MetafoldMagics.progress = False")
    (tmp_path / "over.obj").write_text("v 0 0 0\n")
    result, lines = error_lines(logged_in, capsys, f"%metafold upload {tmp_path / 'over.obj'}")
    assert len(lines) == 1, lines
    assert "HTTP 403" in lines[0] and "Import quota exceeded" in lines[0]  # the API's own message, either shape
    assert "usage limit is reached" in lines[0]
    assert "%metafold quota" in lines[0] and "%metafold license" in lines[0]
    assert isinstance(logged_in.run_line_magic("metafold", "quota"), pd.DataFrame)  # the session stays usable


def test_help_lists_subcommands(logged_in, capsys):
    logged_in.run_line_magic("metafold", "help")
    out = capsys.readouterr().out
    for sub in ("status", "projects", "download", "upload", "run"):
        assert sub in out
    assert "--sort" in logged_in.find_line_magic("metafold").__doc__


def test_logout_then_calls_are_one_line_errors(logged_in, capsys):
    logged_in.run_line_magic("metafold", "logout")
    assert "Logged out" in capsys.readouterr().out
    result, lines = error_lines(logged_in, capsys, "%metafold projects")
    assert len(lines) == 1 and "not logged in" in lines[0] and "%metafold_login" in lines[0]


def test_call_before_login_is_one_line(shell, capsys):
    result, lines = error_lines(shell, capsys, "%metafold usage")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "not logged in" in lines[0]


def test_404_is_one_line_and_session_stays_usable(logged_in, capsys):
    result, lines = error_lines(logged_in, capsys, "%metafold project 999999")
    assert len(lines) == 1
    assert "GET /projects/999999 failed (HTTP 404): Resource does not exist" in lines[0] and "check the ID" in lines[0]
    assert len(logged_in.run_line_magic("metafold", "projects"))


def test_unknown_subcommand_is_one_line(logged_in, capsys):
    result, lines = error_lines(logged_in, capsys, "%metafold frobnicate")
    assert len(lines) == 1 and "unknown subcommand 'frobnicate'" in lines[0]


def test_bad_option_is_a_usage_error(logged_in):
    with pytest.raises(UsageError):
        logged_in.run_line_magic("metafold", "projects --nope")
    with pytest.raises(UsageError, match="usage: %metafold download"):
        logged_in.run_line_magic("metafold", "download")
    with pytest.raises(UsageError, match="cell body"):
        logged_in.run_line_magic("metafold", "run")


def test_short_errors_off_shows_the_traceback(logged_in, capsys):
    logged_in.run_line_magic("config", "MetafoldMagics.short_errors = False")
    result, lines = error_lines(logged_in, capsys, "%metafold project 999999")
    assert len(lines) > 3 and any("APIError" in line for line in lines)


def test_config_lists_the_options(logged_in, capsys):
    logged_in.run_line_magic("config", "MetafoldMagics")
    out = capsys.readouterr().out
    assert "short_errors" in out and "progress" in out and "completion_ttl" in out


# -- %%metafold run --------------------------------------------------------------------------------


@pytest.mark.answer_shapes("live", "reference")
def test_cell_magic_runs_a_workflow(logged_in):
    cube = mf.assets(q="filename:cube.stl").iloc[0]["id"]
    jobs = logged_in.run_cell_magic(
        "metafold", f"run --param sample.resolution=32 --asset preprocess.mesh={cube} -o run_jobs", OK_WORKFLOW)
    assert list(jobs["name"]) == ["preprocess", "sample", "remesh"] and set(jobs["state"]) == {"success"}
    assert logged_in.user_ns["run_jobs"] is jobs
    assert jobs.set_index("name").loc["sample", "inputs"]["params"]["resolution"] == "32"


@pytest.mark.answer_shapes("live", "reference")
def test_cell_magic_failure_prints_the_job_error(logged_in, capsys):
    jobs = logged_in.run_cell_magic("metafold", "run", FAILING_WORKFLOW)
    err = capsys.readouterr().err
    assert "explode" in err and "Simulated failure" in err
    assert "failure" in set(jobs["state"])


@pytest.mark.answer_shapes("live", "reference")
def test_cell_magic_timeout_is_one_line(logged_in, capsys):
    logged_in.run_line_magic("config", "MetafoldMagics.progress = False")
    result, lines = error_lines(logged_in, capsys,
                                "%%metafold run --timeout 1 --param sandbox.duration=20\n" + OK_WORKFLOW)
    assert len(lines) == 1 and "did not finish within 1 s" in lines[0]


# -- extension life cycle and completion ---------------------------------------------------------


def test_reload_is_idempotent(logged_in):
    logged_in.run_line_magic("reload_ext", "metafold_jupyter")
    logged_in.run_line_magic("reload_ext", "metafold_jupyter")
    logged_in.run_line_magic("load_ext", "metafold_jupyter")
    assert sum(isinstance(c, MetafoldMagics) for c in logged_in.configurables) == 1
    ours = [m for m in logged_in.Completer.custom_matchers
            if getattr(m, "matcher_identifier", "") == "metafold_jupyter.completion"]
    assert len(ours) == 1
    assert len(logged_in.run_line_magic("metafold", "projects"))


def test_unload_removes_the_magics(shell):
    shell.extension_manager.unload_extension("metafold_jupyter")
    assert shell.find_line_magic("metafold") is None and shell.find_line_magic("metafold_login") is None
    shell.extension_manager.load_extension("metafold_jupyter")
    assert shell.find_line_magic("metafold") is not None


def complete(shell, line):
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in shell.Completer.completions(line, len(line))]


def test_complete_subcommands_and_options(shell):
    assert {"projects", "project"} <= set(complete(shell, "%metafold pro"))
    assert "--sort" in complete(shell, "%metafold projects --so")
    assert "name:1" in complete(shell, "%metafold projects --sort na")
    assert "--param" in complete(shell, "%%metafold run --pa")


def test_complete_ids_lazily(logged_in, sandbox):
    ids = set(mf.projects()["id"])
    found = set(complete(logged_in, "%metafold project "))
    assert found == ids
    calls = len([r for r in sandbox.requests if r.path == "/projects"])
    complete(logged_in, "%metafold project ")  # cached: no second fetch
    assert len([r for r in sandbox.requests if r.path == "/projects"]) == calls
    assets = set(mf.assets()["id"])
    assert set(complete(logged_in, "%metafold download ")) == assets


def test_complete_never_blocks_long(logged_in, sandbox, monkeypatch):
    import time

    # jedi's first run loads its grammar (1-2 s on a loaded machine); it is not what is timed here
    monkeypatch.setattr(logged_in.Completer, "use_jedi", False)
    sandbox.inject("/projects", delay=5)
    started = time.monotonic()
    complete(logged_in, "%metafold project ")
    assert time.monotonic() - started < 1.5  # under the fetch's 2 s read timeout: it did not wait


@pytest.mark.parametrize("line", [
    "--env ~/secrets/metafold.env",
    "--project 12 --base-url https://api.metafold3d.com/",
    "--auth-domain metafold3d.us.auth0.com --audience https://api.metafold3d.com",
])
def test_login_lines_without_secrets_are_not_refused(line):
    from metafold_jupyter.history import looks_secret

    assert not looks_secret(line)


def test_metafold_lines_with_long_names_are_not_refused(logged_in):
    from metafold_jupyter.history import looks_secret

    line = "assets --q filename:heat_exchanger_core_v2_final_2025.stl"
    assert not looks_secret(line, random_words=False)
    assert len(logged_in.run_line_magic("metafold", line)) == 0


# -- issue 9: positional words on the login line, parse errors, --overwrite, hints, headless -----------


@pytest.mark.parametrize("line", ["myclientid hunter2-password", "--project 3 myclientid hunter2", "hunter2",
                                  "--client-id x --client-secret hunter2"])
def test_login_positional_words_are_refused_and_scrubbed(shell, capsys, line):
    result, lines = error_lines(shell, capsys, f"%metafold_login {line}")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "refused" in lines[0] and "hunter2" not in lines[0]
    kept = [*shell.user_ns["In"], *shell.history_manager.input_hist_raw, shell.user_ns.get("_i1", ""),
            *history_db_sources(shell)]
    assert not any("hunter2" in text for text in kept)
    assert any("%metafold_login" in text for text in kept)


def test_login_line_with_an_unclosed_quote_is_refused_and_scrubbed(shell, capsys):
    result, lines = error_lines(shell, capsys, "%metafold_login --project 'hunter2 secretish")
    assert isinstance(result.error_in_exec, UsageError) and len(lines) == 1 and "cannot be parsed" in lines[0]
    assert not any("hunter2" in text for text in [*shell.history_manager.input_hist_raw, *history_db_sources(shell)])


def test_unbalanced_quote_is_a_usage_error(logged_in, capsys):
    result, lines = error_lines(logged_in, capsys, """%metafold projects --q name:"unbalanced""")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "check the quotes" in lines[0] and "Traceback" not in lines[0]
    # quoted for the shell but unbalanced for the API: the API's own one-line 400
    result, lines = error_lines(logged_in, capsys, """%metafold projects --q 'name:"unbalanced'""")
    assert isinstance(result.error_in_exec, UsageError) and len(lines) == 1 and "HTTP 400" in lines[0]


def test_download_overwrite_option(logged_in, tmp_path, capsys):
    cube = mf.assets(q="filename:cube.stl").iloc[0]
    (tmp_path / "cube.stl").write_text("mine")
    result, lines = error_lines(logged_in, capsys, f"%metafold download {cube['id']}")
    assert len(lines) == 1 and "already exists" in lines[0] and "--overwrite" in lines[0]
    assert (tmp_path / "cube.stl").read_text() == "mine"
    path = logged_in.run_line_magic("metafold", f"download {cube['id']} --overwrite")
    assert path.stat().st_size == cube["size"]
    with pytest.raises(UsageError, match="--overwrite applies to download only"):
        logged_in.run_line_magic("metafold", "projects --overwrite")


def test_error_lines_show_the_hint_once(logged_in, capsys):
    logged_in.run_line_magic("metafold", "logout")
    capsys.readouterr()
    result, lines = error_lines(logged_in, capsys, "%metafold projects")
    (line,) = lines
    assert line.count("%metafold_login") == 1 and line.endswith("run %metafold_login (or mf.login()) first")


def test_login_form_shows_the_hint_once_and_how_to_log_in_without_it(shell, sandbox, monkeypatch, capsys):
    from metafold_jupyter import prompt

    shown = []
    monkeypatch.setattr(prompt, "has_widget_frontend", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    shell.run_line_magic("metafold_login", f"--auth-domain {sandbox.url} --base-url {sandbox.url}")
    (form,) = shown
    out = capsys.readouterr().out
    assert "METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET" in out and ".env" in out and "--sandbox" in out
    form.client_id.set_state({"value": sandbox.client_id})
    form.client_secret.set_state({"value": "not-the-secret"})
    enter(form.client_secret)
    assert form.status.value.count("check METAFOLD_CLIENT_ID") == 1


def test_headless_run_refuses_the_form_with_one_line(shell, sandbox, monkeypatch, capsys):
    from metafold_jupyter import kernel_session, prompt

    shown = []
    monkeypatch.setattr(prompt, "has_widget_frontend", lambda: True)
    monkeypatch.setattr(kernel_session, "headless", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    result, lines = error_lines(shell, capsys, "%metafold_login")
    assert shown == [] and isinstance(result.error_in_exec, UsageError)
    assert len(lines) == 1 and "cannot show a login form" in lines[0] and "--sandbox" in lines[0]
