"""Deployment files checked without a Docker engine or a cluster: Dockerfile, compose files, kustomize base, README.

No container is built or run here. The Dockerfile is parsed into stages, the compose files and the Kubernetes
manifests are parsed with PyYAML and checked for structure, and every ``C2F_*`` variable they set must be a real
``service.settings.Settings`` field. ``docker-compose config -q`` and ``kubectl kustomize`` run when installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from service.settings import Settings  # noqa: E402

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
            if tokens[i] == "-m" and tokens[i + 1] == "pip" and i + 2 < len(tokens) and tokens[i + 2] == "install":
                found.append(tokens[i + 3 :])
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
    user = users[0].split(":")[0]
    assert user not in {"root", "0"}, f"{target} runs as {user}"
    # the user is created in the chain
    runs = " ".join(r for s in stage_chain(stages, target, args) for r in s.all("RUN"))
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(user)}\b", runs), f"user {user} is never created"


def test_dockerfile_api_stage(dockerfile):
    args, stages = dockerfile
    chain = stage_chain(stages, "api", args)
    healthcheck = stages["api"].last("HEALTHCHECK")
    assert healthcheck and "/health/ready" in healthcheck and ":8000" in healthcheck
    assert _exec_form(stages["api"].last("CMD") or "") == API_CMD
    installs = [a for s in chain for r in s.all("RUN") for a in pip_installs(r)]
    assert any(".[serve]" in a for a in installs), installs
    for install in installs:
        assert not _installs_torch_or_train(install), f"the api image must not install torch/train: {install}"
    assert not any("torch" in s.base for s in chain)
    assert "8000" in (stages["api"].last("EXPOSE") or "")


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
    assert any(".[train,serve]" in a for a in installs), installs
    external = _expand(chain[-1].base, args)
    if flavor == "cuda":
        assert "cuda" in external.lower(), external
    else:
        assert "python" in external.lower() and "slim" in external.lower(), external
    assert args.get("TORCH_VERSION") == "2.13.0"


def test_dockerfile_copies_exist_and_are_not_ignored(dockerfile):
    _, stages = dockerfile
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stage in stages.values():
        for copy in stage.all("COPY"):
            if copy.startswith("--from"):
                continue
            sources = shlex.split(copy)[:-1]
            for src in sources:
                assert (ROOT / src).exists(), f"COPY source {src} is missing"
                assert src not in ignored and src.rstrip("/") not in ignored, f"{src} is in .dockerignore"
    for heavy in ("artifacts", "data", ".git"):
        assert heavy in ignored


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


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]])
def test_docker_compose_config(files):
    cmd = ["docker-compose"]
    for f in files:
        cmd += ["-f", f]
    proc = subprocess.run([*cmd, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


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


@pytest.mark.parametrize("tool", ["kubectl", "kustomize"])
def test_kustomize_build(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    cmd = [tool, "kustomize", str(KUSTOMIZE_BASE)] if tool == "kubectl" else [tool, "build", str(KUSTOMIZE_BASE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "kind: HorizontalPodAutoscaler" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# README and CI agree


def test_readme_test_command_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pytest -q" in ci
    assert "python3 -m pytest -q" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t.*python3 -m pytest -q", makefile, flags=re.MULTILINE)


# Meanings for the Settings fields that carry no description in service/settings.py.
_MEANINGS = {
    "log_level": "Log level of the service and the worker (debug, info, warning, error).",
    "queue_name": "RQ queue that POST /train enqueues on and `c2f worker` consumes.",
    "job_timeout_seconds": "A training job running longer than this is killed and marked failed.",
    "job_result_ttl_seconds": "How long a finished job (and its model version) stays visible in /jobs.",
    "job_failure_ttl_seconds": "How long a failed job (and its error) stays visible in /jobs.",
    "allowed_schemes": "Dataset URI schemes POST /train accepts (JSON list in the environment).",
    "max_dataset_bytes": "Largest dataset POST /train accepts (checked before the job is queued).",
}
README_TABLE_START = "<!-- settings-table:start (generated: python3 tests/test_deploy.py) -->"
README_TABLE_END = "<!-- settings-table:end -->"


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
    """The README's configuration table, generated from service/settings.py."""
    rows = ["| Environment variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        meaning = (info.description or _MEANINGS.get(name, "")).replace("|", "\\|")
        rows.append(f"| `C2F_{name.upper()}` | `{_env_default(default)}` | {meaning} |")
    return "\n".join(rows)


def test_readme_configuration_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    assert README_TABLE_START in readme and README_TABLE_END in readme
    table = readme.split(README_TABLE_START, 1)[1].split(README_TABLE_END, 1)[0]
    documented = dict(re.findall(r"^\| `(C2F_\w+)` \| `([^`]*)` \|", table, flags=re.MULTILINE))
    expected = {
        f"C2F_{name.upper()}": _env_default(info.get_default(call_default_factory=True))
        for name, info in Settings.model_fields.items()
    }
    hint = "regenerate it with `python3 tests/test_deploy.py`"
    assert set(documented) == set(expected), f"README's settings table is out of date; {hint}"
    assert documented == expected, f"README's settings defaults are out of date; {hint}"


if __name__ == "__main__":  # rewrite README.md's settings table from service/settings.py
    readme_path = ROOT / "README.md"
    text = readme_path.read_text()
    head, rest = text.split(README_TABLE_START, 1)
    _, tail = rest.split(README_TABLE_END, 1)
    readme_path.write_text(f"{head}{README_TABLE_START}\n{settings_table()}\n{README_TABLE_END}{tail}")
    print(f"updated the settings table in {readme_path}")
