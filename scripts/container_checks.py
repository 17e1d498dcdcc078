#!/usr/bin/env python3
"""Checks on the log files that the containers of Activities 1 and 2 wrote.

Used by scripts/container-test.sh; each subcommand prints what it found and
exits 0 when every check holds, 1 otherwise (with the reasons on stderr).

  activity1 LOGS                      log.txt against respuestas.txt
  activity2 LOGS NODE... [--killed N] data.txt files, registros, heartbeats
  heartbeat FILE NODE active|inactive [--after-line K]
                                      is there such a line (after line K)?
  count FILE                          number of lines (0 if missing)
  stamps FILE --tz ZONE               the first line is stamped ZONE's time
  status URL NODE...                  the status page at URL shows NODEs active
  probe --interface IP [--source IP] [--none]
                                      hear the multicast heartbeat probes
                                      (run inside a container's network
                                      namespace, with nsenter)

LOGS is the folder that holds activity1/ and activity2/.
"""

import argparse
import collections
import datetime
import re
import socket
import struct
import sys
import time
import zoneinfo
from pathlib import Path

TS = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
SERVER_LOG = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5}) -> (.*)$")
RESPUESTA = re.compile(
    rf"^{TS} -> El servidor ha recibido satisfactoriamente su mensaje '(.*)'\.$"
)
REGISTRO_CLIENTE = re.compile(rf"^{TS} -> Su mensaje '(.*)' ha sido registrado en el (\S+)\.$")
REGISTRO_SERVER = re.compile(
    rf"^{TS} -> El (\S+) ha registrado satisfactoriamente el mensaje: '(.*)'\.$"
)
DATA = re.compile(rf"^{TS} -> (.*)$")
HEARTBEAT = re.compile(rf"^{TS} -> El (\S+) (aun está activo|se encuentra inactivo)\.$")


class Checks:
    """Collects failures instead of stopping at the first one."""

    def __init__(self):
        self.failures = []

    def expect(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self, summary):
        if self.failures:
            for failure in self.failures:
                print(f"  FAILED: {failure}", file=sys.stderr)
            return 1
        print(f"  ok: {summary}")
        return 0


def read_lines(path):
    path = Path(path)
    if not path.exists():
        return []
    # newline="\n": a message may hold a \r, which would otherwise split it.
    with path.open(encoding="utf-8", newline="\n") as file:
        return file.read().splitlines()


def parse_all(checks, lines, pattern, what):
    """Every line must match `pattern`; returns the groups of those that do."""
    parsed = []
    for number, line in enumerate(lines, 1):
        match = pattern.match(line)
        if checks.expect(match is not None, f"{what} line {number} has the wrong format: {line!r}"):
            parsed.append(match.groups())
    return parsed


def activity1(args):
    checks = Checks()
    logs = Path(args.logs) / "activity1"
    server = read_lines(logs / "server" / "log.txt")
    client = read_lines(logs / "client" / "respuestas.txt")
    checks.expect(len(client) > 0, "respuestas.txt is empty or missing")
    if args.messages is not None:
        checks.expect(
            len(client) == args.messages,
            f"respuestas.txt has {len(client)} lines, expected {args.messages}",
        )
    checks.expect(
        len(server) == len(client),
        f"log.txt has {len(server)} lines but respuestas.txt has {len(client)}",
    )
    received = parse_all(checks, server, SERVER_LOG, "log.txt")
    answered = parse_all(checks, client, RESPUESTA, "respuestas.txt")
    sent = [message for (_, _, message) in received]
    confirmed = [message for (message,) in answered]
    # One client on one connection, answered in order: the same sequence.
    checks.expect(sent == confirmed, "log.txt and respuestas.txt hold different messages")
    exits = confirmed.count("exit")
    if args.interrupted:
        # Stopped before it drew `exit`: what it sent, it recorded.
        checks.expect(exits == 0, f"exit was confirmed {exits} times in a run stopped early")
    else:
        checks.expect(
            confirmed[-1:] == ["exit"], f"the last message is not exit: {confirmed[-1:]}"
        )
        checks.expect(exits == 1, f"exit was confirmed {exits} times, not once")
    if args.tz and client:
        check_zone(checks, client[0], "respuestas.txt", args.tz)
    senders = {ip for (ip, _, _) in received}
    if args.client_ip:
        checks.expect(
            senders == {args.client_ip},
            f"log.txt names senders {sorted(senders)}, expected the client's {args.client_ip}",
        )
    last = "no 'exit' (interrupted)" if args.interrupted else "last 'exit'"
    return checks.finish(f"{len(client)} messages, {last}, formats right, sender {sorted(senders)}")


