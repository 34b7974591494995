"""Network namespaces for the reliability tests: a trainer behind a veth pair that can be cut.

``veth_namespace()`` makes a namespace joined to the root namespace by a veth pair with private
10.200.x.y/30 addresses (nothing routable outside this machine), and always removes both in its
``finally``, whatever happened. ``VethLink.partition()`` cuts the link the way a real partition
does — packets silently dropped both ways, no RST, no ICMP — with a ``pfifo limit 0`` root qdisc
on each end (netem is not in every kernel; this is), falling back to taking the namespace's end
down; ``VethLink.drop_port()`` black-holes only one service's connections (iptables in the
namespace). ``spawn_in()`` runs ``python -m services.cli ...`` inside the namespace, like
``tests.support.processes.service`` does outside it.

Needs root (or CAP_NET_ADMIN) and the ``ip``/``tc`` tools: ``NetnsUnavailable`` says why not, so
a test can skip with the reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import service

PREFIX = "twrel"
"""Names of the namespaces made here: ``twrel-<creator pid>-<random>``."""


class NetnsUnavailable(Exception):
    """This machine (or this user) cannot make network namespaces."""


def _ip(*args: str, ns: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    return _run(cmd, check=check)


def _run(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


@dataclass(frozen=True)
class VethLink:
    ns: str
    host_dev: str
    ns_dev: str
    host_ip: str
    ns_ip: str

    def cut(self) -> str:
        """Drop every packet both ways; returns how (for the test's report)."""
        qdisc = ("tc", "qdisc", "replace", "dev")
        blackhole = [
            [*qdisc, self.host_dev, "root", "pfifo", "limit", "0"],
            _in_ns(self.ns, *qdisc, self.ns_dev, "root", "pfifo", "limit", "0"),
        ]
        if shutil.which("tc") and all(_run(c, check=False).returncode == 0 for c in blackhole):
            return "blackhole (pfifo limit 0 on both veth ends)"
        self._clear_qdiscs()
        _ip("link", "set", self.ns_dev, "down", ns=self.ns)
        return f"link down ({self.ns_dev} in {self.ns})"

    def restore(self) -> None:
        self._clear_qdiscs()
        _ip("link", "set", self.ns_dev, "up", ns=self.ns)

    def _clear_qdiscs(self) -> None:
        if shutil.which("tc"):
            _run(["tc", "qdisc", "del", "dev", self.host_dev, "root"], check=False)
            _run(_in_ns(self.ns, "tc", "qdisc", "del", "dev", self.ns_dev, "root"), check=False)

    @contextlib.contextmanager
    def partition(self) -> Iterator[str]:
        how = self.cut()
        try:
            yield how
        finally:
            self.restore()

    @contextlib.contextmanager
    def drop_port(self, port: int) -> Iterator[str]:
        """Silently drop the namespace's TCP traffic to and from ``port`` on the other side
        (one service's connections), leaving the rest of the link up."""
        rules = [
            ["OUTPUT", "-p", "tcp", "-d", self.host_ip, "--dport", str(port), "-j", "DROP"],
            ["INPUT", "-p", "tcp", "-s", self.host_ip, "--sport", str(port), "-j", "DROP"],
        ]
        if shutil.which("iptables") is None:
            raise NetnsUnavailable("iptables is not installed")
        added = []
        try:
            for rule in rules:
                done = _run(_in_ns(self.ns, "iptables", "-I", *rule), check=False)
                if done.returncode != 0:
                    raise NetnsUnavailable(f"iptables failed: {done.stderr.strip()}")
                added.append(rule)
            yield f"iptables DROP of port {port} in {self.ns}"
        finally:
            for rule in added:
                _run(_in_ns(self.ns, "iptables", "-D", *rule), check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> None:
    """Namespaces an earlier, killed test run left behind (their creator pid is gone), with the
    processes that run started in them."""
    listing = _run(["ip", "netns", "list"], check=False).stdout
    for ns, creator in re.findall(rf"^({PREFIX}-(\d+)-[0-9a-f]+)", listing, flags=re.M):
        if _pid_alive(int(creator)):
            continue
        for pid in _run(["ip", "netns", "pids", ns], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run(["ip", "netns", "del", ns], check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    for _ in range(64):
        net = ipaddress.IPv4Network(
            f"10.200.{secrets.randbelow(256)}.{4 * secrets.randbelow(64)}/30"
        )
        if not any(str(host) in used for host in net):
            return net
    raise RuntimeError("no free 10.200.x.y/30 subnet")


@contextlib.contextmanager
def veth_namespace() -> Iterator[VethLink]:
    """A fresh namespace wired to the root namespace by a veth pair; removed on exit."""
    if os.name != "posix" or shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` tool (iproute2) is not installed")
    remove_stale()
    tag = secrets.token_hex(3)
    ns = f"{PREFIX}-{os.getpid()}-{tag}"
    created = _run(["ip", "netns", "add", ns], check=False)
    if created.returncode != 0:
        raise NetnsUnavailable(f"`ip netns add` failed: {created.stderr.strip()}")
    host_dev, ns_dev = f"twh{tag}", f"twn{tag}"
    try:
        net = _free_subnet()
        host_ip, ns_ip = (str(h) for h in net.hosts())
        _ip("link", "add", host_dev, "type", "veth", "peer", "name", ns_dev, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_dev)
        _ip("link", "set", host_dev, "up")
        _ip("addr", "add", f"{ns_ip}/30", "dev", ns_dev, ns=ns)
        _ip("link", "set", ns_dev, "up", ns=ns)
        _ip("link", "set", "lo", "up", ns=ns)
        yield VethLink(ns=ns, host_dev=host_dev, ns_dev=ns_dev, host_ip=host_ip, ns_ip=ns_ip)
    finally:
        _run(["ip", "link", "del", host_dev], check=False)  # takes its peer with it
        _run(["ip", "netns", "del", ns], check=False)


@contextlib.contextmanager
def spawn_in(ns: str, args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m services.cli ARGS`` inside ``ns``, in its own session, stopped on exit.

    ``ip netns exec`` execs the command, so the process is Python itself: signals reach it.
    """
    with service(args, log, prefix=_in_ns(ns)) as proc:
        yield proc
