"""IPython magics: ``%metafold_login``, ``%metafold SUBCOMMAND``, ``%%metafold run`` and ``%%metafold sweep``.

A thin layer: parse the line with ``magic_arguments`` (whose help is the ``%name?``
docstring), call the Python API, return the value (so ``df = %metafold projects``
works) and let IPython display it. Package errors become one ``UsageError`` line
(what failed, the HTTP status, the API's message, what to do) unless
``%config MetafoldMagics.short_errors = False``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Float

from . import frames, geometry, kernel_session, lifecycle, operations, studies
from .errors import ConfigError, MetafoldError, MissingCredentialsError
from .history import looks_secret, scrub_current_cell

SUBCOMMANDS: dict[str, str] = {
    "status": "show the session: where, as whom, project, token expiry",
    "logout": "forget the credentials and the token",
    "usage": "lifetime usage counts (DataFrame)",
    "quota": "remaining quota (DataFrame)",
    "license": "the licence (DataFrame)",
    "projects": "all projects (DataFrame; --sort, --q)",
    "project": "project [ID]: show the default project, or set it to ID",
    "assets": "assets of a project (DataFrame; --project | --all-projects, --sort, --q)",
    "jobs": "jobs of a project (DataFrame; --project | --all-projects, --sort, --q)",
    "workflows": "workflows of a project (DataFrame; --project | --all-projects, --sort, --q)",
    "get": "get PATH: raw JSON GET (DataFrame for a list of records, else a dict)",
    "download": "download ASSET_ID [DEST] [--overwrite]: stream an asset to disk, checked",
    "upload": "upload PATH: upload a file as an asset (one-row DataFrame)",
    "show": "show ASSET_ID: the mesh in 3D (rotate, zoom; a PNG where that cannot run; --max-faces N)",
    "metrics": "metrics [ASSET_ID...]: faces, watertight, volume, area, bounds of mesh assets (DataFrame)",
    "create": "create NAME [--access A]: create a project (one-row DataFrame)",
    "duplicate": "duplicate ID NAME [--access A]: copy a project into a new one",
    "rename": "rename ID NAME [--access A]: rename a project (and change its access)",
    "cancel": "cancel WORKFLOW_ID: cancel a running workflow",
    "delete": "delete project|asset|job|workflow ID --yes: delete it (says what, without --yes)",
    "run": "%%metafold run: run the cell's workflow YAML, return its jobs",
    "sweep": "%%metafold sweep --param KEY=V1,V2,...: run the cell's workflow for every combination",
    "help": "this list",
}
ALL_PROJECTS = ("assets", "jobs", "workflows")  # subcommands that take --all-projects
CELL_SUBCOMMANDS = ("run", "sweep")  # the cell body is a workflow definition
#: options of %metafold that only some subcommands take: (argparse dests, the message's
#: subject, where they apply, those subcommands)
_SCOPED_OPTIONS: tuple[tuple[tuple[str, ...], str, str, tuple[str, ...]], ...] = (
    (("param", "asset"), "--param and --asset apply", "%%metafold run and sweep", CELL_SUBCOMMANDS),
    (("concurrency",), "--concurrency applies", "%%metafold sweep", ("sweep",)),
    (("max_faces",), "--max-faces applies", "show", ("show",)),
    (("access",), "--access applies", "create, duplicate and rename", ("create", "duplicate", "rename")),
    (("yes",), "--yes applies", "delete", ("delete",)),
    (("all_projects",), "--all-projects applies", ", ".join(ALL_PROJECTS), ALL_PROJECTS),
    (("overwrite",), "--overwrite applies", "download", ("download",)),
)
SORT_FIELDS = {
    "projects": ("id", "user", "name", "created", "modified"),
    "assets": ("id", "filename", "size", "created", "modified"),
    "jobs": ("id", "name", "created", "started", "finished"),
    "workflows": ("id", "created", "started", "finished"),
}
_LOGIN_HELP = (
    "Secrets are never accepted on this line (IPython's history would keep them): put "
    "METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET in a .env file (or the environment), "
    "or use --prompt."
)
#: Shown next to the login form (and as the error of a run nobody can answer): how to log in without it.
WITHOUT_FORM = (
    "To log in without the form, set METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET in the environment "
    "or in a .env file next to the notebook, then run %metafold_login again; or try the embedded sandbox "
    "with %metafold_login --sandbox (METAFOLD_SANDBOX=1)."
)


def _subcommand_table() -> str:
    return "\n".join(f"  {name:<10} {text}" for name, text in SUBCOMMANDS.items())


@magics_class
class MetafoldMagics(Magics):
    """The Metafold magics; a Configurable, so ``%config MetafoldMagics`` lists its options."""

    short_errors = Bool(
        True, help="Show Metafold errors as one line instead of a traceback."
    ).tag(config=True)
    progress = Bool(
        True, help="Show progress bars for downloads, uploads and workflow runs."
    ).tag(config=True)
    completion_ttl = Float(
        30.0, help="Seconds that project and asset IDs fetched for tab completion are reused."
    ).tag(config=True)

    # -- %metafold_login ------------------------------------------------------------

    @magic_arguments()
    @argument("--env", metavar="PATH", help="read the credentials from this dotenv file (an error if missing)")
    @argument("--prompt", action="store_true", help="always ask, with the login form (getpass in a terminal)")
    @argument("--sandbox", action="store_true", help="log in to the embedded sandbox (no account needed)")
    @argument("--project", metavar="ID", help="default project for project-scoped calls")
    @argument("--auth-domain", metavar="D", help="auth service (a bare host means https://HOST)")
    @argument("--base-url", metavar="URL", help="API origin")
    @argument("--audience", metavar="A", help="audience of the token exchange")
    @argument("--remember", action="store_true", help="keep the token in the user cache (0600) across restarts")
    @line_magic
    def metafold_login(self, line: str = "") -> None:
        """Log in to Metafold for this kernel (every cell shares the session).

        Credentials come from the environment, then a .env file (--env PATH, else the
        nearest .env from the working directory up), then METAFOLD_SANDBOX=1, then a
        login form. Prints one status line; the token is refreshed automatically.
        """
        if looks_secret(line):
            scrub_current_cell(self.shell, line)
            raise UsageError(
                "refused: this line looks like it holds a secret, token or password, and IPython keeps "
                "every line in its history (this one was removed from it). " + _LOGIN_HELP
            )
        args = self._parse_login(line)
        options = {
            "env_file": args.env,
            "project": args.project,
            "auth_domain": args.auth_domain,
            "base_url": args.base_url,
            "audience": args.audience,
            "remember": args.remember,
        }
        self._call(lambda: self._login(args, options))

    def _login(self, args: Any, options: dict[str, Any]) -> None:
        if args.sandbox:
            session = kernel_session.login(sandbox=True, project=args.project, remember=args.remember)
        elif args.prompt:
            session = self._ask(options, asked=True)
        else:
            try:
                session = kernel_session.login(prompt=False, **options)
            except MissingCredentialsError:
                session = self._ask(options)
        if session is not None:
            print(session.describe())

    def _ask(self, options: dict[str, Any], asked: bool = False) -> Any:
        from .prompt import LoginForm, has_widget_frontend

        if kernel_session.headless():
            # nbclient, papermill, nbconvert --execute: a form would wait for nobody
            why = "--prompt was given" if asked else "no Metafold credentials were found"
            raise ConfigError(
                f"{why}, but this run (without a person at the frontend) cannot show a login form",
                hint=WITHOUT_FORM,
            )
        if not has_widget_frontend():
            return kernel_session.login(prompt=True, **options)
        from IPython.display import display

        kernel_session.prompt_settings(**options)  # refuse bad settings before anyone types a secret
        form = LoginForm(
            lambda cid, secret: kernel_session.login_with_prompted(cid, secret, **options),
            describe=lambda s: s.describe(),
        )
        display(form)
        print(WITHOUT_FORM)  # also read where the form cannot be shown (a saved or headless notebook)
        return None  # the form logs in when submitted

    # -- %metafold / %%metafold run ---------------------------------------------------------

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="also store the result in this variable")
    @argument("--project", metavar="ID", help="project for project-scoped subcommands")
    @argument("--sort", metavar="S", help="sort, e.g. name:1 or created:-1")
    @argument("--q", metavar="Q", help='filter, e.g. name:"Lattice*" AND access:!private')
    @argument("--all-projects", action="store_true",
              help="assets, jobs, workflows: every project's rows in one frame (fetched concurrently)")
    @argument("--overwrite", action="store_true", help="download: replace an existing file at DEST")
    @argument("--param", metavar="KEY=VALUE", action="append", default=[],
              help="run: a job parameter; sweep: KEY=V1,V2,... (every combination of the --param values runs)")
    @argument("--asset", metavar="KEY=ASSET_ID", action="append", default=[], help="run, sweep: a job input asset")
    @argument("--timeout", metavar="S", type=float, default=600.0,
              help="run, sweep: seconds to wait for each workflow (default 600)")
    @argument("--concurrency", metavar="N", type=int, default=None,
              help=f"sweep: workflows in flight at most (1..{studies.MAX_CONCURRENCY}, default "
                   f"{studies.DEFAULT_CONCURRENCY})")
    @argument("--max-faces", metavar="N", type=int, default=geometry.DEFAULT_MAX_FACES,
              help="show: reduce larger meshes to N faces (default 200000)")
    @argument("--access", metavar="A", help="create/duplicate/rename: private, public or org")
    @argument("--yes", action="store_true", help="delete: really delete (without it, delete only says what it would)")
    @argument("subcommand", nargs="?", default="help", help="one of: " + ", ".join(SUBCOMMANDS))
    @argument("args", nargs="*", help="arguments of the subcommand (ID, PATH, DEST, NAME, KIND)")
    @line_cell_magic
    def metafold(self, line: str = "", cell: str | None = None) -> Any:
        """Work with Metafold: DataFrames of your account, transfers, workflow runs, lifecycle.

        Lifecycle: create, duplicate, rename, cancel and delete (a delete needs --yes).
        Parameter studies: ``%%metafold sweep --param sample.thickness=0.5,1,1.5`` runs the cell's
        workflow once per combination of the --param values (numbers where they look like
        numbers) and returns one row per run, as ``mf.run_workflows`` does.
        """
        if looks_secret(line, random_words=False):
            scrub_current_cell(self.shell, line)
            raise UsageError("refused: this line looks like it holds a token or secret; " + _LOGIN_HELP)
        args = self._parse(self.metafold, line)
        name = args.subcommand
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise UsageError(f"unknown subcommand {name!r}; try one of: {', '.join(SUBCOMMANDS)} (see %metafold?)")
        if (name in CELL_SUBCOMMANDS) != (cell is not None):
            raise UsageError(
                f"{name} takes the workflow YAML as the cell body: start the cell with %%metafold {name}"
                if name in CELL_SUBCOMMANDS
                else f"%%metafold as a cell magic only runs workflows: %%metafold run or sweep (not {name!r})"
            )
        for dests, what, where, subcommands in _SCOPED_OPTIONS:
            given = any(getattr(args, d) != self.metafold.parser.get_default(d) for d in dests)
            if given and name not in subcommands:
                raise UsageError(f"{what} to {where} only")
        if args.out and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, not {args.out!r}")
        result = self._call(lambda: handler(args, cell) if name in CELL_SUBCOMMANDS else handler(args))
        if args.out:
            self.shell.user_ns[args.out] = result  # type: ignore[union-attr]  # a magic runs only in a shell
        return result

    # subcommands: thin calls into the Python API

    def _cmd_help(self, args: Any) -> None:
        print("%metafold SUBCOMMAND [options]\n" + _subcommand_table() + "\nDetails: %metafold?  and  %metafold_login?")

    def _cmd_status(self, args: Any) -> dict[str, Any]:
        return kernel_session.session().status()

    def _cmd_logout(self, args: Any) -> None:
        kernel_session.logout()
        print("Logged out of Metafold.")

    def _cmd_usage(self, args: Any) -> Any:
        return frames.usage()

    def _cmd_quota(self, args: Any) -> Any:
        return frames.quota()

    def _cmd_license(self, args: Any) -> Any:
        return frames.license()

    def _cmd_projects(self, args: Any) -> Any:
        return frames.projects(sort=args.sort, q=args.q)

    def _cmd_project(self, args: Any) -> Any:
        (pid,) = self._positional(args, "project [ID]", 0, 1) or (None,)
        if pid is not None:
            kernel_session.session().use_project(pid)
        return frames.project(pid or args.project)

    def _cmd_assets(self, args: Any) -> Any:
        return self._listing(frames.assets, args)

    def _cmd_jobs(self, args: Any) -> Any:
        return self._listing(frames.jobs, args)

    def _cmd_workflows(self, args: Any) -> Any:
        return self._listing(frames.workflows, args)

    def _listing(self, helper: Callable[..., Any], args: Any) -> Any:
        if not args.all_projects:
            return helper(project=args.project, sort=args.sort, q=args.q)
        from .fanout import PartialResultWarning

        # the rows that came back are shown, and each failed project in one line above them
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialResultWarning)
            frame = helper(project=args.project, sort=args.sort, q=args.q, all_projects=True, on_error="warn",
                           progress=self.progress)
        for warning in caught:
            if issubclass(warning.category, PartialResultWarning):
                print(f"⚠ {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        return frame

    def _cmd_get(self, args: Any) -> Any:
        (path,) = self._positional(args, "get PATH", 1, 1)
        params = frames.query_params(args.sort, args.q)
        session = kernel_session.session()
        body = session.get_json(session.api_url(path), params)  # only paths on the API origin
        if isinstance(body, list) and all(isinstance(item, dict) for item in body):
            import pandas as pd

            return pd.DataFrame(body)
        return body

    def _cmd_download(self, args: Any) -> Any:
        asset_id, *dest = self._positional(args, "download ASSET_ID [DEST] [--overwrite]", 1, 2)
        return operations.download_asset(asset_id, dest[0] if dest else None, args.project, progress=self.progress,
                                         overwrite=args.overwrite)

    def _cmd_upload(self, args: Any) -> Any:
        (path,) = self._positional(args, "upload PATH", 1, 1)
        return operations.upload_asset(path, args.project, progress=self.progress)

    def _cmd_show(self, args: Any) -> Any:
        (asset_id,) = self._positional(args, "show ASSET_ID [--max-faces N]", 1, 1)
        return geometry.show(asset_id, args.project, max_faces=args.max_faces)

    def _cmd_metrics(self, args: Any) -> Any:
        ids = self._positional(args, "metrics [ASSET_ID...]", 0, 10_000)
        return geometry.mesh_metrics(ids or None, args.project, progress=self.progress)

    # lifecycle: writes; the completer's cached IDs are dropped after each one

    def _cmd_create(self, args: Any) -> Any:
        words = self._positional(args, "create NAME [--access A]", 1, sys.maxsize)
        return self._wrote(lifecycle.create_project(" ".join(words), access=args.access or "private"))

    def _cmd_duplicate(self, args: Any) -> Any:
        source, *words = self._positional(args, "duplicate ID NAME [--access A]", 2, sys.maxsize)
        return self._wrote(lifecycle.duplicate_project(source, " ".join(words), access=args.access))

    def _cmd_rename(self, args: Any) -> Any:
        pid, *words = self._positional(args, "rename ID NAME [--access A]", 2, sys.maxsize)
        return self._wrote(lifecycle.update_project(pid, name=" ".join(words), access=args.access))

    def _cmd_cancel(self, args: Any) -> Any:
        (wid,) = self._positional(args, "cancel WORKFLOW_ID [--project ID]", 1, 1)
        return self._wrote(lifecycle.cancel_workflow(wid, args.project))

    def _cmd_delete(self, args: Any) -> Any:
        usage = "delete project|asset|job|workflow ID --yes [--project ID]"
        kind, rid = self._positional(args, usage, 2, 2)
        kind = kind.lower().removesuffix("s")
        if kind not in lifecycle.KINDS:
            raise UsageError(f"delete what? {args.args[0]!r} is not one of: {', '.join(lifecycle.KINDS)}; usage: "
                             f"%metafold {usage}")
        if kind == "project" and args.project:
            raise UsageError("delete project takes the project's ID, not --project")
        if not args.yes:
            what = lifecycle.describe(kind, lifecycle.lookup(kind, rid, args.project))
            if kind == "project":
                default = kernel_session.session().project_id
                what += " (your default project)" if default is not None and str(default) == rid else ""
                what += " with all its assets, jobs and workflows"
            line = f"%metafold delete {kind} {rid}" + (f" --project {args.project}" if args.project else "")
            raise UsageError(f"refused without --yes: this would delete {what}; to delete it, run: {line} --yes")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", lifecycle.DefaultProjectCleared)
            row = lifecycle.delete(kind, rid, args.project)
        print(f"Deleted {lifecycle.describe(kind, row)}.")
        for warning in caught:
            if issubclass(warning.category, lifecycle.DefaultProjectCleared):
                print(str(warning.message)[0].upper() + str(warning.message)[1:] + ".")
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        return self._wrote(row)

    def _wrote(self, result: Any) -> Any:
        completer = getattr(self, "completer", None)
        if completer is not None:
            completer.cache.clear()
        return result

    def _cmd_run(self, args: Any, cell: str) -> Any:
        self._positional(args, "run", 0, 0)
        parameters = _pairs(args.param, "--param KEY=VALUE")
        assets = _pairs(args.asset, "--asset KEY=ASSET_ID")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", operations.WorkflowFailedWarning)
            try:
                jobs = operations.run_workflow(cell, parameters or None, assets or None, project=args.project,
                                               timeout=args.timeout, progress=self.progress)
            except KeyboardInterrupt as exc:
                raise UsageError(str(exc) or "interrupted") from None
        _show_failures(caught)
        return jobs

    def _cmd_sweep(self, args: Any, cell: str) -> Any:
        self._positional(args, "sweep", 0, 0)
        axes = _sweep_values(args.param)
        if not axes:
            raise UsageError("sweep needs --param KEY=V1,V2,... (one run of the workflow is %%metafold run)")
        assets = _pairs(args.asset, "--asset KEY=ASSET_ID")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", operations.WorkflowFailedWarning)
            try:
                frame = studies.run_workflows(
                    cell, studies.grid(axes), assets=assets or None, project=args.project,
                    concurrency=args.concurrency, timeout=args.timeout, progress=self.progress,
                )
            except studies.StudyInterrupted as exc:
                if args.out:
                    self.shell.user_ns[args.out] = exc.frame  # type: ignore[union-attr]  # a magic runs only in a shell
                where = args.out if args.out else "sys.last_value.frame"
                error = UsageError(f"{exc.summary}; every run's row is in {where}")
                # IPython shows exactly UsageError (not a subclass) as one line, so the rows ride on it
                error.frame = exc.frame  # type: ignore[attr-defined]
                raise error from None
        _show_failures(caught)
        return frame

    # -- plumbing ----------------------------------------------------------------------

    def _parse(self, magic: Callable[..., Any], line: str) -> Any:
        # intermixed: options may come before, between or after the positionals
        # magic_arguments() attaches .parser to the function when it decorates it
        return magic.parser.parse_intermixed_args(_words(line))  # type: ignore[attr-defined]

    def _parse_login(self, line: str) -> Any:
        """Parse a %metafold_login line, which takes no positional words at all.

        Words that are neither options nor their values may be credentials typed on the
        line (``%metafold_login myid hunter2``): the line is removed from the history
        before it is refused, and the words are not repeated.
        """
        try:
            words = _words(line)
        except UsageError:
            scrub_current_cell(self.shell, line)  # an unclosed quote may hide anything
            raise UsageError("refused: this line cannot be parsed (an unclosed quote?) and was removed from "
                             "IPython's history. " + _LOGIN_HELP) from None
        args, extra = self.metafold_login.parser.parse_known_intermixed_args(words)
        if extra:
            scrub_current_cell(self.shell, line)
            raise UsageError(
                f"refused: %metafold_login takes no positional arguments or unknown options ({len(extra)} "
                "given); in case they were credentials, the line was removed from IPython's history. "
                + _LOGIN_HELP
            )
        return args

    @staticmethod
    def _positional(args: Any, usage: str, least: int, most: int) -> list[str]:
        given = list(args.args)
        if not least <= len(given) <= most:
            raise UsageError(f"usage: %metafold {usage}")
        return given

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except MetafoldError as exc:
            if not self.short_errors:
                raise
            raise UsageError(one_line(exc)) from None


def one_line(exc: MetafoldError) -> str:
    """What failed, the status and the API's message, then what to do: ``str(exc)`` on one line
    (it ends with the hint already)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _words(line: str) -> list[str]:
    from IPython.utils.process import arg_split

    try:
        return arg_split(line, posix=True)
    except ValueError as exc:  # shlex: "No closing quotation"
        raise UsageError(f"cannot parse this line: {str(exc).lower()}; check the quotes") from None


