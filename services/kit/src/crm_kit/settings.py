"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "development-only-secret-do-not-deploy"
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", DEVELOPMENT_JWT_SECRET})

# Names that every process of the stack reads without a service prefix, so that one
# `export KAFKA_BOOTSTRAP_SERVERS=...` points the whole back end at a real cluster.
SHARED_ENV = {
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "environment": "CRM_ENVIRONMENT",
    "jwt_secret": "CRM_JWT_SECRET",
    "kafka_enable_idempotence": "CRM_KAFKA_ENABLE_IDEMPOTENCE",
    "kafka_fetch_max_wait_ms": "CRM_KAFKA_FETCH_MAX_WAIT_MS",
}


class _SharedEnvSource(PydanticBaseSettingsSource):
    """Reads the unprefixed shared names; a prefixed variable still wins."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        import os

        env_name = SHARED_ENV.get(field_name)
        value = os.environ.get(env_name) if env_name else None
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                out[key] = value
        return out


class ServiceSettings(BaseSettings):
    """Settings of one service process; subclass and set `env_prefix` to `CRM_<NAME>_`."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")
    service_name: ClassVar[str] = "service"

    environment: Literal["development", "test", "staging", "production"] = Field(
        "development",
        description="Deployment environment; placeholder secrets only in development/test.",
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/postgres",
        description="Postgres URL of this service's own database.",
    )
    db_pool_min: int = Field(1, ge=0, description="Minimum asyncpg pool size.")
    db_pool_max: int = Field(10, ge=1, description="Maximum asyncpg pool size.")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_enable_idempotence: bool = Field(
        False, description="Idempotent producer: on for Apache Kafka, off for the embedded broker."
    )
    kafka_fetch_max_wait_ms: int = Field(
        20, ge=1, description="Consumer fetch wait; the embedded broker answers after this timer."
    )
    kafka_session_timeout_ms: int = Field(
        6000, ge=1000, description="Consumer group session timeout."
    )
    kafka_heartbeat_interval_ms: int = Field(
        1000, ge=100, description="Consumer heartbeat interval."
    )
    kafka_max_poll_records: int = Field(
        500, ge=1, description="Records per consumer batch at most."
    )
    consumer_max_retries: int = Field(
        5, ge=0, description="Retries of a transient failure before dead-lettering."
    )
    consumer_retry_backoff_ms: int = Field(
        100, ge=1, description="First retry delay; doubles each retry."
    )
    consumer_max_backoff_ms: int = Field(
        5000,
        ge=1,
        description="Longest retry delay, and longest wait between checks of a dependency "
        "that is down while a consumer holds its batch.",
    )
    consumer_stall_seconds: float = Field(
        30.0,
        gt=0,
        description="A consumer holding records this long without committing them (or not "
        "polling this long) is reported not ready.",
    )
    health_check_timeout_ms: int = Field(
        2000, ge=1, description="How long a check of the database or the broker may take."
    )
    readiness_cache_ms: int = Field(
        1000, ge=0, description="How long /readyz reuses its last answer from the broker."
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP API.")
    jwt_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_JWT_SECRET), description="HS256 secret that signs API bearer tokens."
    )
    jwt_issuer: str = Field("crm-backbone", description="Expected `iss` of bearer tokens.")
    jwt_audience: str = Field("crm-api", description="Expected `aud` of bearer tokens.")
    log_level: str = Field("INFO", description="Log level of the JSON logs.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _SharedEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> ServiceSettings:
        if (
            self.environment not in ("development", "test")
            and self.jwt_secret.get_secret_value() in PLACEHOLDER_SECRETS
        ):
            raise ValueError(
                "jwt_secret is missing or a placeholder; set CRM_JWT_SECRET to a secret of "
                f"your own (environment={self.environment})"
            )
        return self


S = TypeVar("S", bound=ServiceSettings)


def env_name(settings_cls: type[ServiceSettings], field: str) -> str:
    """The environment variable that sets a field (the shared name if it has one)."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return SHARED_ENV.get(field) or f"{prefix}{field}".upper()


def settings_problem(settings_cls: type[ServiceSettings], error: ValidationError) -> str:
    """What is wrong with the settings, on one line, naming variables, never their values."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        fields = [str(part) for part in item["loc"] if isinstance(part, str)]
        problems.append(f"{env_name(settings_cls, fields[0])}: {message}" if fields else message)
    return "; ".join(problems)


def load_settings(settings_cls: type[S]) -> S:
    """Settings from the environment; a bad one exits with one line, not a traceback."""
    try:
        return settings_cls()
    except ValidationError as exc:
        print(
            f"crm_{settings_cls.service_name}: cannot start: {settings_problem(settings_cls, exc)}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
