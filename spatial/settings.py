"""Validated settings, read from the environment (``GRIDGOV_*``) and an optional TOML settings file.

Order of precedence: explicit arguments > environment > settings file > defaults. The settings file is
``$GRIDGOV_SETTINGS`` if set, else ``./gridgov.toml`` if it exists. Nothing here is read at import time:
the CLI and the app factory build a :class:`Settings` and pass it on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import (BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)


def default_data_dir() -> Path:
    """Where the embedded cluster and demo credentials live.

    As root the folder must be reachable by the ``postgres`` system user that runs the cluster, so it is
    ``/var/lib/gridgov`` (root's home is closed to other users); otherwise ``$XDG_DATA_HOME/gridgov``.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/gridgov")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gridgov"


def _settings_file() -> Path:
    return Path(os.environ.get("GRIDGOV_SETTINGS", "gridgov.toml"))


class Settings(BaseSettings):
    """Everything configurable. Units are in the field names (``_m``, ``_s``, ``_bytes``)."""

    model_config = SettingsConfigDict(env_prefix="GRIDGOV_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/psycopg URL of an existing PostGIS database. "
        "Unset: gridgov runs its own embedded cluster in data_dir.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="URL of read replicas (hot standbys of database_url) for reads that may lag: uncached tiles, "
        "OGC API, layer exports, reports and figures (docs/decisions/0022-read-replicas.md). Several hosts and "
        "libpq's routing are allowed, e.g. postgresql://gridgov_app@/gridgov?host=r1,r2,primary&port=5432,5432,"
        "5432&target_session_attrs=prefer-standby&load_balance_hosts=random; log in as database_url does. A "
        "caller's reads wait for the replica to replay their own last write (read_wait_ms), else go to the "
        "primary, as they do while the replica cannot be reached. Unset (default): one database for everything",
    )
    read_wait_ms: int = Field(default=200, ge=0, le=10_000, description="longest wait, in milliseconds, for a "
                              "replica to replay the caller's last write before the read goes to the primary")
    data_dir: Path = Field(default_factory=default_data_dir)
    database_name: str = "gridgov"
    metric_srid: int = Field(
        default=4547,
        description="Projected CRS (EPSG code) in which lengths and areas are measured: "
        "4547 is CGCS2000 3-degree Gauss-Kruger CM 114E, <50 ppm scale error in Shenzhen.",
    )
    grid_households_min: int = Field(default=300, ge=0, description="workload range per grid (practice: 300–500)")
    grid_households_max: int = Field(default=500, ge=1)
    sliver_tolerance_m2: float = Field(default=1.0, ge=0, description="gaps/overlaps below this are ignored")
    token_ttl_s: int = Field(default=12 * 3600, ge=60, le=7 * 24 * 3600,
                             description="bearer token lifetime in seconds (1 minute to 7 days)")
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins of one user name from one client address within "
        "login_window_s before logins of that name from that address are refused (429) until the window has passed")
    login_max_failures_per_address: int = Field(default=30, ge=1,
                                                description="the same, counted per client address (any names)")
    login_max_failures_per_name: int = Field(
        default=50, ge=1, description="the same, counted per user name (any addresses): a ceiling against guessing "
        "from many addresses; locking a name out everywhere takes this many failures, from at least "
        "login_max_failures_per_name / login_max_failures addresses")
    login_window_s: int = Field(default=15 * 60, ge=1)
    reveal_max_per_hour: int = Field(default=30, ge=1, description="unmasked reveals one user may make per hour")
    reveal_exports_max_per_hour: int = Field(default=10, ge=1, description="unmasked community exports one user "
                                             "may make per hour")
    audit_seal_interval_s: float = Field(
        default=5.0, ge=0, le=3600, description="how often each server process chains committed audit rows by hash "
        "(spatial.store.audit_chain); 0: never (then run 'gridgov audit seal' from cron)")
    audit_anchor_file: Path | None = Field(
        default=None, description="where each seal appends the chain's head, outside the database "
        "(default: data_dir/audit-anchors.txt); 'gridgov audit verify' checks the chain against it")
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    case_duplicate_m: float = Field(default=50.0, ge=1, le=1000, description="an open case of the same category "
                                    "within this many metres (measured in metric_srid) of a new report is offered "
                                    "as its duplicate, to the reporter and the dispatcher")
    patrol_track_days: int = Field(default=90, ge=1, le=3650, description="days a patrol's GPS fixes, route and "
                                   "check-in positions are kept after it ended; then 'gridgov patrols prune' reduces "
                                   "it to its scores (personal data kept no longer than needed)")
    patrol_open_hours: float = Field(default=12.0, ge=1, le=72, description="a patrol not ended this many hours "
                                     "after its last fix is closed as abandoned (scored up to its last fix)")
    patrol_checkin_m: float = Field(default=50.0, ge=5, le=1000, description="a check-in farther than this many "
                                    "metres from its building or checkpoint is refused")
    patrol_pass_m: float = Field(default=30.0, ge=1, le=500, description="a building counts as passed on a patrol "
                                 "when the matched route comes this many metres near its footprint")
    import_max_features: int = Field(default=100_000, ge=1, description="features per layer an uploaded file may "
                                     "hold (413 beyond); the command line's imports have no cap")
    workers: int = Field(default=1, ge=1, le=64, description="web server processes; on n cores, about n")
    access_log: bool = Field(default=True, description="log every request (off for benchmarks)")
    host: str = "127.0.0.1"
    port: int = 8000
    backup_key_file: Path | None = Field(
        default=None, description="file whose bytes are the secret of encrypted backups (gridgov backup --encrypt, "
        "restore); keep it 0600 and apart from the backups. Configured: backups are encrypted by default")
    backup_passphrase: SecretStr | None = Field(
        default=None, description="the same secret as a passphrase (at least 12 characters), when no key file is "
        "set")
    personal_key_file: Path | None = Field(
        default=None, description="key file sealing ID and phone numbers at rest (spatial.personal_keys; default: "
        "data_dir/personal.key, created 0600 when missing with the embedded cluster); keep it out of backups")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$", max_length=500,
        description="the service's address as clients reach it (e.g. https://grid.example.cn/gridgov), for the "
        "absolute URLs it hands out (TileJSON, style, OGC and layer links). Unset: http://{host}:{port}. "
        "Never taken from the request's Host header")
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(), description="addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed, "
        "comma-separated (e.g. 127.0.0.1,10.0.0.0/8). Empty (default): the header is ignored and the client is "
        "the connection's peer (api.proxies)")

    risk_scheme: str = Field(default="five_colour", pattern=r"^[a-z][a-z0-9_]{1,39}$", description="the level "
                             "scheme risk zones use unless one is named (a row of risk_schemes: five_colour 五色图, "
                             "control 封控/管控/防范)")
    risk_zone_roles: tuple[str, ...] = Field(default=("planner",), description="roles that designate, change and "
                                             "lift risk zones within their area (admin always may), as a JSON list")
    basemaps: tuple[dict[str, Any], ...] | dict[str, dict[str, Any]] = Field(
        default=(), description="basemap tile services offered under the map pages (off on each page until chosen), "
        "as a JSON list of objects or a [basemaps.<name>] table each: name_zh, name_en, url_template ({z} {x} {y}, "
        "optional {s} and {key}), subdomains, datum (wgs84|gcj02), attribution, max_zoom, key (the name of a "
        "basemap_keys entry). Checked when the app starts (spatial.basemaps); admins may add more (/api/basemaps)")
    basemap_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="secrets that fill {key} in basemap URL templates, by name (e.g. "
        '{"tianditu": "..."}): used only by the server\'s tile proxy, never sent to a browser nor stored')

    @property
    def base_url(self) -> str:
        """:attr:`public_url` without a trailing slash, else ``http://{host}:{port}`` (IPv6 hosts bracketed)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def anchor_path(self) -> Path:
        """:attr:`audit_anchor_file`, or ``audit-anchors.txt`` in :attr:`data_dir`."""
        return self.audit_anchor_file or self.data_dir / "audit-anchors.txt"

    @property
    def personal_key_path(self) -> Path:
        """:attr:`personal_key_file`, or ``personal.key`` in :attr:`data_dir`."""
        return self.personal_key_file or self.data_dir / "personal.key"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[Any] = [init_settings, env_settings]
        if _settings_file().is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_settings_file()))
        return tuple(sources)
