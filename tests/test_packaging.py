"""The packaging, validated offline (no container engine, no cluster here): the Dockerfile by
hadolint and by what it must be (multi-stage, non-root, runtime dependencies only, ``places
run``); the compose file against the compose specification's JSON schema (vendored in
deploy/schemas/) and the topology it must describe; the Kubernetes manifests built by
``kubectl kustomize`` (and by this file's own reading of the kustomization, which must
agree) and checked by kubernetes-validate against the Kubernetes API schemas."""

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.settings import Settings
from deploy.haproxy_config import ProxyConfig, render

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.32.0"
"""The Kubernetes API the manifests are checked against (a version still supported)."""

CLUSTER_SETTINGS = {
    "PLACES_DATABASE_READ_URL",
    "PLACES_REDIS_SENTINELS",
    "PLACES_REDIS_MASTER_NAME",
}
"""Settings of issue #19's cluster deliverable (branch h-cluster), which the packaging uses
by the names that branch gives them; accepted here until ``Settings`` has them."""


def setting_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name.upper()}" for name in Settings.model_fields} | CLUSTER_SETTINGS


def tool(name: str) -> str:
    """A tool of the dev environment (beside this interpreter) or of the machine."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} missing: scripts/setup --dev installs it"
    return found


# --- Dockerfile ---------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_finds_nothing_in_the_dockerfile():
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_would_say_so(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # untagged image
    assert "DL3008" in done.stdout  # unpinned apt package


def stages(text: str) -> list[tuple[str, str, list[str]]]:
    """``(image, name, instructions)`` per stage (continuation lines joined)."""
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    out: list[tuple[str, str, list[str]]] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            out.append((m[1], m[2] or "", []))
        elif out:
            out[-1][2].append(line)
    return out


def test_the_image_is_multi_stage_non_root_and_runs_places():
    built = stages(DOCKERFILE.read_text())
    assert len(built) >= 2
    for image, _, _ in built:
        assert ":" in image and not image.endswith(":latest"), image  # pinned bases
    final = built[-1][2]
    text = "\n".join(final)
    # Only what was built in the earlier stages is copied in: no installer runs in the
    # final stage, no dev lock, no tests.
    assert not re.search(r"\b(pip|npm|apt-get|uv)\b.*install", text), text
    assert "requirements-dev.lock" not in DOCKERFILE.read_text()
    copies = [i for i in final if i.upper().startswith("COPY")]
    assert copies and all("--from=" in c for c in copies), copies
    users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    cmd = [i for i in final if i.upper().startswith("CMD ")][-1]
    assert json.loads(cmd[4:]) == ["places", "run"]
    assert any("HEALTHCHECK" in i and "/healthz" in i for i in final)


def test_the_build_context_leaves_out_keys_virtualenvs_and_history():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*")] == "*"  # everything out, then what the image needs
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "requirements.lock",
        "api",
        "geo",
        "interop",
        "matching",
        "realtime",
        "seed",
    }
    assert "var/" in ignored and "api/ui/dsfr/node_modules/" in ignored


# --- Compose ------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_follows_the_compose_specification():
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in compose_validator().iter_errors(compose())
    ]
    assert errors == []


def test_the_compose_schema_refuses_a_broken_file():
    broken = copy.deepcopy(compose())
    broken["services"]["api1"]["healthcheck"]["interval"] = {"seconds": 5}
    broken["services"]["haproxy"]["restart_policy"] = "always"  # no such key
    assert len(list(compose_validator().iter_errors(broken))) >= 2


def test_the_compose_topology_is_the_cluster_s():
    services = compose()["services"]
    apis = [name for name, s in services.items() if s.get("command") is None and "api" in name]
    assert len(apis) >= 2
    for name in apis:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in check, name
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        env = services[name]["environment"]
        assert "@postgres-primary:" in env["PLACES_DATABASE_URL"]
        assert "@postgres-standby:" in env["PLACES_DATABASE_READ_URL"]
        assert "PLACES_OWNER_DATABASE_URL" not in env  # the owner's password stays out
        assert len(env["PLACES_REDIS_SENTINELS"].split(",")) == 3
    assert services["migrate"]["command"] == ["places", "migrate"]
    assert "PLACES_OWNER_DATABASE_URL" in services["migrate"]["environment"]
    standby = "\n".join(services["postgres-standby"]["entrypoint"])
    assert "pg_basebackup -h postgres-primary" in standby and " -R " in standby
    sentinels = [s for s in services.values() if "--sentinel" in str(s.get("command"))]
    assert len(sentinels) == 3
    assert all(
        "sentinel monitor places redis-master 6379 2" in str(s["command"]) for s in sentinels
    )
    assert "--replicaof" in services["redis-replica"]["command"]


def test_the_compose_front_is_the_production_haproxy_configuration():
    services = compose()["services"]
    backends = [f"{name}:8000" for name in ("api1", "api2")]
    expected = render(ProxyConfig(bind=":8080", backends=backends))
    assert compose()["configs"]["haproxy"]["content"] == expected
    assert services["haproxy"]["ports"] == ["8080:8080"]


def test_the_compose_settings_are_the_service_s():
    names = set()
    for service in compose()["services"].values():
        names |= {n for n in service.get("environment", {}) if n.startswith("PLACES_")}
    assert names and names <= setting_names(), names - setting_names()


# --- Kubernetes ---------------------------------------------------------------------------


def kustomize_with_kubectl() -> list[dict[str, Any]]:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def kustomize_in_python() -> list[dict[str, Any]]:
    """What this kustomization asks (namespace, labels, image names, resources), applied by
    hand: the same rendering where kubectl is not installed, and a check of kubectl's."""
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in k.get("images", [])}
    labels: dict[str, str] = {}
    for entry in k.get("labels", []):
        assert not entry.get("includeSelectors") and not entry.get("includeTemplates")
        labels |= entry["pairs"]
    docs = []
    for resource in k["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            if not doc:
                continue
            meta = doc["metadata"]
            if doc["kind"] != "Namespace":
                meta["namespace"] = k["namespace"]
            meta["labels"] = {**meta.get("labels", {}), **labels}
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                container["image"] = images.get(container["image"], container["image"])
            docs.append(doc)
    return docs


def by_kind_and_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_kubectl_kustomize_builds_what_the_kustomization_says():
    assert by_kind_and_name(kustomize_with_kubectl()) == by_kind_and_name(kustomize_in_python())


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return by_kind_and_name(kustomize_with_kubectl())


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_is_valid_for_the_kubernetes_api():
    docs = list(manifests().values())
    docs += [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    for doc in docs:
        validate(doc)  # raises on the first error


def test_kubernetes_validate_would_refuse_a_typo():
    deployment = copy.deepcopy(manifests()[("Deployment", "places")])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = copy.deepcopy(manifests()[("Deployment", "places")])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_the_deployment_probes_scales_and_survives_drains():
    docs = manifests()
    deployment = docs[("Deployment", "places")]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"] == ["places", "run"]
    assert container["image"].startswith("registry.example.fr/places:")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]["cpu"]  # what the HPA's utilisation divides by
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    pdb = docs[("PodDisruptionBudget", "places")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = docs[("HorizontalPodAutoscaler", "places")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "places",
    }
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    service = docs[("Service", "places")]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ingress = docs[("Ingress", "places")]
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"]["name"] == "places"

    job = docs[("Job", "places-migrate")]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["places", "migrate"]
    assert migrate["image"] == container["image"]


def test_the_secrets_hold_what_the_pods_read_and_the_names_are_settings():
    docs = manifests()
    secrets = {
        d["metadata"]["name"]: set(d["stringData"])
        for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
        if d
    }
    names: set[str] = set(docs[("ConfigMap", "places-config")]["data"])
    for key in (("Deployment", "places"), ("Job", "places-migrate")):
        pod = docs[key]["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["key"] in secrets[ref["name"]], ref
                names.add(env["name"])
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert secrets[volume["secret"]["secretName"]] == {"private.pem", "public.pem"}
    assert names <= setting_names(), names - setting_names()
    # The schema owner's DSN reaches the migration Job only.
    deployment_env = {
        e["name"]
        for e in docs[("Deployment", "places")]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert "PLACES_OWNER_DATABASE_URL" not in deployment_env