def check_zone(checks, line, what, zone):
    """The stamp of `line` is local time in `zone`, give or take 10 min."""
    try:
        stamp = datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        checks.expect(False, f"{what}'s first line has no time stamp: {line!r}")
        return
    now = datetime.datetime.now(zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)
    skew = abs((now - stamp).total_seconds())
    checks.expect(
        skew < 600,
        f"{what}'s first stamp {line[:19]} is not {zone} time (now {now:%H:%M:%S})",
    )


def stamps(args):
    checks = Checks()
    lines = read_lines(args.file)
    checks.expect(lines, f"{args.file} is empty or missing")
    if lines:
        check_zone(checks, lines[0], Path(args.file).name, args.tz)
    return checks.finish(f"{Path(args.file).name} is stamped in {args.tz} time")


def activity2(args):
    checks = Checks()
    logs = Path(args.logs) / "activity2"
    nodes = args.nodes
    cliente = parse_all(
        checks,
        read_lines(logs / "client" / "registro_cliente.txt"),
        REGISTRO_CLIENTE,
        "registro_cliente.txt",
    )
    server = parse_all(
        checks,
        read_lines(logs / "headnode" / "registro_server.txt"),
        REGISTRO_SERVER,
        "registro_server.txt",
    )
    checks.expect(len(cliente) > 0, "registro_cliente.txt is empty or missing")
    if args.messages is not None:
        checks.expect(
            len(cliente) == args.messages,
            f"registro_cliente.txt has {len(cliente)} lines, expected {args.messages}",
        )
    # registro_server.txt says (node, message), registro_cliente.txt (message, node).
    server = [(message, node) for (node, message) in server]
    checks.expect(
        len(server) == len(cliente),
        f"registro_server.txt has {len(server)} lines, registro_cliente.txt {len(cliente)}",
    )
    mismatch = next((i for i, (a, b) in enumerate(zip(server, cliente)) if a != b), None)
    checks.expect(
        mismatch is None,
        f"registro_server.txt and registro_cliente.txt differ at line {(mismatch or 0) + 1}",
    )
    checks.expect(
        [m for (m, _) in cliente][-1:] == ["exit"], "the client's last message is not exit"
    )

    # Every confirmed message is in the data.txt of the node named, and every
    # line of a data.txt is a confirmed message. A node killed while messages
    # were in flight may hold a few it wrote but could not confirm (the
    # headnode then stored them elsewhere): those are allowed, and counted.
    confirmed = collections.defaultdict(collections.Counter)
    for message, node in cliente:
        checks.expect(node in nodes, f"a message was stored on unknown node {node!r}")
        confirmed[node][message] += 1
    per_node = {}
    for node in nodes:
        stored = collections.Counter(
            message
            for (message,) in parse_all(
                checks, read_lines(logs / node / "data.txt"), DATA, f"{node}/data.txt"
            )
        )
        per_node[node] = sum(confirmed[node].values())
        missing = confirmed[node] - stored
        extra = stored - confirmed[node]
        checks.expect(
            not missing,
            f"{node}: {sum(missing.values())} confirmed messages missing from data.txt",
        )
        if node == args.killed:
            if extra:
                print(f"  note: {node} holds {sum(extra.values())} unconfirmed messages")
        else:
            checks.expect(not extra, f"{node}: {sum(extra.values())} unconfirmed lines in data.txt")
        checks.expect(per_node[node] > 0, f"{node} stored no message at all")

    return checks.finish(
        f"{len(cliente)} messages, registros agree line for line, per node {per_node}"
    )


def heartbeat(args):
    lines = read_lines(args.file)[args.after_line :]
    want = args.state == "active"
    found = False
    for line in lines:
        match = HEARTBEAT.match(line)
        if match and match.group(1) == args.node and (match.group(2) == "aun está activo") == want:
            found = True
    return 0 if found else 1


def heartbeat_format(args):
    checks = Checks()
    parse_all(checks, read_lines(args.file), HEARTBEAT, "heartbeat_server.txt")
    return checks.finish("heartbeat_server.txt lines have the right format")


