"""deploy/kubernetes/: every manifest validates, offline, against Kubernetes' own schemas
(kubernetes-validate, pinned, strict: an unknown field fails), and the StatefulSet agrees with
the daemon: one replica, the config the daemon accepts, the credentials directory it reads,
readiness on /healthz of its metrics_listen port, Litestream's config the one systemd/ ships."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from daemon import settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
#: the oldest Kubernetes with native sidecars on by default (init containers with
#: restartPolicy: Always), and the newest the pinned schemas know
VERSIONS = ("1.29.0", "1.37.0")


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")) if d]


def by_kind() -> dict[str, dict[str, Any]]:
    docs = documents("agreement.yaml") + documents("secret.example.yaml")
    found = {d["kind"]: d for d in docs}
    assert len(found) == len(docs), "one of each kind per agreement"
    return found


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["agreement.yaml", "secret.example.yaml"])
def test_the_manifests_validate_against_kubernetes_schemas(name: str, version: str) -> None:
    for doc in documents(name):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_catches_a_broken_manifest() -> None:
    sts = copy.deepcopy(by_kind()["StatefulSet"])
    sts["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, VERSIONS[-1], strict=True)
    sts = copy.deepcopy(by_kind()["StatefulSet"])
    sts["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, VERSIONS[-1], strict=True)


def test_the_statefulset_runs_one_daemon_as_it_expects() -> None:
    kinds = by_kind()
    sts, config_map, secret = kinds["StatefulSet"], kinds["ConfigMap"], kinds["Secret"]
    spec = sts["spec"]
    assert spec["replicas"] == 1  # the single-instance lock: one writer per log
    pod = spec["template"]["spec"]
    (daemon,) = pod["containers"]
    restore, litestream = pod["initContainers"]
    assert restore.get("restartPolicy") is None and litestream["restartPolicy"] == "Always"

    config = settings.parse(config_map["data"]["config.toml"], environ={})
    mounts = {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}
    assert mounts["state"] == config.daemon.state_dir
    assert Path(config.daemon.status_socket).parent == Path(mounts["run"])
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["state"]
    assert spec["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]

    env = {e["name"]: e.get("value") for e in daemon["env"]}
    assert env["CREDENTIALS_DIRECTORY"] == mounts["credentials"]
    assert set(settings.SECRETS) | {"replica-access-key-id", "replica-secret-access-key"} == \
        set(secret["stringData"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == secret["metadata"]["name"]
    # every *_file key empty: the secrets come from the credentials directory
    raw = tomllib.loads(config_map["data"]["config.toml"])
    assert not any(k.endswith("_file") for section in raw.values() for k in section)

    probe = daemon["readinessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in daemon["ports"]}
    assert probe["path"] == "/healthz" and probe["port"] == "metrics"
    assert config.daemon.metrics_address is not None
    assert ports["metrics"] == config.daemon.metrics_address.port
    assert ports["webhooks"] == config.daemon.listen.port

    # Litestream: systemd's config, the port the daemon watches, the scripts systemd ships
    assert config_map["data"]["litestream.yml"] == (REPO / "systemd" / "litestream.yml").read_text(
        encoding="utf-8")
    assert config.replication.metrics_url == \
        f"http://127.0.0.1:{config_map['data']['LITESTREAM_METRICS_PORT']}/metrics"
    assert config_map["data"]["REPLICA_DB_DIR"] == config.daemon.state_dir
    for container in (restore, litestream):
        script = Path(container["command"][0])
        assert script.parent == Path("/usr/lib/moment-sync")
        assert (REPO / "systemd" / script.name).is_file()
        assert {m["name"] for m in container["volumeMounts"]} == set(mounts)
    assert restore["command"][1:] == ["/etc/moment-sync/config.toml",
                                      "/etc/moment-sync/litestream.yml",
                                      f"{config.daemon.state_dir}/events.db"]
