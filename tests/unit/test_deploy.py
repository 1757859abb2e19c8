"""deploy/, by parsing only (nothing is built or started): the compose file, the Kubernetes
manifests, the systemd units, the Dockerfile and the nginx config run the right `syncd` command,
probe /healthz and /readyz, migrate once, keep secrets out of the files, and name only settings
that syncd.settings.SPEC declares."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.settings import SPEC, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
OPTIONS = {option.env: option for option in SPEC}
# The values that must come from an env file or a Secret, never from the files in deploy/.
SECRETS = {env for env, option in OPTIONS.items() if option.secret} | {
    "SYNCD_DATABASE_URL",  # holds the database password
    "SYNCD_CRM_DATABASE_URL",
}
REQUIRED_SECRETS = {
    "SYNCD_ENCRYPTION_KEYS",
    "SYNCD_JWT_SECRET",
    "XERO_CLIENT_SECRET",
    "XERO_WEBHOOK_KEY",
    "SYNCD_CRM_WEBHOOK_SECRET",
    "SYNCD_DATABASE_URL",
}
WEBHOOK_PATHS = ("/api/integrations/xero/webhook", "/api/crm/events")
INTERPOLATION = re.compile(r"\$\{[A-Z_]+(:?[-?][^}]*)?\}")


def _default(env: str) -> str:
    default = OPTIONS[env].default
    assert default is not None
    return default


# -- Dockerfile -----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not the exec (JSON) form: {arguments}"
    return [str(part) for part in value]


def entrypoint() -> list[str]:
    [arguments] = [rest for keyword, rest in final_stage() if keyword == "ENTRYPOINT"]
    return exec_form(arguments)


def test_dockerfile_builds_on_slim_python_311_and_runs_as_non_root() -> None:
    """Every stage starts from python:3.11-slim; the final one runs as a numeric non-root user."""
    bases = [rest.split()[0] for keyword, rest in dockerfile() if keyword == "FROM"]
    assert bases
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot check it"
    assert int(uid) != 0


def test_dockerfile_installs_from_pyproject_with_the_optional_constraints_file() -> None:
    """pyproject.toml is installed, with constraints.txt when the repository has one."""
    copies = " ".join(rest for keyword, rest in dockerfile() if keyword == "COPY")
    assert "pyproject.toml" in copies
    # A wildcard, so that the COPY succeeds without the file.
    assert "constraints*.txt" in copies
    runs = " ".join(rest for keyword, rest in dockerfile() if keyword == "RUN")
    assert "pip install" in runs
    assert "[ -f constraints.txt ]" in runs
    assert "--constraint constraints.txt" in runs
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "syncd/", "reconcilers/"):
        assert f"!{needed}" in ignore, f"the build context leaves out {needed}"


def test_dockerfile_healthcheck_calls_healthz_with_python_not_curl() -> None:
    """HEALTHCHECK asks /healthz through Python's urllib: the slim image has no curl."""
    [check] = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    command = exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/healthz" in command[2]
    instructions = " ".join(rest for _, rest in dockerfile())
    assert "curl" not in instructions
    assert "wget" not in instructions


def test_dockerfile_serves_by_default_and_never_migrates_on_start() -> None:
    """ENTRYPOINT is `syncd`, CMD `serve`; no instruction runs `syncd migrate`."""
    assert entrypoint() == ["syncd"]
    [cmd] = [rest for keyword, rest in final_stage() if keyword == "CMD"]
    assert exec_form(cmd) == ["serve"]
    for keyword, rest in dockerfile():
        if keyword in {"RUN", "CMD", "ENTRYPOINT"}:
            assert "migrate" not in rest, f"{keyword} {rest}"


def test_dockerfile_sets_container_defaults_and_no_secrets() -> None:
    """ENV listens on 0.0.0.0 with JSON logs; it names only known settings and no secret."""
    names: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            names.update(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", rest))
    settings = {
        name: value for name, value in names.items() if name.startswith(("SYNCD_", "XERO_"))
    }
    assert set(settings) <= set(OPTIONS)
    assert not set(settings) & SECRETS
    assert ip_address(settings["SYNCD_HOST"]).is_unspecified
    assert settings["SYNCD_LOG_FORMAT"] == "json"
    load_settings(settings, env_file=None)


# -- compose --------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def syncd_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {
        name: service
        for name, service in services.items()
        if str(service.get("image", "")).startswith("syncd")
    }


def compose_command(service: dict[str, Any]) -> list[str]:
    return [*service.get("entrypoint", entrypoint()), *service["command"]]


