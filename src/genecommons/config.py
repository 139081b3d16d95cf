"""Settings: the only module that reads environment variables.

Every setting has an embedded default so that `make run` works on a laptop: a SQLite file and a
local data directory. Production sets `GENECOMMONS_DATABASE_URL` to PostgreSQL.
"""

from __future__ import annotations

import ipaddress
import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from genecommons.errors import ConfigurationError

MAX_DEFAULT_WORKERS = 4  # SQLite's one writer: more processes would mostly wait for it


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class SettingValueError(ValueError):
    """A value a validator of the settings refuses, said in English and Chinese."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.message_zh = message_zh


class Settings(BaseSettings):
    """GeneCommons settings, read from `GENECOMMONS_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="GENECOMMONS_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path("./genecommons-data"))
    database_url: str | None = None
    # Submissions: limits that keep a hostile upload from exhausting the machine.
    max_submission_bytes: int = 2 * 1024**3
    max_unpacked_bytes: int = 4 * 1024**3
    max_zip_members: int = 10_000
    max_zip_ratio: int = 200
    page_size_default: int = 50
    page_size_max: int = 1000
    # Notifications wait in the outbox table; `genecommons mail deliver` sends them by SMTP.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_sender: str = "noreply@genecommons.invalid"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    # GA4GH passports: this node's issuer URL (its public base URL), the passphrase of the
    # visa signing keys, and a JSON file mapping trusted issuers to their JWKS.
    issuer_url: str = "http://127.0.0.1:8000"
    visa_key_passphrase: SecretStr | None = None
    trusted_issuers_file: Path | None = None
    visa_lifetime_hours: int = 24
    # Sign-in through an external OpenID Connect provider: off unless the issuer is set. The
    # client secret comes from the environment or from a secret file (never from code).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_client_secret_file: Path | None = None
    oidc_scopes: str = "openid email profile"
    oidc_redirect_url: str | None = None  # default: ISSUER_URL/api/v1/auth/oidc/callback
    oidc_login_seconds: int = 600  # how long a started sign-in waits for the provider
    # Self-registration of researchers (e-mail verified through the outbox)
    registration_open: bool = True
    registration_code_hours: int = 24

    @property
    def oidc_enabled(self) -> bool:
        """Whether sign-in through an OpenID Connect provider is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def effective_oidc_redirect_url(self) -> str:
        """Where the provider sends the browser back (registered with the provider)."""
        return self.oidc_redirect_url or (
            self.issuer_url.rstrip("/") + "/api/v1/auth/oidc/callback"
        )

    def oidc_secret(self) -> str | None:
        """The OIDC client secret, from the environment or its secret file (None: a public
        client, which relies on PKCE alone)."""
        if self.oidc_client_secret is not None:
            return self.oidc_client_secret.get_secret_value()
        if self.oidc_client_secret_file is not None:
            try:
                return self.oidc_client_secret_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigurationError(
                    f"GENECOMMONS_OIDC_CLIENT_SECRET_FILE {self.oidc_client_secret_file} "
                    f"cannot be read ({error.strerror}).",
                    message_zh=f"无法读取 GENECOMMONS_OIDC_CLIENT_SECRET_FILE "
                    f"{self.oidc_client_secret_file}（{error.strerror}）。",
                ) from error
        return None

    @property
    def visa_key_dir(self) -> Path:
        """Where the visa signing keys live."""
        return self.data_dir / "keys" / "visas"

    # The node key store (genecommons/secrets.py): a master key in keys/node.key, wrapped by this
    # passphrase (from the environment or a secret file; outside production `init` makes a file
    # in the key directory), from which the keys that encrypt what the node keeps are derived.
    node_key_passphrase: SecretStr | None = None
    node_key_passphrase_file: Path | None = None

    @property
    def key_dir(self) -> Path:
        """Where the node's keys and secrets live (never in the database)."""
        return self.data_dir / "keys"

    @property
    def node_key_file(self) -> Path:
        """The node's master key, wrapped by its passphrase."""
        return self.key_dir / "node.key"

    # Signed tree heads of the audit log: an Ed25519 key, created on `genecommons init`.
    audit_key_passphrase: SecretStr | None = None
    tree_head_interval_seconds: int = 60

    # High-rate events (token use, Beacon queries) are queued with their action and appended to
    # the log in batches this often by `genecommons serve`; the early-warning watcher runs at
    # its own interval there, or by `genecommons audit watch`.
    audit_sequence_interval_seconds: float = Field(default=0.5, gt=0)
    audit_watch_interval_seconds: float = Field(default=30.0, gt=0)
    # Early warning: the rule file (None: the packaged rules) and the webhook alerts are posted
    # to (JSON; signed with HMAC-SHA256 when a secret is set), tried `alert_webhook_tries` times
    # a pass with a timeout, given up after `alert_webhook_max_attempts` tries in all.
    alert_rules_file: Path | None = None
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    alert_webhook_tries: int = Field(default=3, ge=1)
    alert_webhook_backoff_seconds: float = Field(default=0.5, ge=0)
    alert_webhook_max_attempts: int = Field(default=12, ge=1)

    @property
    def audit_key_file(self) -> Path:
        """Where the audit log's signing key lives (never in the database)."""
        return self.data_dir / "keys" / "tree-head-ed25519.pem"

    # Fingerprinted deliveries: the node's secret that keys every recipient's marks (created on
    # `genecommons init`; losing it makes past deliveries untraceable, so back it up).
    @property
    def fingerprint_key_file(self) -> Path:
        """Where the fingerprint secret lives (never in the database)."""
        return self.data_dir / "keys" / "fingerprint.key"

    # The archive: where encrypted objects live (a directory by default, or s3://bucket/prefix)
    # and the passphrase of its Crypt4GH secret key, from the environment or a secret file.
    archive_url: str | None = None
    archive_s3_endpoint_url: str | None = None
    archive_s3_region: str = "us-east-1"
    archive_s3_access_key: SecretStr | None = None
    archive_s3_secret_key: SecretStr | None = None
    archive_key_passphrase: SecretStr | None = None
    archive_key_passphrase_file: Path | None = None
    max_upload_bytes: int = 200 * 1024**3
    # An upload left open this long since its last bytes is closed ("expired") and its staged
    # bytes deleted, by `genecommons archive expire-uploads` and by `serve` (at start and then
    # every `upload_expiry_check_minutes`).
    upload_expiry_hours: float = Field(default=72.0, gt=0)
    upload_expiry_check_minutes: float = Field(default=60.0, gt=0)
    # Tickets for htsget data blocks and DRS access URLs stay valid this long.
    signed_url_seconds: int = 3600

    # Recipients' fingerprinted copies are built in the background, never in a request: `serve`
    # looks for pending builds every `copy_build_poll_seconds` and runs them in a process of
    # their own (or `genecommons fingerprint build-pending` does). A build whose heartbeat has
    # been silent for `copy_build_lease_seconds` (its process died) is tried again, at most
    # `copy_build_max_attempts` times in all; a request for a copy not ready yet is told to come
    # back after `copy_retry_after_seconds`, or sooner or later as the build's progress says.
    copy_build_poll_seconds: float = Field(default=2.0, gt=0)
    copy_build_lease_seconds: float = Field(default=120.0, gt=0)
    copy_build_max_attempts: int = Field(default=3, ge=1)
    copy_retry_after_seconds: int = Field(default=5, ge=1, le=3600)

    @property
    def archive_key_dir(self) -> Path:
        """Where the archive's Crypt4GH key pair lives (never in the database)."""
        return self.data_dir / "keys" / "archive"

    @property
    def effective_archive_url(self) -> str:
        """The object store URL: the configured one, or a directory in the data directory."""
        return self.archive_url or str(self.data_dir / "archive")

    @property
    def staging_dir(self) -> Path:
        """Where uploads wait until they are checked and encrypted."""
        return self.data_dir / "staging"

    # The open tier's Beacon (privacy/beacon_guard.py): an allele is said to exist only when its
    # count in the dataset clears a threshold drawn, once per variant, by a keyed PRF from
    # [min, max] allele copies with the chances of a discretised Beta(alpha, beta) (1, 1, the
    # default, is uniform: no other shape measured robustly better against an attacker who
    # knows the rule, docs/privacy.md); max <= 1% of the alleles called keeps
    # every allele of frequency >= 1% answered (a 2,000-person cohort calls 4,000). The key is
    # made on init. With a public reference loaded (`genecommons variants load-reference`), each
    # variant's window is instead `window` thresholds within [1, max], placed where its public
    # count says the dataset's count is unlikely to be (3 measured best, docs/privacy.md).
    beacon_threshold_min: int = Field(default=10, ge=1)
    beacon_threshold_max: int = Field(default=40, ge=1)
    beacon_threshold_alpha: float = Field(default=1.0, gt=0, le=100)
    beacon_threshold_beta: float = Field(default=1.0, gt=0, le=100)
    beacon_threshold_window: int = Field(default=3, ge=1)
    # Small datasets (privacy/cohort_size.py): under `common_only_below` Beacon members only
    # alleles the public reference makes near certain to be present (a chance of absence among
    # the other members of at most `common_miss`: 1e-4 keeps 5,000 queries under an expected
    # half an absent one) are answered, and under `no_answer_below` (where even an allele of
    # 10% frequency is not near certain) no variant; the cuts come from the attack figures in
    # docs/privacy.md ("Small cohorts").
    beacon_no_answer_below: int = Field(default=45, ge=1)
    beacon_common_only_below: int = Field(default=500, ge=1)
    beacon_common_miss: float = Field(default=1e-4, gt=0, lt=1)
    # Count granularity: what one account, and one network address, may learn about the members
    # of a dataset (Raisaro et al. 2017), in expected pivotal answers; warned at the fraction.
    beacon_budget: float = Field(default=100.0, gt=0)
    beacon_budget_warning: float = Field(default=0.8, gt=0, le=1)
    # The same budget pooled against sybils (docs/privacy.md "Sybils"): every account of an
    # institution (the count tier needs a verified one) draws on one budget per dataset, and
    # all registered callers together on one budget per dataset and period of `window` days.
    beacon_institution_budget: float = Field(default=100.0, gt=0)
    beacon_dataset_budget: float = Field(default=1000.0, gt=0)
    beacon_budget_window: int = Field(default=30, ge=1)
    # Open-tier frequencies (privacy/dp.py): each noisy count is drawn once with OpenDP's
    # discrete Laplace at this epsilon per count and stored; counts below the cell size are
    # shown as "< k".
    frequency_epsilon: float = Field(default=1.0, gt=0)
    frequency_min_cell: int = Field(default=10, ge=1)
    # How often `genecommons serve` looks for datasets whose privacy measurement they have
    # outgrown (privacy/report_model.py) and measures them again with the inputs recorded, in
    # a process of its own at low priority (0: never; `genecommons privacy reassess` by hand).
    privacy_reassess_interval_seconds: float = Field(default=3600.0, ge=0)
    # The genome-wide bound on those releases (privacy/detection.py, SecureGenome): a dataset
    # releases new variant tables only while the Homer / Sankararaman likelihood-ratio test on
    # everything released stays under this power at this false-positive rate, then withholds
    # new ones (tables released stay). With `expected_variants`, the per-variant epsilon is
    # lowered so that about that many common variants fit in the bound (more noise each).
    frequency_detection_power: float = Field(default=0.10, gt=0, lt=1)
    frequency_detection_fpr: float = Field(default=0.05, gt=0, lt=1)
    frequency_expected_variants: int | None = Field(default=None, ge=1)

    @property
    def beacon_key_file(self) -> Path:
        """Where the key of the Beacon's threshold PRF lives (never in the database)."""
        return self.data_dir / "keys" / "beacon-threshold.key"

    # Public reference allele counts (variants/reference.py: gnomAD, ChinaMAP, or another panel
    # of people outside the cohort, matching its ancestry), by which the Beacon's defence places
    # each variant's threshold window; built by `genecommons variants load-reference VCF`.
    beacon_reference: Path | None = None

    @property
    def effective_beacon_reference(self) -> Path:
        """The public reference file: the configured one, or one in the data directory."""
        return self.beacon_reference or self.data_dir / "variants" / "reference.sqlite"

    # What boolean and count Beacon answers reveal: "defended" (privacy/beacon_guard.py) or
    # "exact", the undefended truth, only to measure the attacks against (refused in production).
    beacon_guard: Literal["defended", "exact"] = "defended"

    # `genecommons serve`: how many worker processes answer HTTP requests (each with its own
    # database connections; the audit log's sequencer and watcher run once, in the parent).
    # Unset: one per core, up to MAX_DEFAULT_WORKERS (one Python process runs Python code on
    # one core at a time).
    workers: int | None = Field(default=None, ge=1)
    # `genecommons serve`: how long a worker may take to answer the server's health check, from
    # its start (it imports the app first: seconds on a loaded machine) and while it runs; a
    # worker silent for longer is killed and replaced. 工作进程健康检查的最长等待（秒）。
    worker_startup_seconds: int = Field(default=60, ge=5)

    @property
    def effective_workers(self) -> int:
        """The worker processes `genecommons serve` starts: the setting, or one per core."""
        return self.workers or max(1, min(_usable_cores(), MAX_DEFAULT_WORKERS))

    # `genecommons serve`: how many requests one keep-alive connection carries before the
    # server closes it (the client reconnects and is placed on a worker afresh), so that
    # long-lived connections keep spreading over the workers (genecommons/keepalive.py); 0 keeps
    # connections open as long as clients do.
    keepalive_requests: int = Field(default=100, ge=0)

    # `genecommons serve`: the peers whose X-Forwarded-For and X-Forwarded-Proto are believed
    # (comma-separated addresses or networks: the reverse proxies in front of the node). Empty,
    # the default, believes no one: the address of a request (in the audit log, and for the
    # sign-in throttle) is then always the peer that connected. 信任其转发头的代理地址。
    forwarded_allow_ips: str = ""
    # `genecommons serve`: how long a client may take to send a request's head (request line and
    # headers), from connecting or from its first byte; and how long a request body may go
    # without arriving at `body_min_bytes_per_second` on average (checked over windows of
    # `body_timeout_seconds`; the time the server itself is not reading does not count, so a
    # slow but progressing upload of any size goes through). Past either, the server answers
    # 408 and closes the connection (serving.py). 请求头与请求体超时。
    header_timeout_seconds: float = Field(default=20.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    body_min_bytes_per_second: int = Field(default=240, ge=0)
    # The largest JSON request body a route reads (json_bodies.py); files go through uploads.
    max_json_body_bytes: int = Field(default=1024**2, ge=1024)

    # The Beacon v2 (/beacon): who it says it is, and the largest question it answers.
    beacon_id: str = "org.genecommons.beacon"
    beacon_name: str = "GeneCommons Beacon"
    beacon_organization: str = "GeneCommons node"
    beacon_max_range: int = 1_000_000  # bases of a range or bracket query
    beacon_max_variants: int = 10_000  # matching variants of one dataset
    # Counts of individuals and biosamples below record granularity (privacy/cells.py): a
    # keyed discrete Laplace noise at this scale, the same for the same set of people, and
    # noisy counts under the cell size not disclosed.
    beacon_people_min_cell: int = Field(default=10, ge=1)
    beacon_people_noise: float = Field(default=2.0, gt=0)

    # Operations (ops/): JSON log lines instead of text (`json`), one a line, each with the
    # request id of the request it was written for; who may read GET /metrics besides a token
    # with the `ops:metrics:read` scope (comma-separated addresses or networks, e.g. the
    # Prometheus server); how far behind the audit log's sequencer may fall before GET /readyz
    # says the node is not ready. 运维：日志格式、可读取指标的地址、审计排序延迟上限。
    log_format: Literal["text", "json"] = "text"
    metrics_allow_ips: str = ""
    ready_max_sequencer_lag_seconds: float = Field(default=30.0, gt=0)
    # Set by `genecommons serve` for its worker processes (never by hand): the directory where
    # each worker writes its metrics for whichever worker answers GET /metrics to add up.
    metrics_multiprocess_dir: Path | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )

    @property
    def metrics_dir(self) -> Path:
        """Where `genecommons serve` keeps its workers' metric files (emptied at each start)."""
        return self.data_dir / "metrics"

    @property
    def metrics_allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks of `metrics_allow_ips` (an address is a network of one)."""
        return [
            ipaddress.ip_network(p, strict=False)
            for p in (p.strip() for p in self.metrics_allow_ips.split(","))
            if p
        ]

    @property
    def forwarded_proxies(self) -> list[str]:
        """The trusted proxies of `forwarded_allow_ips`, each an address or a network written
        canonically (`10.0.0.7/24` is the network 10.0.0.0/24)."""
        return [
            str(ipaddress.ip_network(p, strict=False)) if "/" in p else str(ipaddress.ip_address(p))
            for p in (p.strip() for p in self.forwarded_allow_ips.split(","))
            if p
        ]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for proxy in (p.strip() for p in value.split(",")):
            if not proxy:
                continue
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingValueError(
                    f"GENECOMMONS_FORWARDED_ALLOW_IPS: {proxy[:60]!r} is not an IP address or "
                    "network; name each reverse proxy (e.g. 10.0.0.5 or 10.0.0.0/24), never '*'",
                    f"GENECOMMONS_FORWARDED_ALLOW_IPS：{proxy[:60]!r} 不是 IP 地址或网段；请逐个写出"
                    "反向代理（如 10.0.0.5 或 10.0.0.0/24），不可使用 '*'",
                ) from None
        return value

    @field_validator("metrics_allow_ips")
    @classmethod
    def _metrics_networks(cls, value: str) -> str:
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"GENECOMMONS_METRICS_ALLOW_IPS: {item[:60]!r} is not an IP address or "
                    "network; name the Prometheus servers (e.g. 10.0.0.9 or 10.0.0.0/24)"
                ) from None
        return value

    @field_validator("data_dir", "beacon_reference")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if self.beacon_threshold_min > self.beacon_threshold_max:
            raise SettingValueError(
                "GENECOMMONS_BEACON_THRESHOLD_MIN must not exceed GENECOMMONS_BEACON_THRESHOLD_MAX",
                "GENECOMMONS_BEACON_THRESHOLD_MIN 不得大于 GENECOMMONS_BEACON_THRESHOLD_MAX",
            )
        if self.beacon_threshold_window > self.beacon_threshold_max:
            raise SettingValueError(
                "GENECOMMONS_BEACON_THRESHOLD_WINDOW must not exceed GENECOMMONS_BEACON_THRESHOLD_MAX",
                "GENECOMMONS_BEACON_THRESHOLD_WINDOW 不得大于 GENECOMMONS_BEACON_THRESHOLD_MAX",
            )
        if self.beacon_no_answer_below > self.beacon_common_only_below:
            raise SettingValueError(
                "GENECOMMONS_BEACON_NO_ANSWER_BELOW must not exceed "
                "GENECOMMONS_BEACON_COMMON_ONLY_BELOW",
                "GENECOMMONS_BEACON_NO_ANSWER_BELOW 不得大于 GENECOMMONS_BEACON_COMMON_ONLY_BELOW",
            )
        if self.environment == "production" and self.beacon_guard == "exact":
            raise SettingValueError(
                "GENECOMMONS_BEACON_GUARD=exact answers the Beacon undefended; it is refused in "
                "production (use it only to measure the re-identification attacks)",
                "GENECOMMONS_BEACON_GUARD=exact 使 Beacon 不设防地作答，生产环境拒绝此设置"
                "（仅用于测量再识别攻击）",
            )
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL: the configured one, or a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'genecommons.sqlite3'}"


ENV_PREFIX = "GENECOMMONS_"
SHOWN_CHARACTERS = 60  # characters of a refused value repeated in the message


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (`values` given in code take precedence), or a
    ConfigurationError naming each refused variable, its value and what it accepts."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise settings_error(error) from None


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return load_settings()


def settings_error(error: ValidationError) -> ConfigurationError:
    """The one-line bilingual error for the settings `error` refused: per problem, the variable,
    the value given (never a secret's) and what the variable accepts."""
    english: list[str] = []
    chinese: list[str] = []
    problems: list[dict[str, Any]] = []
    for item in error.errors():
        cause = (item.get("ctx") or {}).get("error")
        name = str(item["loc"][0]) if item["loc"] else None
        if isinstance(cause, SettingValueError):  # a rule of ours: it names its variables
            english.append(str(cause))
            chinese.append(cause.message_zh)
            problems.append({"variable": _variable(name) if name else None, "rule": str(cause)})
            continue
        if name is None or name not in Settings.model_fields:
            english.append(str(item["msg"]))
            chinese.append(str(item["msg"]))
            problems.append({"variable": None, "rule": str(item["msg"])})
            continue
        variable = _variable(name)
        shown = _shown(name, item.get("input"))
        accepted_en, accepted_zh = accepted(name)
        english.append(f"{variable}={shown} is not accepted: it takes {accepted_en}")
        chinese.append(f"{variable}={shown} 无效：可接受的值为{accepted_zh}")
        problems.append({"variable": variable, "value": shown, "accepted": accepted_en})
    return ConfigurationError(
        "; ".join(english) + ". Fix the variable and start again.",
        message_zh="；".join(chinese) + "。请修正该变量后重新启动。",
        details={"settings": problems},
    )


def _variable(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _shown(name: str, value: Any) -> str:
    """The refused value as the message repeats it: quoted, cut short, a secret's hidden."""
    if _base_type(Settings.model_fields[name].annotation) is SecretStr:
        return "(hidden / 已隐藏)"
    text = value if isinstance(value, str) else str(value)
    if len(text) > SHOWN_CHARACTERS:
        text = text[:SHOWN_CHARACTERS] + "…"
    return repr(text)


def _base_type(annotation: Any) -> Any:
    """The type of a setting without its `None` (an optional setting's value type)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kept[0] if len(kept) == 1 else annotation
    return annotation


def accepted(name: str) -> tuple[str, str]:
    """What the setting `name` accepts, in English and Chinese (for error messages)."""
    field = Settings.model_fields[name]
    base = _base_type(field.annotation)
    optional = base is not field.annotation
    if typing.get_origin(base) is Literal:
        choices = ", ".join(str(c) for c in typing.get_args(base))
        en, zh = f"one of {choices}", f"以下之一：{choices}"
    elif base is bool:
        en = "true or false (also 1/0, yes/no, on/off)"
        zh = "true 或 false（也可用 1/0、yes/no、on/off）"
    elif base is int:
        en, zh = "a whole number", "整数"
    elif base is float:
        en, zh = "a number", "数值"
    elif base is Path:
        en, zh = "a file or directory path", "文件或目录路径"
    else:
        en, zh = "text", "文本"
    # pydantic keeps Field(ge=..., ...) as metadata objects with these attributes
    bounds = [
        (symbol, getattr(rule, attribute))
        for rule in field.metadata
        for symbol, attribute in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
        if getattr(rule, attribute, None) is not None
    ]
    if bounds:
        limits = " and ".join(f"{symbol} {limit}" for symbol, limit in bounds)
        en, zh = f"{en} {limits}", f"{zh}（{' 且 '.join(f'{s} {v}' for s, v in bounds)}）"
    if optional:
        en, zh = f"{en}, or the variable unset", f"{zh}，或不设置该变量"
    return en, zh


def share_metrics_dir(directory: Path) -> None:
    """Name `directory` as the metrics directory of the worker processes started from now on
    (prometheus-client reads PROMETHEUS_MULTIPROC_DIR in each of them), and forget the settings
    read so far so that they are read again with it."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    get_settings.cache_clear()


def unshare_metrics_dir() -> None:
    """Undo `share_metrics_dir` (the server has stopped)."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    get_settings.cache_clear()