# With a cluster secret (as the compose file sets one up) the probe ends
# with its HMAC tag: docs/PROTOCOL.md, section 11.
PROBE = re.compile(r"^HEARTBEAT (\d+) ([0-9a-f]{16})( [0-9a-f]{64})?$")


def probe(args):
    """Joins the heartbeat group on --interface and listens for --timeout
    seconds: two probes of different rounds, framed as docs/PROTOCOL.md
    section 10 says, from --source if given; with --none, not one datagram."""
    group, port = args.group.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((group, int(port)))
    membership = socket.inet_aton(group) + socket.inet_aton(args.interface)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    checks = Checks()
    rounds = set()
    deadline = time.monotonic() + args.timeout
    while len(rounds) < 2 and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            datagram, (sender, _) = sock.recvfrom(512)
        except socket.timeout:
            break
        checks.expect(not args.none, f"a datagram from {sender} where none should arrive")
        if args.none:
            break
        (length,) = struct.unpack(">I", datagram[:4]) if len(datagram) >= 4 else (-1,)
        text = datagram[4:].decode("utf-8", "replace")
        match = PROBE.match(text)
        checks.expect(length == len(datagram) - 4, f"frame length {length} for {len(datagram)} bytes")
        checks.expect(match, f"not a probe: {text!r}")
        if args.source:
            checks.expect(sender == args.source, f"probe from {sender}, not {args.source}")
        if match:
            rounds.add(int(match.group(1)))
    if args.none:
        return checks.finish(f"no datagram to {args.group} on {args.interface} in {args.timeout} s")
    checks.expect(len(rounds) >= 2, f"probes of {len(rounds)} rounds in {args.timeout} s, not 2")
    return checks.finish(f"probes of rounds {sorted(rounds)} on {args.interface}")


def status(args):
    """The status page's /status.json names every NODE, active, and its
    /metrics answers in the Prometheus text format."""
    import json
    import urllib.request

    checks = Checks()
    with urllib.request.urlopen(f"{args.url}/status.json", timeout=10) as response:
        status = json.load(response)
    active = {node["name"] for node in status.get("datanodes", []) if node.get("active")}
    for node in args.nodes:
        checks.expect(node in active, f"{node} is not active on the status page: {status}")
    with urllib.request.urlopen(f"{args.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    checks.expect("headnode_messages_stored_total" in metrics, "no messages_stored in /metrics")
    return checks.finish(f"the status page shows {sorted(active)} active")


def count(args):
    print(len(read_lines(args.file)))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)

    p = sub.add_parser("activity1")
    p.add_argument("logs")
    p.add_argument("--client-ip")
    p.add_argument("--messages", type=int, help="lines expected: CLIENT_COUNT + 1 (exit)")
    p.add_argument("--interrupted", action="store_true", help="the client was stopped early")
    p.add_argument("--tz", help="the zone of the time stamps (TZ given to the containers)")
    p.set_defaults(run=activity1)

    p = sub.add_parser("activity2")
    p.add_argument("logs")
    p.add_argument("nodes", nargs="+")
    p.add_argument("--killed")
    p.add_argument("--messages", type=int, help="lines expected: CLIENT_COUNT + 1 (exit)")
    p.set_defaults(run=activity2)

    p = sub.add_parser("heartbeat")
    p.add_argument("file")
    p.add_argument("node")
    p.add_argument("state", choices=["active", "inactive"])
    p.add_argument("--after-line", type=int, default=0)
    p.set_defaults(run=heartbeat)

    p = sub.add_parser("heartbeat-format")
    p.add_argument("file")
    p.set_defaults(run=heartbeat_format)

    p = sub.add_parser("count")
    p.add_argument("file")
    p.set_defaults(run=count)

    p = sub.add_parser("stamps")
    p.add_argument("file")
    p.add_argument("--tz", required=True)
    p.set_defaults(run=stamps)

    p = sub.add_parser("status")
    p.add_argument("url")
    p.add_argument("nodes", nargs="+")
    p.set_defaults(run=status)

    p = sub.add_parser("probe")
    p.add_argument("--group", default="239.255.43.1:10010")
    p.add_argument("--interface", required=True, help="the address to join the group on")
    p.add_argument("--source", help="the address the probes must come from")
    p.add_argument("--none", action="store_true", help="expect no datagram at all")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(run=probe)

    args = parser.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