def services_running(subcommand: str) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in syncd_services().items()
        if compose_command(service) == ["syncd", subcommand]
    }


def replicas(service: dict[str, Any]) -> int:
    return int(service.get("deploy", {}).get("replicas", 1))


def test_compose_runs_migrate_once_then_two_web_and_two_workers() -> None:
    """One `syncd migrate` (not restarted), two `syncd serve`, two `syncd worker` (replicas)."""
    for service in syncd_services().values():
        assert compose_command(service)[:1] == ["syncd"]
        assert compose_command(service)[1] in {"serve", "worker", "migrate"}
    [migrate] = services_running("migrate").values()
    assert replicas(migrate) == 1
    assert migrate["restart"] == "no"
    assert sum(replicas(s) for s in services_running("serve").values()) == 2
    assert sum(replicas(s) for s in services_running("worker").values()) == 2


def test_compose_starts_web_and_workers_only_after_migrate_succeeded() -> None:
    """Web and workers depend on migrate's success; migrate waits for a healthy PostgreSQL."""
    [(migrate_name, migrate)] = services_running("migrate").items()
    for name, service in {**services_running("serve"), **services_running("worker")}.items():
        condition = service["depends_on"][migrate_name]["condition"]
        assert condition == "service_completed_successfully", name
    [database] = migrate["depends_on"]
    assert compose()["services"][database]["image"].startswith("postgres:")
    assert migrate["depends_on"][database]["condition"] == "service_healthy"


def test_compose_healthcheck_only_where_there_is_http() -> None:
    """Web keeps the image's /healthz check; workers and migrate (no HTTP port) disable it."""
    for service in services_running("serve").values():
        assert not service.get("healthcheck", {}).get("disable", False)
    for service in {**services_running("worker"), **services_running("migrate")}.values():
        assert service["healthcheck"]["disable"] is True


def test_compose_settings_are_known_and_secrets_come_from_the_env_file() -> None:
    """`environment` names SPEC settings only, holds no secret literally, and the values parse."""
    for name, service in syncd_services().items():
        assert service["env_file"] == "syncd.env", name
        environment: dict[str, str] = service["environment"]
        assert set(environment) <= set(OPTIONS), name
        for env, value in environment.items():
            if env in SECRETS:
                assert INTERPOLATION.search(value), f"{name}: {env} is written into the file"
        url = environment["SYNCD_DATABASE_URL"]
        assert re.fullmatch(r"postgresql://syncd:\$\{POSTGRES_PASSWORD:\?[^}]+\}@[^/]+/syncd", url)
        assert ip_address(environment["SYNCD_HOST"]).is_unspecified
        assert environment["SYNCD_LOG_FORMAT"] == "json"
        assert environment["SYNCD_PORT"] == _default("SYNCD_PORT")
        load_settings(
            {env: INTERPOLATION.sub("x", value) for env, value in environment.items()},
            env_file=None,
        )
    database = compose()["services"]["postgres"]["environment"]
    assert INTERPOLATION.fullmatch(database["POSTGRES_PASSWORD"])


# -- nginx ----------------------------------------------------------------------------------


def nginx() -> str:
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def nginx_block(opening: str) -> str:
    """The text between `opening {` and its closing brace (blocks nest)."""
    text = nginx()
    start = text.index(opening + " {") + len(opening) + 2
    depth = 1
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start:position]
    raise AssertionError(f"unclosed block {opening}")


def directive(block: str, name: str) -> list[str]:
    return re.findall(rf"(?m)^\s*{name}\s+([^;]+);", block)


def nginx_bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([km]?)", size.lower())
    assert match is not None, size
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[match[2]]


def nginx_seconds(duration: str) -> int:
    assert re.fullmatch(r"\d+s?", duration), duration
    return int(duration.removesuffix("s"))


@pytest.mark.parametrize("path", WEBHOOK_PATHS)
def test_proxy_limits_webhook_bodies_to_syncds_limit(path: str) -> None:
    """Webhook bodies past SYNCD_WEBHOOK_MAX_BYTES' default get nginx's 413; answers wait ≤ 5 s."""
    block = nginx_block(f"location = {path}")
    [size] = directive(block, "client_max_body_size")
    assert nginx_bytes(size) == int(_default("SYNCD_WEBHOOK_MAX_BYTES"))
    [read_timeout] = directive(block, "proxy_read_timeout")
    assert nginx_seconds(read_timeout) <= 5  # Xero's deadline for an answer
    assert directive(block, "proxy_pass") == ["http://syncd"]


