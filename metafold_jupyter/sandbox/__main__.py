"""Command line: serve the Metafold sandbox in the foreground.

    python -m metafold_jupyter.sandbox [--host 127.0.0.1] [--port N] [--tls] ...
    metafold-sandbox --port 8000

Prints the URLs, the (public, fixed) sandbox credentials and the environment
lines that point metafold-jupyter (or the official SDK) at it, and with
``--tls`` the CA bundle clients must trust; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .server import DEFAULT_MAX_UPLOAD_MIB, Sandbox

__all__ = ["main", "build_parser"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m metafold_jupyter.sandbox",
        description="Serve a local Metafold API emulator (auth, API and download links) for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="API/auth port; 0 picks a free one (default: 0)")
    parser.add_argument("--token-lifetime", type=int, default=86400, metavar="S", help="token lifetime in seconds")
    parser.add_argument(
        "--workflow-duration", type=float, default=3.0, metavar="S", help="seconds a dispatched workflow takes"
    )
    parser.add_argument("--link-lifetime", type=float, default=3600, metavar="S", help="download link lifetime")
    parser.add_argument("--no-seed", action="store_true", help="start with an empty default project")
    parser.add_argument("--bulk-projects", type=int, default=0, metavar="N", help="add N generated projects")
    parser.add_argument("--bulk-asset-mib", type=int, default=0, metavar="N", help="add bulk.bin of N MiB")
    parser.add_argument(
        "--download-mib-s", type=float, default=0.0, metavar="R",
        help="serve download links at most this fast, to emulate a network link (default: unlimited)",
    )
    parser.add_argument(
        "--max-running-workflows", type=_positive_int, default=None, metavar="N",
        help="answer a dispatch with 429 + Retry-After while N workflows are in flight (default: no limit)",
    )
    parser.add_argument(
        "--answer-shape", choices=("live", "reference"), default="live",
        help="answer like the live service and the official SDK (default), or like the published OpenAPI "
        "reference (ISO 8601 dates, link on asset list items, no link on dispatch, {code, name, description} errors)",
    )
    parser.add_argument(
        "--date-style", choices=("rfc1123", "iso8601"), default=None,
        help="date format of the answers (default: rfc1123 for live answers, iso8601 for reference answers)",
    )
    parser.add_argument(
        "--max-upload-mib", type=float, default=DEFAULT_MAX_UPLOAD_MIB, metavar="N",
        help=f"largest upload accepted, in MiB; bigger ones get 413 (default: {DEFAULT_MAX_UPLOAD_MIB})",
    )
    parser.add_argument(
        "--tls", action="store_true",
        help="serve HTTPS with a throwaway CA (prints the CA bundle for REQUESTS_CA_BUNDLE; needs trustme)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (the credentials are public!)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until Ctrl-C (SIGINT) or SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        sandbox = Sandbox(
            args.host,
            args.port,
            token_lifetime=args.token_lifetime,
            workflow_duration=args.workflow_duration,
            link_lifetime=args.link_lifetime,
            seed=not args.no_seed,
            bulk_projects=args.bulk_projects,
            bulk_asset_mib=args.bulk_asset_mib,
            download_mib_s=args.download_mib_s,
            allow_remote=args.allow_remote,
            max_running_workflows=args.max_running_workflows,
            answer_shape=args.answer_shape,
            date_style=args.date_style,
            tls=args.tls,
            max_upload_mib=args.max_upload_mib,
        ).start()
    except (ValueError, OSError, ImportError) as exc:
        print(f"metafold-sandbox: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        print(f"Metafold sandbox running at {sandbox.url}", flush=True)
        print(f"  token URL:        {sandbox.token_url}")
        print(f"  download origin:  {sandbox.download_url}")
        print(f"  client ID:        {sandbox.client_id}")
        print(f"  client secret:    {sandbox.client_secret}   (public sandbox value, not a real secret)")
        print(f"  default project:  {sandbox.default_project_id}")
        print(f"  answers:          {sandbox.shape.answers}, dates in {sandbox.shape.date_style}")
        print("Environment for metafold-jupyter:")
        for name, value in sandbox.env().items():
            print(f"  {name}={value}")
        if sandbox.ca_bundle is not None:
            print(f"TLS: certificates are signed by a throwaway CA: {sandbox.ca_bundle}")
            print("  trust it in every client (requests, the official SDK, metafold-jupyter) with")
            print(f"  export REQUESTS_CA_BUNDLE={sandbox.ca_bundle}")
            netloc = sandbox.url.split("://", 1)[1]
            print("Official SDK, client-credentials mode:")
            print(f'  MetafoldClient(client_id="{sandbox.client_id}", client_secret="{sandbox.client_secret}",')
            print(f'                 auth_domain="{netloc}", base_url="{sandbox.url}/")')
        print("Press Ctrl-C to stop.", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    print("Metafold sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
