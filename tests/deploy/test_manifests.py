"""Kubernetes manifests: schema-valid for a current Kubernetes, and wired the way the docs say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.contacts.settings import ContactsSettings
from services.notifier.settings import NotifierSettings
from services.reminders.settings import RemindersSettings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31"
PORTS = {
    "contacts": ContactsSettings.model_fields["port"].default,
    "reminders": RemindersSettings.model_fields["port"].default,
    "notifier": NotifierSettings.model_fields["port"].default,
}
KNOWN_SETTINGS = {
    name.upper()
    for cls in (ContactsSettings, RemindersSettings, NotifierSettings)
    for name in cls.model_fields
}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _documents() if doc["kind"] == kind}


@pytest.mark.parametrize(("filename", "doc"), _documents(), ids=lambda v: str(v)[:40])
def test_every_manifest_is_schema_valid(filename: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_each_service_has_probes_resources_pdb_hpa_and_service() -> None:
    deployments = _by_kind("Deployment")
    assert set(deployments) == set(PORTS)
    pdbs, hpas, services = (
        _by_kind("PodDisruptionBudget"),
        _by_kind("HorizontalPodAutoscaler"),
        _by_kind("Service"),
    )
    for name, port in PORTS.items():
        spec = deployments[name]["spec"]
        assert spec["replicas"] >= 2, "several replicas are the normal state"
        container = spec["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["ports"][0]["containerPort"] == port
        assert {"name": "PORT", "value": str(port)} in container["env"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert services[name]["spec"]["ports"][0]["port"] == port


def test_config_map_names_only_real_settings() -> None:
    config = _by_kind("ConfigMap")["touchbase-config"]["data"]
    unknown = set(config) - KNOWN_SETTINGS
    assert not unknown, unknown


def test_ingress_exposes_only_public_paths() -> None:
    ingress = _by_kind("Ingress")["touchbase"]
    paths = [
        (rule["host"], path["path"], path["backend"]["service"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert all(not p.startswith("/internal") for _, p, _ in paths)
    assert ("sms.touchbase.example.com", "/webhooks/twilio", "notifier") in paths
    assert ("api.touchbase.example.com", "/v1/touchpoints", "reminders") in paths
    assert ("api.touchbase.example.com", "/v1/preferences", "reminders") in paths
    assert ("api.touchbase.example.com", "/v1", "contacts") in paths
    for _, _, backend in paths:
        assert backend in PORTS


def test_only_contact_import_takes_large_bodies() -> None:
    ingresses = _by_kind("Ingress")
    annotation = "nginx.ingress.kubernetes.io/proxy-body-size"
    assert ingresses["touchbase"]["metadata"]["annotations"][annotation] == "64k"
    large = ingresses["touchbase-import"]
    assert large["metadata"]["annotations"][annotation] == "6m"
    paths = [p for rule in large["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"], p["backend"]["service"]["name"]) for p in paths] == [
        ("/v1/contacts:import", "Exact", "contacts")
    ]
