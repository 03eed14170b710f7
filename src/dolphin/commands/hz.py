"""`dolphin hz start|stop|status`: a local Hazelcast cluster for the mesh.

The work is done by ``dolphin.adapters.hazelcast.control``; this module only parses arguments
and prints.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hz`` and its three actions."""
    parser = sub.add_parser("hz", help="start, stop or inspect a local Hazelcast cluster")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="pid files and logs (default: $DOLPHIN_HZ_STATE_DIR or ~/.local/state/dolphin/hz)",
    )
    parser.add_argument("--cluster-name", default="dolphin", help="cluster name (dolphin)")
    actions = parser.add_subparsers(dest="hz_action", metavar="ACTION", required=True)

    start = actions.add_parser("start", help="start members and wait until the cluster is healthy")
    start.add_argument("--members", type=int, default=1, help="number of members (1)")
    start.add_argument("--base-port", type=int, default=5701, help="port of the first member")
    start.add_argument("--partitions", type=int, default=71, help="partition count (71)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    start.set_defaults(func=_start)

    stop = actions.add_parser("stop", help="stop every recorded member (SIGTERM, then SIGKILL)")
    stop.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")
    stop.set_defaults(func=_stop)

    status = actions.add_parser("status", help="show recorded members and the cluster view")
    status.set_defaults(func=_status)


def _quiet_client(args: argparse.Namespace) -> None:
    # The client logs every connection step at INFO; an operator wants the outcome only.
    if not getattr(args, "verbose", False):
        logging.getLogger("hazelcast").setLevel(logging.WARNING)


def _state_dir(args: argparse.Namespace) -> Path:
    from dolphin.adapters.hazelcast.cluster import default_state_dir

    return args.state_dir or default_state_dir()


def _start(args: argparse.Namespace) -> int:
    from dolphin.adapters.hazelcast.cluster import ClusterSpec
    from dolphin.adapters.hazelcast.control import start_cluster

    _quiet_client(args)
    spec = ClusterSpec(
        members=args.members,
        base_port=args.base_port,
        cluster_name=args.cluster_name,
        partitions=args.partitions,
        state_dir=_state_dir(args),
    )
    view = start_cluster(spec, timeout_s=args.timeout)
    print(f"cluster {spec.cluster_name!r} healthy: {view.member_count} member(s)")
    for address in view.members:
        print(f"  {address}")
    print(f"store URL: hazelcast://{','.join(spec.addresses)}")
    print(f"state: {spec.state_dir}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from dolphin.adapters.hazelcast.control import stop_cluster

    stopped = stop_cluster(_state_dir(args), timeout_s=args.timeout)
    print(f"stopped {len(stopped)} member(s)" + (f": {stopped}" if stopped else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    from dolphin.adapters.hazelcast.control import cluster_status

    _quiet_client(args)
    members, view = cluster_status(_state_dir(args), args.cluster_name)
    if not members:
        print("no members recorded")
        return 1
    for m in members:
        state = "running" if m.pid is not None else "dead"
        listening = "listening" if m.listening else "not listening"
        print(f"member 127.0.0.1:{m.port} pid={m.pid} {state} {listening}")
    health = "connected" if view.connected else "unreachable"
    print(f"cluster {args.cluster_name!r} {health}: {view.member_count} member(s) seen by a client")
    return 0 if view.connected and view.member_count == len(members) else 1


def interrupt_note(args: argparse.Namespace, command: str) -> str:
    """The Ctrl-C line of ``dolphin hz``: what is left running."""
    if args.hz_action == "start":
        return ("members started by this command were stopped again (members that ran before "
                f"are untouched); re-run: {command}")
    if args.hz_action == "stop":
        return f"some members may still run; see `dolphin hz status`, re-run: {command}"
    return f"nothing changed; re-run: {command}"
