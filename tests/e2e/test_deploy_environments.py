"""Every service starts, as a process, from exactly the environment that docker-compose.yml
or the Kubernetes manifests give it, and becomes ready.

The files are parsed, not copied: the environment is the image's (the Dockerfile's `ENV`),
then the compose service's (`${VAR:-default}` interpolated as compose does, with
CRM_JWT_SECRET exported as the compose file asks) or the container's in the manifest
(`secretKeyRef`s read from deploy/k8s/secrets.example.yaml, each placeholder replaced as
an operator would). The command is the image's ENTRYPOINT + CMD, or what compose or the
manifest put instead of CMD. Only what points at servers is replaced: the Kafka bootstrap
and database URLs by the session's own servers (and idempotence, a capability of the
broker, set to what that broker has), HTTP ports by free ones, volume mounts by folders of
the test. As compose and the Job in topics.yaml do, `crmctl topics` runs first; then the
services start in parallel and each must answer /readyz with 200.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from crm_contracts import topic_specs
from crm_kit.db import drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics
from crm_stack.ports import free_port
from tests.support.kafka import eventually
from tests.support.servers import Servers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("ingest", "contacts", "cases", "campaigns", "scoring")
PLACEHOLDER = "change-me"  # what secrets.example.yaml tells the operator to replace
READY_TIMEOUT = 120.0  # five services starting at once on a loaded 2-core machine

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name)
        unset = value is None or (value == "" and operator in (":-", ":?"))
        if unset and operator in (":-", "-"):
            return str(argument)
        if unset and operator in (":?", "?"):
            raise AssertionError(f"compose would refuse to start: {name}: {argument}")
        return value or ""

    return _VARIABLE.sub(replace, text)


@dataclass
class Image:
    """What a Dockerfile gives a container: environment, entrypoint, command."""

    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]

    @classmethod
    def of(cls, dockerfile: str, service: str = "") -> Image:
        text = (ROOT / dockerfile).read_text()
        env: dict[str, str] = {}
        for line in re.findall(r"^ENV (.+)$", text, re.MULTILINE):
            for pair in line.split():
                name, _, value = pair.partition("=")
                env[name] = value.replace("${SERVICE}", service)

        def exec_form(instruction: str) -> list[str]:
            found = re.search(rf"^{instruction} (\[.+\])$", text, re.MULTILINE)
            return [str(part) for part in json.loads(found.group(1))] if found else []

        return cls(env, exec_form("ENTRYPOINT"), exec_form("CMD"))

    def command(self, cmd: Sequence[str] | None = None) -> list[str]:
        """ENTRYPOINT + CMD, or + what replaces CMD (compose `command`, k8s `args`)."""
        return [*self.entrypoint, *(self.cmd if cmd is None else cmd)]


@dataclass
class Launch:
    """One process: its name, environment, command and the volume paths it was given."""

    name: str
    env: dict[str, str]
    command: list[str]
    mounts: list[str] = field(default_factory=list)


def compose_launches(user_env: Mapping[str, str]) -> list[Launch]:
    """The `topics` one-off, then every service, as docker compose would start them."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    launches = []
    for name in ("topics", *SERVICES):
        spec = services[name]
        build = spec["build"]
        image = Image.of(build["dockerfile"], (build.get("args") or {}).get("SERVICE", ""))
        env = {**image.env}
        env.update({k: interpolate(str(v), user_env) for k, v in spec["environment"].items()})
        launches.append(Launch(name, env, image.command(spec.get("command"))))
    return launches


def example_secrets() -> dict[tuple[str, str], str]:
    """(Secret name, key) -> value, from deploy/k8s/secrets.example.yaml."""
    values: dict[tuple[str, str], str] = {}
    for doc in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()):
        assert doc["kind"] == "Secret"
        for key, value in doc["stringData"].items():
            values[(doc["metadata"]["name"], key)] = str(value)
    return values


