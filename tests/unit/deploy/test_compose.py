"""docker-compose.yml and the Dockerfiles are checked statically (no Docker engine needed)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services() -> dict[str, dict]:
    return COMPOSE["services"]


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in _services().items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_every_build_names_a_dockerfile_that_exists_and_copies_existing_paths() -> None:
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        dockerfile = ROOT / build.get("context", ".") / build["dockerfile"]
        assert dockerfile.exists(), f"{name}: {dockerfile}"
        service_arg = (build.get("args") or {}).get("SERVICE", "")
        for src in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.MULTILINE):
            path = src.replace("${SERVICE}", service_arg)
            assert (ROOT / path).exists(), f"{name}: COPY {path}"


def test_dependencies_wait_for_healthy_servers() -> None:
    services = _services()
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in (
                "service_healthy",
                "service_completed_successfully",
            ), f"{name} waits for {dep} without a condition"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"


def test_kafka_runs_kraft_with_single_node_transaction_state() -> None:
    env = _services()["kafka"]["environment"]
    assert _services()["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def _service_packages() -> list[str]:
    return sorted(
        p.parent.name
        for p in (ROOT / "services").glob("*/pyproject.toml")
        if p.parent.name not in ("kit", "stack")
    )


def test_every_service_package_has_a_compose_service_and_a_database() -> None:
    init_sql = (ROOT / "deploy/postgres/init.sql").read_text()
    for name in _service_packages():
        assert name in _services(), f"services/{name} is not in docker-compose.yml"
        assert f"crm_{name}" in init_sql
        env = _services()[name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert f"CRM_{name.upper()}_DATABASE_URL" in env


def _manifests(name: str) -> list[dict]:
    path = ROOT / "deploy" / "k8s" / f"{name}.yaml"
    assert path.exists(), f"services/{name} has no deploy/k8s/{name}.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_service_has_kubernetes_manifests_with_probes_and_its_own_settings() -> None:
    for name in _service_packages():
        docs = {doc["kind"]: doc for doc in _manifests(name)}
        assert {"Deployment", "Service"} <= set(docs), name
        [container] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        env = {e["name"] for e in container["env"]}
        assert f"CRM_{name.upper()}_DATABASE_URL" in env
        assert "KAFKA_BOOTSTRAP_SERVERS" in env
        assert not container["image"].endswith(":latest")