def test_proxy_cuts_off_slow_clients() -> None:
    """Header and body timeouts are set for every request, no looser than syncd's own."""
    http = nginx_block("http")
    [header] = directive(http, "client_header_timeout")
    [body] = directive(http, "client_body_timeout")
    assert nginx_seconds(header) <= int(_default("SYNCD_HTTP_HEADER_TIMEOUT_SECONDS"))
    assert nginx_seconds(body) <= int(_default("SYNCD_HTTP_BODY_TIMEOUT_SECONDS"))
    [upstream_idle] = directive(nginx_block("upstream syncd"), "keepalive_timeout")
    assert nginx_seconds(upstream_idle) < int(_default("SYNCD_HTTP_KEEPALIVE_SECONDS"))


def test_proxy_terminates_tls_in_front_of_the_compose_web_services() -> None:
    """nginx serves TLS (plain HTTP only redirects), passes Host and the scheme, and balances
    over exactly the compose file's web services on SYNCD_PORT."""
    text = nginx()
    assert re.search(r"(?m)^\s*listen 443 ssl;", text)
    assert directive(text, "ssl_certificate") and directive(text, "ssl_certificate_key")
    assert "return 301 https://$host$request_uri;" in text
    headers = directive(text, "proxy_set_header")
    assert "Host $host" in headers
    assert "X-Forwarded-Proto $scheme" in headers
    servers = {s.split()[0] for s in directive(nginx_block("upstream syncd"), "server")}
    port = _default("SYNCD_PORT")
    assert servers == {f"{name}:{port}" for name in services_running("serve")}
    proxy = compose()["services"]["proxy"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]


# -- Kubernetes -----------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and "metadata" in document:
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = manifests()[(kind, name)]["spec"]["template"]["spec"]
    return spec


def the_container(kind: str, name: str) -> dict[str, Any]:
    [container] = pod_spec(kind, name)["containers"]
    assert isinstance(container, dict)
    return container


WORKLOADS = [
    ("Deployment", "syncd-web", ["syncd", "serve"]),
    ("Deployment", "syncd-worker", ["syncd", "worker"]),
    ("Job", "syncd-migrate", ["syncd", "migrate"]),
]


