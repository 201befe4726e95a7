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


def _settings_class(name: str) -> type:
    import importlib
    import inspect

    from crm_kit.settings import ServiceSettings

    module = importlib.import_module(f"crm_{name}.settings")
    [cls] = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, ServiceSettings) and c is not ServiceSettings
    ]
    return cls


def _secret_variables(name: str) -> set[str]:
    """The variables of a service's secret settings (refused as placeholders in production)."""
    from pydantic import SecretStr

    from crm_kit.settings import env_name

    cls = _settings_class(name)
    return {
        env_name(cls, f) for f, info in cls.model_fields.items() if info.annotation is SecretStr
    }


def test_every_secret_setting_is_given_by_compose_and_by_the_manifests() -> None:
    # A secret left out falls back to its development value, which the service refuses
    # outside development: it would not start.
    for name in _service_packages():
        secrets = _secret_variables(name)
        assert "CRM_JWT_SECRET" in secrets
        compose_env = _services()[name]["environment"]
        deployment = {d["kind"]: d for d in _manifests(name)}["Deployment"]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        k8s_env = {e["name"]: e for e in container["env"]}
        for variable in secrets:
            assert variable in compose_env, f"docker-compose.yml: {name} has no {variable}"
            assert "secretKeyRef" in k8s_env[variable]["valueFrom"], f"{name}: {variable}"


def _secret_refs(node: object) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        found = [(ref["name"], ref["key"])] if isinstance(ref, dict) else []
        return found + [r for value in node.values() for r in _secret_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _secret_refs(value)]
    return []


def test_every_secret_the_manifests_read_is_in_the_example_secrets() -> None:
    example = {
        (doc["metadata"]["name"], key)
        for doc in yaml.safe_load_all((ROOT / "deploy/k8s/secrets.example.yaml").read_text())
        for key in doc["stringData"]
    }
    refs = [
        (path.name, ref)
        for path in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
        for ref in _secret_refs(list(yaml.safe_load_all(path.read_text())))
    ]
    assert ("contacts.yaml", ("crm-contacts", "ERASURE_HMAC_KEY")) in refs
    for manifest, ref in refs:
        assert ref in example, f"{manifest} reads {ref}, which secrets.example.yaml lacks"


def test_the_topics_are_created_before_the_services_start_in_compose_and_kubernetes() -> None:
    services = _services()
    assert services["topics"]["command"] == ["topics"]
    for name in _service_packages():
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )
    [job] = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/topics.yaml").read_text())]
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert job["kind"] == "Job" and container["args"] == ["topics"]
    assert 'ENTRYPOINT ["crmctl"]' in (ROOT / "deploy/stack.Dockerfile").read_text()


def _dockerignore_patterns() -> list[re.Pattern[str]]:
    """.dockerignore as regular expressions (Docker's globs: `*`, `?`, `**`; no `!` used)."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not supported by this check"
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?|\[[^]]*\])", line.strip("/")):
            if part in ("**/", "**"):
                regex += "(.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            elif part.startswith("["):
                regex += part
            else:
                regex += re.escape(part)
        patterns.append(re.compile(regex + "(/.*)?"))  # a folder's contents go with it
    return patterns


def _ignored(path: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.fullmatch(path) for p in patterns)


def test_the_build_context_leaves_out_the_working_copy_but_keeps_what_the_images_copy() -> None:
    import subprocess

    patterns = _dockerignore_patterns()
    for grown in (".venv/bin/python", ".state/postgres/data/PG_VERSION", "bench/results/x.json"):
        assert _ignored(grown, patterns), grown
    for cache in ("services/kit/src/crm_kit/__pycache__/outbox.cpython-311.pyc", ".git/HEAD"):
        assert _ignored(cache, patterns), cache
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for dockerfile in (ROOT / "deploy").glob("*.Dockerfile"):
        sources = re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.MULTILINE)
        for name in [*_service_packages(), "stack"]:
            for source in {s.replace("${SERVICE}", name) for s in sources}:
                copied = [f for f in tracked if f == source or f.startswith(source + "/")]
                assert copied, f"{dockerfile.name}: COPY {source} copies nothing"
                left_out = [f for f in copied if _ignored(f, patterns)]
                assert not left_out, f"{dockerfile.name}: .dockerignore drops {left_out[:3]}"
