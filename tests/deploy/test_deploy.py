"""deploy/: every file parses, the compose file and the Kubernetes manifests agree with each other and
with deploy/gateway.yaml (ports, environment variable names, config and secret mount paths, probes on
routes the real server serves), and deploy/gateway.yaml loads with modelyard's own config loader.
Containers cannot run here; these checks catch what would break a `docker compose up` or a rollout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.gateway import Gateway
from modelyard.loader import load_config, parse_config
from modelyard.server.app import create_app
from modelyard.store.location import is_postgres, locate

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
ENV = {"REDIS_URL": "redis://redis:6379/0", "DATABASE_URL": "postgresql://modelyard:pw@postgres:5432/modelyard",
       "MODELYARD_MASTER_KEY": "master-key-for-the-test-0123", "OPENAI_API_KEY": "test-openai",
       "ANTHROPIC_API_KEY": "test-anthropic"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s(kind: str) -> dict[str, Any]:
    docs = [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"one {kind} expected in deploy/kubernetes, found {len(found)}"
    return found[0]


def gateway_text() -> str:
    return (DEPLOY / "gateway.yaml").read_text()


def referenced_env() -> set[str]:
    """Variables deploy/gateway.yaml reads: ${VAR} and env:VAR."""
    text = "\n".join(line.split("#")[0] for line in gateway_text().splitlines())
    return set(re.findall(r"\$\{(\w+)", text)) | set(re.findall(r"env:(\w+)", text))


def config_arg(args: list[str]) -> str:
    return args[args.index("--config") + 1]


def test_every_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 8
    for f in files:
        assert [d for d in yaml.safe_load_all(f.read_text()) if d], f"{f} is empty"
    for f in K8S.glob("*.yaml"):
        for d in yaml.safe_load_all(f.read_text()):
            assert {"apiVersion", "kind"} <= set(d), f"{f}: not a Kubernetes object"
    kust = load(K8S / "kustomization.yaml")
    assert sorted(kust["resources"]) == sorted(f.name for f in K8S.glob("*.yaml")
                                               if f.name not in ("kustomization.yaml", "secret.example.yaml"))


def test_gateway_config_loads_with_the_real_loader(tmp_path: Path) -> None:
    cfg = load_config(DEPLOY / "gateway.yaml", environ=ENV)
    assert cfg.state.url == ENV["REDIS_URL"] and cfg.state.shared and cfg.store == ENV["DATABASE_URL"]
    assert is_postgres(locate(cfg)) and "pw" not in locate(cfg)
    assert cfg.server.master_key == ENV["MODELYARD_MASTER_KEY"] and cfg.server.host == "0.0.0.0"
    assert referenced_env() == set(ENV)
    missing = {k: v for k, v in ENV.items() if k != "DATABASE_URL"}
    with pytest.raises(Exception, match="DATABASE_URL"):
        load_config(DEPLOY / "gateway.yaml", environ=missing)


def test_compose_runs_two_gateways_on_redis_postgres_and_prometheus() -> None:
    compose = load(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert {"gateway-1", "gateway-2", "redis", "postgres", "prometheus"} <= set(services)
    port = load_config(DEPLOY / "gateway.yaml", environ=ENV).server.port
    for name in ("gateway-1", "gateway-2"):
        gw = services[name]
        assert set(gw["environment"]) == referenced_env(), name
        assert gw["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in gw["environment"]["DATABASE_URL"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in gw["volumes"]}
        assert mounts[config_arg(gw["command"])] == "./gateway.yaml"
        assert any(p.endswith(f":{port}") for p in gw["ports"])
        assert "metrics_key" in gw["secrets"]
        assert f"http://127.0.0.1:{port}/ready" in " ".join(gw["healthcheck"]["test"])
        assert set(gw["depends_on"]) == {"redis", "postgres"}
    user, db = services["postgres"]["environment"]["POSTGRES_USER"], services["postgres"]["environment"]["POSTGRES_DB"]
    assert f"postgresql://{user}:" in services["gateway-1"]["environment"]["DATABASE_URL"]
    assert services["gateway-1"]["environment"]["DATABASE_URL"].endswith(f"/{db}")
    assert config_arg(services["migrate"]["command"]) == config_arg(services["gateway-1"]["command"])
    assert services["migrate"]["command"][:2] == ["db", "migrate"]
    # Prometheus scrapes both gateways' /metrics with the key file the gateways read
    prom = load(DEPLOY / "prometheus.yml")
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == [f"gateway-1:{port}", f"gateway-2:{port}"]
    key_file = job["authorization"]["credentials_file"]
    assert key_file == "/run/secrets/metrics_key" and f"metrics_key: file:{key_file}" in gateway_text()
    assert "metrics_key" in services["prometheus"]["secrets"] and "metrics_key" in compose["secrets"]
    assert any(v.endswith(":/etc/prometheus/prometheus.yml:ro") for v in services["prometheus"]["volumes"])
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in dockerfile and "postgres" in dockerfile


def test_kubernetes_manifests_agree_with_each_other_and_the_config() -> None:
    dep, svc, hpa, cm = k8s("Deployment"), k8s("Service"), k8s("HorizontalPodAutoscaler"), k8s("ConfigMap")
    secret = load(K8S / "secret.example.yaml")
    assert cm["data"]["gateway.yaml"] == gateway_text()  # the same config as compose
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2
    port = load_config(DEPLOY / "gateway.yaml", environ=ENV).server.port
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]:
        assert {e["name"] for e in c["env"]} == referenced_env(), c["name"]
        for e in c["env"]:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], e["name"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        cfg_path = Path(config_arg(c["args"]))
        assert volumes[mounts[str(cfg_path.parent)]]["configMap"]["name"] == cm["metadata"]["name"]
        assert cfg_path.name in cm["data"]
        key_dir = mounts["/run/secrets"]
        assert volumes[key_dir]["secret"]["items"] == [{"key": "metrics_key", "path": "metrics_key"}]
        assert "metrics_key" in secret["stringData"]
        spill = load_config(DEPLOY / "gateway.yaml", environ=ENV).server.request_log.path
        assert str(Path(spill).parent) in mounts
    gw = pod["spec"]["containers"][0]
    assert gw["ports"] == [{"name": "http", "containerPort": port}]
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["spec"]["initContainers"][0]["args"][:2] == ["db", "migrate"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert gw[probe]["httpGet"]["port"] == "http"


def test_probes_and_scrapes_point_at_routes_the_server_serves() -> None:
    data = {"deployments": {"a": {"provider": "sim", "model": "gpt-4o-mini"}}}
    app = create_app(Gateway(parse_config(data), request_log=False))
    served = {path for method, path in app.routes if method == "GET"}
    gw = k8s("Deployment")["spec"]["template"]["spec"]["containers"][0]
    paths = {gw["readinessProbe"]["httpGet"]["path"], gw["livenessProbe"]["httpGet"]["path"],
             k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"],
             load(DEPLOY / "prometheus.yml")["scrape_configs"][0]["metrics_path"]}
    healthcheck = " ".join(load(DEPLOY / "docker-compose.yml")["services"]["gateway-1"]["healthcheck"]["test"])
    paths.add(re.search(r"http://127\.0\.0\.1:\d+(/\w+)", healthcheck).group(1))  # type: ignore[union-attr]
    assert paths == {"/ready", "/health", "/metrics"} and paths <= served


def test_compose_gateways_share_one_batch_directory() -> None:
    """/v1/files + /v1/batches answer on either replica only if both mount the configured batch_dir."""
    batch_dir = load_config(DEPLOY / "gateway.yaml", environ=ENV).server.batch_dir
    assert batch_dir
    services = load(DEPLOY / "docker-compose.yml")["services"]
    sources = {name: {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}.get(batch_dir)
               for name in ("gateway-1", "gateway-2")}
    assert sources["gateway-1"] is not None and sources["gateway-1"] == sources["gateway-2"], sources