def operators_secrets() -> dict[tuple[str, str], str]:
    """The example with every placeholder replaced by a secret of one's own."""
    return {
        ref: secrets.token_urlsafe(32) if value == PLACEHOLDER else value
        for ref, value in example_secrets().items()
    }


def k8s_launch(
    manifest: str, kind: str, dockerfile: str, secret_values: Mapping[tuple[str, str], str]
) -> Launch:
    """The one container of a Deployment or Job, as the kubelet would run it."""
    [doc] = [d for d in yaml.safe_load_all((K8S / manifest).read_text()) if d["kind"] == kind]
    [container] = doc["spec"]["template"]["spec"]["containers"]
    service = container["name"] if dockerfile.endswith("service.Dockerfile") else ""
    image = Image.of(dockerfile, service)
    env = {**image.env}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) in secret_values, f"{manifest}: no Secret for {ref}"
        env[item["name"]] = secret_values[(ref["name"], ref["key"])]
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    return Launch(container["name"], env, image.command(container.get("args")), mounts)


def k8s_launches(secret_values: Mapping[tuple[str, str], str]) -> list[Launch]:
    """The topics Job, then every service's Deployment."""
    return [
        k8s_launch("topics.yaml", "Job", "deploy/stack.Dockerfile", secret_values),
        *(
            k8s_launch(f"{name}.yaml", "Deployment", "deploy/service.Dockerfile", secret_values)
            for name in SERVICES
        ),
    ]


# -- running them against the test's servers -----------------------------------------------


def process_env(launch: Launch, tmp: Path) -> dict[str, str]:
    """The launch's environment on this machine: its own variables and nothing of ours but
    PATH (the virtualenv first, where the image has its Python), HOME and a private /tmp."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
    }
    for name, value in launch.env.items():
        for mount in launch.mounts:  # a volume is a folder of the test
            if value == mount or value.startswith(mount + "/"):
                value = str(tmp / "volumes") + value
                Path(value).mkdir(parents=True, exist_ok=True)
        env[name] = value
    return env


def point_at(launch: Launch, servers: Servers, database_url: str | None) -> int | None:
    """Replace the server addresses and the port; the port to ask for /readyz (services)."""
    env = launch.env
    assert "KAFKA_BOOTSTRAP_SERVERS" in env, f"{launch.name}: no Kafka bootstrap servers"
    env["KAFKA_BOOTSTRAP_SERVERS"] = servers.bootstrap
    if "CRM_KAFKA_ENABLE_IDEMPOTENCE" in env:  # Apache Kafka has it, the embedded broker not
        env["CRM_KAFKA_ENABLE_IDEMPOTENCE"] = str(servers.idempotent_producers).lower()
    if database_url is None:
        return None
    prefix = f"CRM_{launch.name.upper()}_"
    assert f"{prefix}DATABASE_URL" in env, f"{launch.name}: no database URL"
    assert f"{prefix}HTTP_PORT" in env, f"{launch.name}: no HTTP port"
    env[f"{prefix}DATABASE_URL"] = database_url
    port = free_port()
    env[f"{prefix}HTTP_PORT"] = str(port)
    return port


@dataclass
class Started:
    """A process the test started."""

    launch: Launch
    process: asyncio.subprocess.Process
    log: Path
    port: int | None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def _start(launch: Launch, port: int | None, tmp: Path) -> Started:
    log = tmp / f"{launch.name}.log"
    env = process_env(launch, tmp / launch.name)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *launch.command,
            env=env,
            cwd=tmp / launch.name,  # not the repository: the image has only what it installed
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Started(launch, process, log, port)


async def _ready(started: Started) -> None:
    async with httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            if started.process.returncode is not None:
                raise AssertionError(
                    f"{started.launch.name} exited with {started.process.returncode}:\n"
                    + started.output()
                )
            try:
                response = await http.get(f"http://127.0.0.1:{started.port}/readyz")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        await eventually(ready, timeout=READY_TIMEOUT, interval=0.2)


async def _stop(started: Started) -> None:
    if started.process.returncode is None:
        started.process.terminate()
        try:
            await asyncio.wait_for(started.process.wait(), timeout=30)
        except TimeoutError:
            started.process.kill()
            await started.process.wait()


@asynccontextmanager
async def registry_topics_removed_after(servers: Servers) -> AsyncIterator[None]:
    """The registry's topics, which `crmctl topics` creates, are deleted afterwards."""
    try:
        yield
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
        names = [s.name for s in topic_specs() if s.name in existing]
        if names:
            await delete_topics(servers.bootstrap, names)


