"""IPython magics: ``%metafold_login``, ``%metafold SUBCOMMAND`` and ``%%metafold run``.

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

from . import frames, geometry, kernel_session, operations
from .errors import MetafoldError, MissingCredentialsError
from .history import looks_secret, scrub_current_cell

SUBCOMMANDS: dict[str, str] = {
    "status": "show the session: where, as whom, project, token expiry",
    "logout": "forget the credentials and the token",
    "usage": "lifetime usage counts (DataFrame)",
    "quota": "remaining quota (DataFrame)",
    "license": "the licence (DataFrame)",
    "projects": "all projects (DataFrame; --sort, --q)",
    "project": "project [ID]: show the default project, or set it to ID",
    "assets": "assets of a project (DataFrame; --project, --sort, --q)",
    "jobs": "jobs of a project (DataFrame; --project, --sort, --q)",
    "workflows": "workflows of a project (DataFrame; --project, --sort, --q)",
    "get": "get PATH: raw JSON GET (DataFrame for a list of records, else a dict)",
    "download": "download ASSET_ID [DEST]: stream an asset to disk, checked",
    "upload": "upload PATH: upload a file as an asset (one-row DataFrame)",
    "show": "show ASSET_ID: the mesh in 3D (rotate, zoom; a PNG where that cannot run; --max-faces N)",
    "metrics": "metrics [ASSET_ID...]: faces, watertight, volume, area, bounds of mesh assets (DataFrame)",
    "run": "%%metafold run: run the cell's workflow YAML, return its jobs",
    "help": "this list",
}
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
        args = self._parse(self.metafold_login, line)
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
            session = self._ask(options)
        else:
            try:
                session = kernel_session.login(prompt=False, **options)
            except MissingCredentialsError:
                session = self._ask(options)
        if session is not None:
            print(session.describe())

    def _ask(self, options: dict[str, Any]) -> Any:
        from .prompt import LoginForm, has_widget_frontend

        if not has_widget_frontend():
            return kernel_session.login(prompt=True, **options)
        from IPython.display import display

        form = LoginForm(
            lambda cid, secret: kernel_session.login_with_prompted(cid, secret, **options),
            describe=lambda s: s.describe(),
        )
        display(form)
        return None  # the form logs in when submitted

    # -- %metafold / %%metafold run ---------------------------------------------------------

    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="also store the result in this variable")
    @argument("--project", metavar="ID", help="project for project-scoped subcommands")
    @argument("--sort", metavar="S", help="sort, e.g. name:1 or created:-1")
    @argument("--q", metavar="Q", help='filter, e.g. name:"Lattice*" AND access:!private')
    @argument("--param", metavar="KEY=VALUE", action="append", default=[], help="run: a job parameter")
    @argument("--asset", metavar="KEY=ASSET_ID", action="append", default=[], help="run: a job input asset")
    @argument("--timeout", metavar="S", type=float, default=600.0, help="run: seconds to wait (default 600)")
    @argument("--max-faces", metavar="N", type=int, default=geometry.DEFAULT_MAX_FACES,
              help="show: reduce larger meshes to N faces (default 200000)")
    @argument("subcommand", nargs="?", default="help", help="one of: " + ", ".join(SUBCOMMANDS))
    @argument("args", nargs="*", help="arguments of the subcommand (ID, PATH, DEST)")
    @line_cell_magic
    def metafold(self, line: str = "", cell: str | None = None) -> Any:
        """Work with Metafold: DataFrames of your account, transfers and workflow runs."""
        if looks_secret(line, random_words=False):
            scrub_current_cell(self.shell, line)
            raise UsageError("refused: this line looks like it holds a token or secret; " + _LOGIN_HELP)
        args = self._parse(self.metafold, line)
        name = args.subcommand
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise UsageError(f"unknown subcommand {name!r}; try one of: {', '.join(SUBCOMMANDS)} (see %metafold?)")
        if (name == "run") != (cell is not None):
            raise UsageError(
                "run takes the workflow YAML as the cell body: start the cell with %%metafold run"
                if name == "run"
                else f"%%metafold as a cell magic only runs workflows: %%metafold run (not {name!r})"
            )
        if (args.param or args.asset) and name != "run":
            raise UsageError("--param and --asset apply to %%metafold run only")
        if args.max_faces != geometry.DEFAULT_MAX_FACES and name != "show":
            raise UsageError("--max-faces applies to show only")
        result = self._call(lambda: handler(args, cell) if name == "run" else handler(args))
        if args.out:
            if not args.out.isidentifier():
                raise UsageError(f"-o needs a variable name, not {args.out!r}")
            self.shell.user_ns[args.out] = result
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
        return frames.assets(project=args.project, sort=args.sort, q=args.q)

    def _cmd_jobs(self, args: Any) -> Any:
        return frames.jobs(project=args.project, sort=args.sort, q=args.q)

    def _cmd_workflows(self, args: Any) -> Any:
        return frames.workflows(project=args.project, sort=args.sort, q=args.q)

    def _cmd_get(self, args: Any) -> Any:
        (path,) = self._positional(args, "get PATH", 1, 1)
        params = frames.query_params(args.sort, args.q)
        body = kernel_session.session().get_json(path if path.startswith("/") else "/" + path, params)
        if isinstance(body, list) and all(isinstance(item, dict) for item in body):
            import pandas as pd

            return pd.DataFrame(body)
        return body

    def _cmd_download(self, args: Any) -> Any:
        asset_id, *dest = self._positional(args, "download ASSET_ID [DEST]", 1, 2)
        return operations.download_asset(asset_id, dest[0] if dest else None, args.project, progress=self.progress)

    def _cmd_upload(self, args: Any) -> Any:
        (path,) = self._positional(args, "upload PATH", 1, 1)
        return operations.upload_asset(path, args.project, progress=self.progress)

    def _cmd_show(self, args: Any) -> Any:
        (asset_id,) = self._positional(args, "show ASSET_ID [--max-faces N]", 1, 1)
        return geometry.show(asset_id, args.project, max_faces=args.max_faces)

    def _cmd_metrics(self, args: Any) -> Any:
        ids = self._positional(args, "metrics [ASSET_ID...]", 0, 10_000)
        return geometry.mesh_metrics(ids or None, args.project, progress=self.progress)

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
        for warning in caught:
            if issubclass(warning.category, operations.WorkflowFailedWarning):
                print(f"⚠ {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        return jobs

    # -- plumbing ----------------------------------------------------------------------

    def _parse(self, magic: Callable[..., Any], line: str) -> Any:
        from IPython.utils.process import arg_split

        # intermixed: options may come before, between or after the positionals
        return magic.parser.parse_intermixed_args(arg_split(line, posix=True))

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
    """What failed, the status and the API's message (in ``str(exc)``), then what to do."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{text} — {exc.hint}" if exc.hint else text


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
