"""Real Redis servers for tests, each on free ports in its own temp dir; stoppable, restartable.

    RedisServer(workdir).start()                 plain redis-server:  redis://127.0.0.1:<port>/0
    RedisServer(workdir, tls=True).start()       TLS only:            rediss://127.0.0.1:<port>/0
                                                 (self-signed CA at `.ca_path`, made with openssl)
    RedisClusterServers(workdir).start()         a 3-primary Redis Cluster, slots spread over all

Every server binds 127.0.0.1, never saves to disk unless asked (`appendonly=True`) and logs to
`<workdir>/redis.log`, which is quoted when it fails to start.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

START_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 20.0
CERT_DAYS = 30


class RedisServer:
    """One redis-server process owned by the test session."""

    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = False,
        tls: bool = False,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.binary = _binary("redis-server")
        self.workdir = workdir
        self.appendonly = appendonly
        self.tls = tls
        self.extra_args = list(extra_args)
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @property
    def ca_path(self) -> Path:
        """The PEM file of the CA that signed the server's certificate (TLS servers only)."""
        if not self.tls:
            raise AttributeError("ca_path: this RedisServer was not started with tls=True")
        return self.workdir / "ca.crt"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if self.tls:
            if not self.ca_path.exists():  # a restart keeps the certificates
                make_certificates(self.workdir)
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.workdir / "server.crt"),
                "--tls-key-file", str(self.workdir / "server.key"),
                "--tls-ca-cert-file", str(self.ca_path),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen([*args, *self.extra_args])
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, **self._tls_options())
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError(
                            f"redis-server did not start:\n{self.log_tail()}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()
        return self

    def stop(self) -> None:
        """Kill the server (as a crash would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, **self._tls_options())

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _tls_options(self) -> dict[str, Any]:
        return {"ssl_ca_certs": str(self.ca_path)} if self.tls else {}


class RedisClusterServers:
    """A Redis Cluster of `nodes` primaries (no replicas), each a `RedisServer` in its own dir."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        if nodes < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.workdir = workdir
        self.redis_cli = _binary("redis-cli")
        self.nodes: list[RedisServer] = []
        # Each node gets its own cluster bus port: the default (port + 10000) may be taken or
        # beyond 65535.
        ports = _free_ports(2 * nodes)
        for index in range(nodes):
            port, bus_port = ports[2 * index], ports[2 * index + 1]
            cluster_args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "2000",
                "--cluster-port", str(bus_port),
            ]  # fmt: skip
            self.nodes.append(
                RedisServer(workdir / f"node-{index}", port=port, extra_args=cluster_args)
            )

    @property
    def url(self) -> str:
        """The URL of the first node; a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> RedisClusterServers:
        """Start every node, join them with all slots assigned and wait for `cluster_state:ok`."""
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url, decode_responses=True)

    def node_clients(self) -> list[redis.Redis]:
        """One plain (non-cluster) client per node, to see what each node holds."""
        return [node.client() for node in self.nodes]

    def flushall(self) -> None:
        for client in self.node_clients():
            with client:
                client.flushall()

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        options = ["--cluster-replicas", "0", "--cluster-yes"]
        result = subprocess.run(
            [self.redis_cli, "--cluster", "create", *addresses, *options],
            capture_output=True,
            text=True,
            timeout=CLUSTER_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )

    def _wait_ok(self) -> None:
        clients = self.node_clients()
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        try:
            while True:
                states = {
                    node.port: _cluster_state(client)
                    for node, client in zip(self.nodes, clients, strict=True)
                }
                if all(state == "ok" for state in states.values()):
                    return
                if time.monotonic() > deadline:
                    logs = "\n".join(
                        f"--- node {node.port}:\n{node.log_tail(800)}" for node in self.nodes
                    )
                    raise RuntimeError(
                        f"Redis Cluster not ok after {CLUSTER_TIMEOUT:.0f} s "
                        f"(cluster_state per port: {states}):\n{logs}"
                    )
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()


def _cluster_state(client: redis.Redis) -> str:
    info: dict[str, Any] = client.cluster("INFO")
    return str(info.get("cluster_state", "?"))


def make_certificates(workdir: Path) -> None:
    """Write ca.crt/ca.key and server.crt/server.key (EC P-256, for 127.0.0.1 and localhost)."""
    ext = workdir / "server.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        workdir,
        "req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.crt",
        "-days", str(CERT_DAYS), "-subj", "/CN=chatproxy test CA",
        "-addext", "basicConstraints = critical, CA:TRUE",
        "-addext", "keyUsage = critical, keyCertSign, cRLSign",
    )  # fmt: skip
    _openssl(
        workdir,
        "req", "-new", *new_key, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
    )  # fmt: skip
    _openssl(
        workdir,
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", str(CERT_DAYS),
        "-extfile", ext.name, "-out", "server.crt",
    )  # fmt: skip


def _openssl(cwd: Path, *args: str) -> None:
    result = subprocess.run(
        [_binary("openssl"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed:\n{result.stderr[-2000:]}")


_INSTALL_HINTS = {
    "redis-server": "`make test` installs it with apt-get, or run `apt-get install redis-server`",
    "redis-cli": "it comes with redis-server (`apt-get install redis-tools`)",
    "openssl": "install it with `apt-get install openssl`",
}


def _binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed; {_INSTALL_HINTS[name]}")
    return binary


def _free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(count: int) -> list[int]:
    """Return `count` distinct free ports (all held open together, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
