"""``voxtrain-stack``: install, start, stop and inspect the local stack.

Progress and errors go to stderr; ``env`` prints only ``export VAR=value`` lines on stdout, so
``eval "$(voxtrain-stack env)"`` works.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from . import stack
from .install import install
from .procs import StackError


def _up(args: argparse.Namespace) -> None:
    e = stack.ensure_up(args.state_dir)
    print(
        f"Kafka       {e.kafka_bootstrap}\n"
        f"PostgreSQL  {e.postgres_dsn.rsplit('@', 1)[1]}  (user and password: voxtrain-stack env)\n"
        f"MinIO       http://{e.minio_endpoint}  (keys: voxtrain-stack env)"
    )


def _down(args: argparse.Namespace) -> None:
    stack.stop(args.state_dir)


def _status(args: argparse.Namespace) -> None:
    rows = stack.status(args.state_dir)
    for row in rows:
        state = f"running (pid {row.pid})" if row.pid else "stopped"
        print(f"{row.name:<10} 127.0.0.1:{row.port:<6} {state}")


def _env(args: argparse.Namespace) -> None:
    for key, value in stack.dev_env(args.state_dir).items():
        print(f"export {key}={shlex.quote(value)}")


def _install(args: argparse.Namespace) -> None:
    installed = install()
    print(f"Kafka jars  {installed.kafka_lib}\nMinIO       {installed.minio}\nPostgreSQL  {installed.postgres_bin}")


def _run_services(args: argparse.Namespace) -> None:
    urls = stack.run_services(args.state_dir, timeout=args.timeout)
    console = urls.pop("console", None)
    width = max(map(len, urls))
    print("voxtrain is running:")
    for name, url in urls.items():
        print(f"  {name:<{width}}  {url}   (API docs: {url}/docs)")
    if console:
        print(f"\nWeb console:  {console}/   (sign in with a tenant's API key)")
    print(
        "\nA tenant's first API key (then: POST /v1/auth/token, or VT_API_KEY for vt):\n"
        '  eval "$(uv run voxtrain-stack env)" && uv run voxtrain api-keys create TENANT\n'
        "Logs: .voxtrain/stack/logs/   Stop everything: make stop"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxtrain-stack", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", help="default: $VOXTRAIN_STACK_DIR or <repo>/.voxtrain/stack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="install Kafka, MinIO (cached) and check PostgreSQL").set_defaults(fn=_install)
    commands.add_parser("up", help="start the servers, or reuse the running ones").set_defaults(fn=_up)
    commands.add_parser("down", help="stop services and servers (data is kept)").set_defaults(fn=_down)
    commands.add_parser("status", help="what runs, on which port").set_defaults(fn=_status)
    commands.add_parser("env", help="print `export VAR=...` lines for this stack").set_defaults(fn=_env)
    run = commands.add_parser(
        "run-services", help="start the servers, the services and the web console in the background"
    )
    run.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each /health/live")
    run.set_defaults(fn=_run_services)
    args = parser.parse_args(argv)
    try:
        args.fn(args)
    except StackError as exc:
        print(f"voxtrain-stack {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
