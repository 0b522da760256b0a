"""The deployment files of deploy/, checked statically: no container engine runs here.

- Dockerfile: parsed into stages; the runtime stage builds on the builder's venv, runs as a non-root
  user, has a HEALTHCHECK on /healthz, and puts templates/ where orchestrator.rendering.layouts
  looks for them in an installed package; .dockerignore lets in exactly what the image copies.
- compose.yaml: `docker compose config` when that client exists, PyYAML otherwise; the services,
  their commands, dependencies (migrate before api and workers), health checks, two worker
  replicas, and that the secrets are required.
- systemd units: `systemd-analyze verify` on copies whose ExecStart is this checkout's real
  `outreach` executable (the only change), then `systemd-analyze security` for the hardening.
- outreach.env.example: every field of Settings documented with its true default, no unknown
  OUTREACH_ name, and the file parsed the way `outreach` parses a .env file gives valid Settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import ValidationError

from orchestrator.rendering import layouts
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / "outreach.env.example"
UNITS = DEPLOY / "systemd"
VENV = PurePosixPath("/opt/outreach/venv")
OUTREACH = VENV / "bin" / "outreach"
SECRET = "a-secret-key-for-the-deploy-tests-" + "k" * 20
# Names in the env example that are not settings: compose's PostgreSQL password, libpq's.
OTHER_NAMES = {"POSTGRES_PASSWORD", "PGPASSWORD"}


# -- Dockerfile ----------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def dockerfile_stages(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped, global ARG
    defaults substituted into FROM."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            match = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.IGNORECASE)
            stages.append(Stage(base, match.group(1) if match else None))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, rest))
    return stages


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """`COPY [--flag=value ...] src... dest` as (flags, sources, destination)."""
    words = args.split()
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages((DEPLOY / "Dockerfile").read_text(encoding="utf-8"))


def test_the_image_is_built_in_two_stages_on_python_3_11_slim(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["builder", "runtime"]
    assert {s.base for s in stages} == {"python:3.11-slim"}
    builder, runtime = stages
    builder_copies = [copy_parts(a)[1] for a in builder.all("COPY")]
    assert ["pyproject.toml", "README.md"] in builder_copies
    assert {"orchestrator", "channels"} <= {src for srcs in builder_copies for src in srcs}
    assert any(re.search(rf"{VENV}/bin/pip install \.(\s|$)", run) for run in builder.all("RUN"))
    # The runtime stage takes the venv from the builder and installs nothing itself.
    assert f"--from=builder {VENV} {VENV}" in runtime.all("COPY")
    assert not any("pip install" in run for run in runtime.all("RUN"))


def test_the_runtime_stage_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    users = runtime.all("USER")
    assert users, "the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The user exists in the image with that uid.
    assert any(f"--uid {user} " in run for run in runtime.all("RUN"))
    # No instruction after the last USER switches back.
    last_user = max(i for i, (name, _) in enumerate(runtime.instructions) if name == "USER")
    assert all(name != "USER" for name, _ in runtime.instructions[last_user + 1 :])


def test_the_entrypoint_serves_on_the_exposed_port_and_the_healthcheck_probes_it(
    stages: list[Stage],
) -> None:
    runtime = stages[-1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["outreach"]
    assert "outreach" in scripts
    assert json.loads(runtime.all("CMD")[-1]) == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert runtime.all("EXPOSE") == ["8000"]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    probe = json.loads(command)
    # Exec form with python: the slim image has no curl, and no shell is needed.
    assert probe[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/healthz" in probe[2]
    assert re.search(r"--interval=\d+s", options)
    check_timeout = re.search(r"--timeout=(\d+)s", options)
    probe_timeout = re.search(r"timeout=(\d+)\)", probe[2])
    assert check_timeout and probe_timeout
    # The request gives up before Docker kills the probe, so a hung server counts as unhealthy.
    assert int(probe_timeout[1]) < int(check_timeout[1])
    compile(probe[2], "<healthcheck>", "exec")


def test_the_templates_are_where_the_installed_package_looks_for_them(
    stages: list[Stage],
) -> None:
    # layouts.py looks in the folder that holds the `orchestrator` package: the repository root
    # in a checkout, site-packages once installed with `pip install .`.
    layouts_file = Path(layouts.__file__).resolve()
    assert layouts_file.relative_to(ROOT).parts[0] == "orchestrator"
    assert layouts.TEMPLATES_DIR == ROOT / "templates"
    python = re.fullmatch(r"python:(\d+\.\d+)-slim", stages[-1].base)
    assert python is not None
    site_packages = VENV / "lib" / f"python{python.group(1)}" / "site-packages"
    expected = site_packages / layouts.TEMPLATES_DIR.relative_to(ROOT).as_posix()

    copies = [copy_parts(a) for a in stages[-1].all("COPY")]
    assert (["templates"], str(expected)) in [(srcs, dest) for _, srcs, dest in copies]
    for folder in ("email", "pages", "widget"):
        assert any((ROOT / "templates" / folder).iterdir()), folder
    # The build itself renders the layouts, so a wrong place fails `docker build`.
    assert any("layout_environment('email')" in run for run in stages[-1].all("RUN"))


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = "".join(
            ".*" if token == "**" else "[^/]*" if token == "*" else re.escape(token)
            for token in re.split(r"(\*\*|\*)", pattern)
        )
        regex = regex.replace(".*/", "(.*/)?")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_the_build_context_holds_what_the_image_copies_and_no_secrets(
    stages: list[Stage],
) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for stage in stages
        for flags, srcs, _ in map(copy_parts, stage.all("COPY"))
        if "from" not in flags
        for src in srcs
    ]
    assert len(sources) >= 6
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not dockerignore_excludes(patterns, src), src
    for kept in ("orchestrator/rendering/layouts.py", "orchestrator/migrations/env.py"):
        assert not dockerignore_excludes(patterns, kept), kept
    for secret in (
        ".env",
        "deploy/.env",
        "outreach.db",
        "outreach.db.secret-key",
        "data/outreach.db-wal",
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "orchestrator/__pycache__/app.cpython-311.pyc",
    ):
        assert dockerignore_excludes(patterns, secret), secret


# -- compose -------------------------------------------------------------------------------------


def docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return [docker, "compose"] if probe.returncode == 0 else None


def filled_example(**values: str) -> str:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = re.sub(rf"(?m)^{name}=.*$", f"{name}={value}", text)
    return text


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model: `docker compose config` (interpolated, normalised) when the client has
    compose, else the YAML as written (PyYAML resolves the `<<` merge keys as compose does)."""
    cli = docker_compose()
    if cli is None:
        loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
        return loaded
    # A copy beside a filled-in .env: the checkout has no deploy/.env.
    work = tmp_path_factory.mktemp("compose") / "deploy"
    work.mkdir()
    shutil.copy(DEPLOY / "compose.yaml", work / "compose.yaml")
    (work / ".env").write_text(
        filled_example(OUTREACH_SECRET_KEY=SECRET, POSTGRES_PASSWORD="pg-secret"), "utf-8"
    )
    done = subprocess.run(
        [*cli, "-f", str(work / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    normalised: dict[str, Any] = json.loads(done.stdout)
    return normalised


APP_SERVICES = ("migrate", "api", "worker")


def test_compose_has_the_api_two_workers_migrations_postgres_and_a_mail_catcher(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"api", "worker", "migrate", "postgres", "mailcatcher"}
    assert services["api"]["command"][:1] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["api"]["environment"]["OUTREACH_EMBEDDED_SCHEDULER"] == "false"
    # One image for the three, built from this repository with deploy/Dockerfile.
    assert len({services[s]["image"] for s in APP_SERVICES}) == 1
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    for name in APP_SERVICES:
        build = raw["services"][name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert raw["services"][name]["env_file"] == [".env"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["mailcatcher"]["image"].startswith("axllent/mailpit")


def test_compose_migrates_once_before_the_api_and_the_workers_start(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert "mailcatcher" in depends, name


def test_compose_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    # Short syntax as written, long syntax from `docker compose config`.
    mounts = {
        (v["source"], v["target"]) if isinstance(v, dict) else tuple(v.split(":")[:2])
        for v in postgres["volumes"]
    }
    assert ("pgdata", "/var/lib/postgresql/data") in mounts
    assert "pgdata" in compose["volumes"]
    # The api keeps the image's HEALTHCHECK (/healthz); a worker and migrate serve no HTTP.
    assert not services["api"].get("healthcheck", {}).get("disable", False)
    for name in ("worker", "migrate"):
        assert services[name]["healthcheck"]["disable"] is True, name


def interpolate(text: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (error when unset or empty)."""
    errors: list[str] = []

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name, "")
        if operator == ":?" and not value:
            errors.append(name)
        if operator == ":-" and not value:
            return argument or ""
        return value

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", one, text), errors


def test_compose_refuses_to_start_until_the_secrets_are_set() -> None:
    raw = (DEPLOY / "compose.yaml").read_text("utf-8")
    as_copied = {k: v or "" for k, v in dotenv_values(ENV_EXAMPLE).items()}
    _, errors = interpolate(raw, as_copied)
    assert set(errors) == {"OUTREACH_SECRET_KEY", "POSTGRES_PASSWORD"}
    filled = {**as_copied, "OUTREACH_SECRET_KEY": SECRET, "POSTGRES_PASSWORD": "pg-secret"}
    text, errors = interpolate(raw, filled)
    assert errors == []
    services = yaml.safe_load(text)["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["OUTREACH_SECRET_KEY"] == SECRET, name
        assert environment["PGPASSWORD"] == "pg-secret", name
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret"


def test_the_env_example_points_at_the_compose_services(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = example_settings(monkeypatch)
    postgres_env = compose["services"]["postgres"]["environment"]
    url = re.fullmatch(r"postgresql\+psycopg://(\w+)@(\w+):5432/(\w+)", settings.database_url)
    assert url is not None, settings.database_url
    assert url.groups() == (postgres_env["POSTGRES_USER"], "postgres", postgres_env["POSTGRES_DB"])
    assert (settings.smtp_host, settings.smtp_port) == ("mailcatcher", 1025)


# -- systemd -------------------------------------------------------------------------------------


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) in order; keys may repeat, as systemd allows."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        key, _, value = stripped.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_entries(path) if (s, k) == (section, key)]


UNIT_COMMANDS = {
    "outreach-api.service": "serve",
    "outreach-worker@.service": "worker",
    "outreach-migrate.service": "migrate",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


def test_the_units_run_the_installed_command_as_a_dedicated_user_with_hardening() -> None:
    assert {p.name for p in UNITS.iterdir()} == set(UNIT_COMMANDS)
    for name, command in UNIT_COMMANDS.items():
        unit = UNITS / name
        assert unit_values(unit, "Service", "ExecStart") == [f"{OUTREACH} {command}"], name
        assert unit_values(unit, "Service", "User") == ["outreach"], name
        assert unit_values(unit, "Service", "EnvironmentFile") == ["/etc/outreach/outreach.env"]
        for key, value in HARDENING.items():
            assert unit_values(unit, "Service", key) == [value], (name, key)
        (state,) = unit_values(unit, "Service", "StateDirectory")
        assert unit_values(unit, "Service", "WorkingDirectory") == [f"/var/lib/{state}"], name
        assert unit_values(unit, "Install", "WantedBy") == ["multi-user.target"], name


def test_migrations_run_once_before_the_api_and_each_worker() -> None:
    migrate = UNITS / "outreach-migrate.service"
    assert unit_values(migrate, "Service", "Type") == ["oneshot"]
    # Stays active once done, so that Requires= in the other units is satisfied.
    assert unit_values(migrate, "Service", "RemainAfterExit") == ["yes"]
    for name in ("outreach-api.service", "outreach-worker@.service"):
        unit = UNITS / name
        assert "outreach-migrate.service" in " ".join(unit_values(unit, "Unit", "Requires"))
        assert "outreach-migrate.service" in " ".join(unit_values(unit, "Unit", "After"))
        assert unit_values(unit, "Service", "Restart") == ["on-failure"], name
    # A template: `outreach-worker@1`, `@2`, ... are separate processes.
    assert "%i" in unit_values(UNITS / "outreach-worker@.service", "Unit", "Description")[0]


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    return tool


@pytest.fixture
def runnable_units(tmp_path: Path) -> Path:
    """The units with ExecStart on this checkout's `outreach` (the same console script the venv
    of /opt/outreach would hold): verify checks that the executable exists."""
    executable = ROOT / ".venv" / "bin" / "outreach"
    assert executable.is_file()
    for unit in UNITS.iterdir():
        text = unit.read_text(encoding="utf-8")
        assert f"ExecStart={OUTREACH} " in text
        (tmp_path / unit.name).write_text(text.replace(str(OUTREACH), str(executable)), "utf-8")
    return tmp_path


def verify(tool: str, units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_finds_nothing_to_report(runnable_units: Path) -> None:
    tool = systemd_analyze()
    units = sorted(runnable_units.iterdir())
    done = verify(tool, units)
    # verify exits 0 on unknown keys and bad values too, so any output is a failure.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # The control: the same check reports a misspelt key in an otherwise identical unit.
    broken = runnable_units / "outreach-api.service"
    broken.write_text(broken.read_text("utf-8").replace("ProtectSystem=", "ProtectSytem="), "utf-8")
    done = verify(tool, units)
    assert "Unknown key 'ProtectSytem'" in done.stdout + done.stderr


def test_systemd_analyze_security_rates_every_unit_ok(runnable_units: Path) -> None:
    tool = systemd_analyze()
    for unit in sorted(runnable_units.iterdir()):
        done = subprocess.run(
            # --threshold=20: exit non-zero above an exposure of 2.0 ("OK" ends at 3.9).
            [tool, "security", "--offline=yes", "--threshold=20", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        assert exposure is not None, done.stdout + done.stderr
        assert done.returncode == 0 and float(exposure.group(1)) <= 2.0, (unit.name, exposure[0])


# -- the env example -----------------------------------------------------------------------------


@dataclass
class Documented:
    name: str
    value: str
    active: bool
    comments: list[str]


VARIABLE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def documented_variables(text: str) -> list[Documented]:
    """Each variable line (active, or commented out as an example) with the comment lines just
    above it, back to the previous variable or blank line."""
    found: list[Documented] = []
    comments: list[str] = []
    for line in text.splitlines():
        match = VARIABLE.match(line)
        if match:
            found.append(Documented(match[2], match[3], match[1] is None, comments))
            comments = []
        elif line.startswith("#"):
            comments.append(line.lstrip("#").strip())
        else:
            comments = []
    return found


def setting_name(field_name: str) -> str:
    return str(Settings.model_config["env_prefix"]) + field_name.upper()


@pytest.fixture(autouse=True)
def no_outreach_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Settings read the process environment before the file; only what a test sets may count."""
    for name in list(os.environ):
        if name.startswith("OUTREACH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def example_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> Settings:
    """The example read as `outreach` reads a .env file, with the secret key given."""
    with monkeypatch.context() as patch:
        for name, value in {"OUTREACH_SECRET_KEY": SECRET, **environment}.items():
            patch.setenv(name, value)
        return Settings(_env_file=ENV_EXAMPLE)


def test_every_setting_is_documented_once_and_nothing_else_is() -> None:
    variables = documented_variables(ENV_EXAMPLE.read_text(encoding="utf-8"))
    names = [v.name for v in variables]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    expected = {setting_name(f) for f in Settings.model_fields}
    assert "OUTREACH_DATABASE_URL" in expected  # the field names were read at all
    assert expected - set(names) == set(), "settings missing from deploy/outreach.env.example"
    assert set(names) - expected == OTHER_NAMES, "names that are no setting"
    for variable in variables:
        description = [c for c in variable.comments if not c.startswith("Default:")]
        assert description, f"{variable.name} has no comment saying what it means"


def test_every_documented_default_is_the_settings_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings(_env_file=None)
    for field_name in Settings.model_fields:
        name = setting_name(field_name)
        (variable,) = (
            v for v in documented_variables(ENV_EXAMPLE.read_text("utf-8")) if v.name == name
        )
        stated = [c for c in variable.comments if c.startswith("Default:")]
        assert len(stated) == 1, f"{name}: no 'Default:' line"
        text = stated[0].removeprefix("Default:").strip()
        default = getattr(defaults, field_name)
        if text == "unset":
            assert default is None, name
            continue
        if text == "empty":
            assert default in ("", ()), name
            continue
        literal = re.fullmatch(r"`([^`]*)`", text)
        assert literal is not None, f"{name}: write the default as `value`, unset or empty"
        monkeypatch.setenv(name, literal[1])
        assert getattr(Settings(_env_file=None), field_name) == default, name
        monkeypatch.delenv(name)


def test_the_example_parses_into_the_settings_compose_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = example_settings(monkeypatch)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == SECRET
    assert settings.embedded_scheduler is False
    # The double quotes around a value with spaces are the file's, not the value's.
    assert settings.email_from == "Outreach <outreach@example.com>"
    assert settings.public_url.startswith("https://")
    # Left empty on purpose: the copied file is refused until a real key is set.
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=ENV_EXAMPLE)


def test_every_commented_out_example_value_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    examples = [
        v
        for v in documented_variables(ENV_EXAMPLE.read_text("utf-8"))
        if not v.active and v.name.startswith("OUTREACH_")
    ]
    assert len(examples) >= 20
    for variable in examples:
        field_name = variable.name.removeprefix("OUTREACH_").lower()
        settings = example_settings(monkeypatch, **{variable.name: variable.value})
        assert getattr(settings, field_name) is not None, variable.name


def test_the_example_reads_the_same_in_compose_systemd_and_dotenv() -> None:
    """Keep to the subset of the three formats that agree: KEY=value, double quotes only around
    values with spaces, no `$` (compose expands it), no comment after a value, no `export`."""
    text = ENV_EXAMPLE.read_text("utf-8")
    active = {v.name: v.value for v in documented_variables(text) if v.active}
    for name, value in active.items():
        assert "$" not in value and "'" not in value and " #" not in value, name
        if " " in value:
            assert value.startswith('"') and value.endswith('"'), name
            assert value.count('"') == 2, name
    assert not re.search(r"(?m)^\s*export\s", text)
    parsed = dotenv_values(ENV_EXAMPLE)
    assert set(parsed) == set(active)
    assert {k: v or "" for k, v in parsed.items()} == {k: v.strip('"') for k, v in active.items()}