@pytest.mark.parametrize(("kind", "name", "command"), WORKLOADS)
def test_kubernetes_workloads_run_their_syncd_command_as_non_root(
    kind: str, name: str, command: list[str]
) -> None:
    """Each workload runs its `syncd` subcommand, non-root, settings from the Secret + ConfigMap."""
    container = the_container(kind, name)
    assert [*container["command"], *container.get("args", [])] == command
    assert pod_spec(kind, name)["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    sources = [next(iter(source.items())) for source in container["envFrom"]]
    # The ConfigMap comes last, so its container settings win over a full env file in the Secret.
    assert sources == [("secretRef", {"name": "syncd"}), ("configMapRef", {"name": "syncd"})]
    assert ("Secret", "syncd") in manifests()
    assert ("ConfigMap", "syncd") in manifests()
    for variable in container.get("env", []):
        assert variable["name"] in OPTIONS
        assert variable["name"] not in SECRETS or "valueFrom" in variable


def test_kubernetes_web_probes_healthz_for_liveness_and_readyz_for_readiness() -> None:
    """Liveness (and startup) on /healthz, readiness on /readyz, all on syncd's port."""
    web = the_container("Deployment", "syncd-web")
    [port] = web["ports"]
    assert port["containerPort"] == int(manifests()[("ConfigMap", "syncd")]["data"]["SYNCD_PORT"])
    expected = {
        "livenessProbe": "/healthz",
        "startupProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        assert web[probe]["httpGet"] == {"path": path, "port": port["name"]}, probe
    for workload in ("syncd-worker", "syncd-migrate"):
        kind = "Job" if workload == "syncd-migrate" else "Deployment"
        container = the_container(kind, workload)
        assert not {"livenessProbe", "readinessProbe", "ports"} & set(container), workload


def test_kubernetes_web_is_a_service_scaled_on_cpu_and_workers_by_replicas() -> None:
    """The Service selects the web pods; the HPA (min 2) owns their count; workers run 2."""
    found = manifests()
    web = found[("Deployment", "syncd-web")]
    labels = web["spec"]["template"]["metadata"]["labels"]
    service = found[("Service", "syncd-web")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = found[("HorizontalPodAutoscaler", "syncd-web")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "syncd-web",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "replicas" not in web["spec"], "re-applying would undo the autoscaler"
    assert the_container("Deployment", "syncd-web")["resources"]["requests"]["cpu"]
    assert found[("Deployment", "syncd-worker")]["spec"]["replicas"] == 2


def test_kubernetes_migrate_job_runs_once() -> None:
    """The Job runs one pod at a time, never restarted in place."""
    job = manifests()[("Job", "syncd-migrate")]["spec"]
    assert job["parallelism"] == 1
    assert job["completions"] == 1
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_kubernetes_secret_is_an_empty_template_of_the_secrets() -> None:
    """The Secret lists the secret settings with empty values and is kept out of `apply -k`."""
    secret = manifests()[("Secret", "syncd")]["stringData"]
    assert REQUIRED_SECRETS <= set(secret) <= set(OPTIONS)
    assert all(value == "" for value in secret.values())
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    others = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
    assert listed == others
    images = {image["name"] for image in kustomization["images"]}
    assert {the_container(kind, name)["image"] for kind, name, _ in WORKLOADS} == images


def test_kubernetes_configmap_holds_valid_non_secret_settings() -> None:
    """The ConfigMap names SPEC settings only, none secret, with values syncd accepts."""
    data: dict[str, str] = manifests()[("ConfigMap", "syncd")]["data"]
    assert set(data) <= set(OPTIONS)
    assert not set(data) & SECRETS
    assert ip_address(data["SYNCD_HOST"]).is_unspecified
    assert data["SYNCD_LOG_FORMAT"] == "json"
    load_settings(data, env_file=None)


# -- systemd --------------------------------------------------------------------------------


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


UNITS = [
    ("syncd-web.service", "serve"),
    ("syncd-worker.service", "worker"),
    ("syncd-worker@.service", "worker"),
    ("syncd-migrate.service", "migrate"),
]


@pytest.mark.parametrize(("name", "subcommand"), UNITS)
def test_systemd_units_run_their_syncd_command_as_the_syncd_user(
    name: str, subcommand: str
) -> None:
    """Each unit runs one `syncd` subcommand as user syncd with the shared environment file."""
    service = unit(name)["Service"]
    [start] = service["ExecStart"]
    assert start.endswith(f"/bin/syncd {subcommand}"), start
    assert service["User"] == ["syncd"]
    assert service["EnvironmentFile"] == ["/etc/syncd/syncd.env"]


def test_systemd_web_does_not_migrate_on_start() -> None:
    """No Exec line of the web unit runs `syncd migrate`: migrating is the oneshot's job."""
    service = unit("syncd-web.service")["Service"]
    exec_lines = [v for key, values in service.items() if key.startswith("Exec") for v in values]
    assert exec_lines
    assert not any("migrate" in line for line in exec_lines)


def test_systemd_worker_template_is_the_one_the_worker_unit_names() -> None:
    """syncd-worker@.service exists, names its instance, and the plain unit points at it."""
    assert "syncd-worker@.service" in (DEPLOY / "syncd-worker.service").read_text(encoding="utf-8")
    template = unit("syncd-worker@.service")
    assert "%i" in template["Unit"]["Description"][0]
    assert template["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_migrate_is_a_oneshot_nothing_starts_by_itself() -> None:
    """syncd-migrate.service is Type=oneshot with no [Install]: run once per release by hand."""
    migrate = unit("syncd-migrate.service")
    assert migrate["Service"]["Type"] == ["oneshot"]
    assert "Install" not in migrate
    for name in ("syncd-web.service", "syncd-worker@.service"):
        after = " ".join(unit(name)["Unit"]["After"]).split()
        assert "syncd-migrate.service" in after, name


# -- all of deploy/ -------------------------------------------------------------------------


def test_every_setting_named_in_deploy_files_and_docs_exists() -> None:
    """Any SYNCD_*/XERO_* name in deploy/ or docs/deploy.md is a setting SPEC declares."""
    files = [ROOT / "docs" / "deploy.md"] + [
        path
        for path in DEPLOY.rglob("*")
        if path.is_file()
        and (path.suffix in {".yaml", ".conf", ".service", ".example"} or "Docker" in path.name)
    ]
    named = {
        (path.relative_to(ROOT).as_posix(), match)
        for path in files
        for match in re.findall(
            r"\b(?:SYNCD|XERO)_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")
        )
    }
    assert named
    unknown = sorted((path, name) for path, name in named if name not in OPTIONS)
    assert not unknown