async def start_and_wait_ready(launches: list[Launch], servers: Servers, tmp: Path) -> None:
    """Run the topics one-off, then every service in parallel until each is ready."""
    topics, *services = launches
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(registry_topics_removed_after(servers))
        point_at(topics, servers, None)
        one_off = await _start(topics, None, tmp)
        code = await asyncio.wait_for(one_off.process.wait(), timeout=60)
        assert code == 0, f"{topics.name} exited with {code}:\n{one_off.output()}"

        started: list[Started] = []
        for launch in services:
            name = "t_" + uuid.uuid4().hex[:12]
            await ensure_database(servers.admin_dsn, name)
            stack.push_async_callback(drop_database, servers.admin_dsn, name)
            port = point_at(launch, servers, with_database(servers.admin_dsn, name))
            started.append(await _start(launch, port, tmp))
            stack.push_async_callback(_stop, started[-1])
        async with asyncio.TaskGroup() as group:  # the first failure cancels the others
            for each in started:
                group.create_task(_ready(each))


async def test_every_service_starts_and_is_ready_with_the_compose_environment(
    servers: Servers, tmp_path: Path
) -> None:
    user_env = {"CRM_JWT_SECRET": secrets.token_urlsafe(32)}  # the file asks for it

    await start_and_wait_ready(compose_launches(user_env), servers, tmp_path)


async def test_every_service_starts_and_is_ready_with_the_kubernetes_environment(
    servers: Servers, tmp_path: Path
) -> None:
    await start_and_wait_ready(k8s_launches(operators_secrets()), servers, tmp_path)


def test_production_does_not_launch_the_example_campaigns() -> None:
    # The examples are launched when loaded: in production they would message real people.
    launches = k8s_launches(operators_secrets())
    [campaigns] = [launch for launch in launches if launch.name == "campaigns"]

    assert campaigns.env["CRM_ENVIRONMENT"] == "production"
    assert campaigns.env["CRM_CAMPAIGNS_LOAD_EXAMPLES"] == "false"


async def _refusal(launch: Launch, tmp: Path) -> tuple[int, str]:
    started = await _start(launch, None, tmp)
    code = await asyncio.wait_for(started.process.wait(), timeout=60)
    return code, started.output()


async def test_a_missing_or_placeholder_secret_is_refused_with_one_line(tmp_path: Path) -> None:
    # No server is needed: the settings are refused before anything connects.
    without_key = compose_launches({"CRM_JWT_SECRET": secrets.token_urlsafe(32)})[2]
    del without_key.env["CRM_CONTACTS_ERASURE_HMAC_KEY"]
    as_in_the_example = k8s_launches(example_secrets())[2]
    real_jwt = {**example_secrets(), ("crm-jwt", "secret"): secrets.token_urlsafe(32)}
    placeholder_key = k8s_launches(real_jwt)[2]
    assert without_key.name == as_in_the_example.name == placeholder_key.name == "contacts"

    results = await asyncio.gather(
        _refusal(without_key, tmp_path / "compose"),
        _refusal(as_in_the_example, tmp_path / "example"),
        _refusal(placeholder_key, tmp_path / "key"),
    )

    for (code, output), variable in zip(
        results,
        ["CRM_CONTACTS_ERASURE_HMAC_KEY", "CRM_JWT_SECRET", "CRM_CONTACTS_ERASURE_HMAC_KEY"],
        strict=True,
    ):
        assert code == 2, output
        assert output.startswith("crm_contacts: cannot start: ") and output.count("\n") == 1
        assert variable in output and "Traceback" not in output