def _show_failures(caught: list[warnings.WarningMessage]) -> None:
    """Failed workflows as one ⚠ line each on stderr; other warnings as usual."""
    for warning in caught:
        if issubclass(warning.category, operations.WorkflowFailedWarning):
            print(f"⚠ {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def _sweep_values(items: list[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` per --param -> {key: values}; numbers where they look like numbers.

    Commas inside brackets belong to the value (``sample.size=[10,10,10],[20,20,20]`` is two values).
    """
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"expected --param KEY=V1,V2,..., got {item!r}")
        if key in axes:
            raise UsageError(f"--param {key} is given twice: list its values once, KEY=V1,V2,...")
        values = _split_top_level(text)
        if not all(values):
            raise UsageError(f"--param {key}: empty value in {text!r} (write KEY=V1,V2,...)")
        axes[key] = [studies.value_from_text(v) for v in values]
    return axes


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(depth - 1, 0)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def _pairs(items: list[str], usage: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected {usage}, got {item!r}")
        pairs[key] = value
    return pairs



# -- extension hooks ----------------------------------------------------------------------


def load(shell: Any) -> MetafoldMagics:
    """Register the magics and the completer once per shell (``%reload_ext`` is a no-op)."""
    for configurable in shell.configurables:
        if isinstance(configurable, MetafoldMagics):
            return configurable
    magics = MetafoldMagics(shell=shell, parent=shell)
    shell.register_magics(magics)  # also lists it in shell.configurables, for %config
    from .completion import install

    install(shell, magics)
    return magics


def unload(shell: Any) -> None:
    """Remove the magics and the completer."""
    from .completion import uninstall

    uninstall(shell)
    for configurable in list(shell.configurables):
        if isinstance(configurable, MetafoldMagics):
            shell.configurables.remove(configurable)
    shell.magics_manager.registry.pop(MetafoldMagics.__name__, None)
    for kind in ("line", "cell"):
        table = shell.magics_manager.magics[kind]
        for name in ("metafold_login", "metafold"):
            owner = getattr(table.get(name), "__self__", None)
            if isinstance(owner, MetafoldMagics):
                del table[name]
