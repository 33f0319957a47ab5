"""Config validation: every error names the file and the field path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.errors import ConfigError
from modelyard.loader import load_config, parse_config
from modelyard.secret_refs import resolve_secret

BASE = """
deployments:
  gpt-4o:
    provider: openai
    model: gpt-4o
    api_key: env:OPENAI_API_KEY
  local:
    provider: sim
    model: sim/local
model_groups:
  fast:
    deployments: [local, gpt4o]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_unknown_deployment_in_group_names_file_and_field(tmp_path) -> None:
    p = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == f"{p}: model_groups.fast.deployments[1]: unknown deployment 'gpt4o' (did you mean 'gpt-4o'?)"


@pytest.mark.parametrize(("yaml_text", "field", "needle"), [
    ("deployments:\n  a: {provider: openaii, model: x}\n", "deployments.a.provider", "openaii"),
    ("deployments:\n  a: {provider: sim}\n", "deployments.a.model", "Field required"),
    ("deployments:\n  a: {provider: sim, model: x, colour: red}\n", "deployments.a.colour", "unknown field"),
    ("deployments:\n  a: {provider: sim, model: x, weight: -1}\n", "deployments.a.weight", "greater than"),
    ("deployments:\n  a: {provider: sim, model: x, embedding: true}\n", "deployments.a.embedding",
     "only provider llamacpp"),
    ("server: {port: 99999}\n", "server.port", "less than"),
    ("server: {io_threads: fast}\n", "server.io_threads", "'auto', 'batch' or 'normal'"),
    ("model_groups:\n  g: {deployments: []}\n", "model_groups.g.deployments", "at least 1"),
    ("deployments:\n  a: {provider: sim, model: x}\nmodel_groups:\n  g: {deployments: [a], strategy: magic}\n",
     "model_groups.g.strategy", "unknown strategy 'magic'"),
    ("deployments:\n  a: {provider: sim, model: x}\nmodel_groups:\n  g: {deployments: [a], fallbacks: [zz]}\n",
     "model_groups.g.fallbacks[0]", "unknown group or deployment 'zz'"),
])
def test_field_errors(tmp_path, yaml_text, field, needle) -> None:
    p = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.file == str(p)
    assert e.value.path == field
    assert needle in e.value.message


def test_literal_key_is_refused_without_echoing_it(tmp_path) -> None:
    secret = "sk-proj-" + "a" * 40
    p = write(tmp_path, f"deployments:\n  a: {{provider: openai, model: gpt-4o, api_key: {secret}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.path == "deployments.a.api_key"
    assert secret not in str(e.value) and "env:" in str(e.value)


def test_interpolation(tmp_path) -> None:
    p = write(tmp_path, "deployments:\n  a: {provider: openai, model: m, api_base: '${UP}', api_key: '${K:-env:X}'}\n")
    cfg = load_config(p, environ={"UP": "http://127.0.0.1:9/v1"})
    assert cfg.deployments["a"].api_base == "http://127.0.0.1:9/v1"
    assert cfg.deployments["a"].api_key == "env:X"
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert e.value.path == "deployments.a.api_base" and "UP is not set" in e.value.message


def test_invalid_yaml_names_line(tmp_path) -> None:
    p = write(tmp_path, "deployments:\n  a: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "line" in e.value.path and "invalid YAML" in e.value.message


def test_missing_file_and_wrong_top_level(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config([1, 2], "x.yaml")


def test_resolve_secret() -> None:
    assert resolve_secret("env:K", where="w", environ={"K": "v"}) == "v"
    with pytest.raises(ConfigError) as e:
        resolve_secret("env:MISSING_K", where="deployments.a.api_key", environ={})
    assert "MISSING_K" in str(e.value) and e.value.path == "deployments.a.api_key"


def test_cli_reports_config_error_and_exits_nonzero(tmp_path) -> None:
    p = write(tmp_path, BASE)
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "models", "--config", str(p)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "model_groups.fast.deployments[1]: unknown deployment 'gpt4o'" in r.stderr
    assert "Traceback" not in r.stderr


# --- an empty master key never turns authentication off ------------------------------------------

SIM = "deployments:\n  a: {provider: sim, model: sim/fast}\n"


def test_empty_master_key_by_interpolation_is_a_config_error(tmp_path) -> None:
    p = write(tmp_path, "server: {master_key: '${MK:-}'}\n" + SIM)
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert e.value.path == "server.master_key" and "is empty" in e.value.message
    with pytest.raises(ConfigError, match="is empty"):
        load_config(p, environ={"MK": ""})
    assert load_config(p, environ={"MK": "s3cret"}).server.master_key == "s3cret"


def test_empty_key_references_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_secret("env:MK", where="server.master_key", environ={"MK": ""})
    assert e.value.path == "server.master_key" and "MK is empty" in e.value.message
    empty = tmp_path / "key"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_secret(f"file:{empty}", where="server.master_key")
    empty.write_text("k3y\n")
    assert resolve_secret(f"file:{empty}", where="server.master_key") == "k3y"


def test_serve_refuses_an_empty_master_key(tmp_path) -> None:
    import os

    p = write(tmp_path, "server: {master_key: 'env:MODELYARD_TEST_MK'}\n" + SIM)
    r = subprocess.run([sys.executable, "-m", "modelyard.cli", "serve", "--config", str(p), "--port", "0"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "MODELYARD_TEST_MK": ""})
    assert r.returncode == 2 and "MODELYARD_TEST_MK is empty" in r.stderr and "Traceback" not in r.stderr


# --- literal keys: known prefixes and key-shaped strings --------------------------------------------

@pytest.mark.parametrize("secret", [
    "gsk_" + "Ab3dEf6hIj9kLm2nOp5q",
    "xai-" + "Zq8Wv2Lr7Tk4Mn1Px6Cy",
    "sk-ant-api03-" + "x" * 30,
    "AIzaSyD" + "4" * 20,
    "hf_" + "AbCdEfGhIjKlMnOpQr12",
    "nvapi-" + "a1B2c3D4e5F6g7H8i9J0",
    "9f8Qz2LmX7cR4tV1bN6wK3yP0sD5hJ8e",  # no known prefix: by shape and entropy
])
def test_literal_keys_of_every_kind_are_refused(tmp_path, secret) -> None:
    p = write(tmp_path, f"deployments:\n  a: {{provider: openai, model: gpt-4o, api_key: '{secret}'}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.path == "deployments.a.api_key" and secret not in str(e.value)


@pytest.mark.parametrize("value", ["env:OPENAI_API_KEY", "${OPENAI_API_KEY}", "file:/run/secrets/openai", "ollama",
                                   "not-needed", "sk-local", "EMPTY"])
def test_references_and_placeholders_are_not_literal_keys(tmp_path, value) -> None:
    p = write(tmp_path, f"deployments:\n  a: {{provider: openai, model: m, api_key: '{value}'}}\n")
    assert load_config(p, environ={"OPENAI_API_KEY": "x"}).deployments["a"]


def test_literal_secrets_in_headers_are_refused_ids_are_not(tmp_path) -> None:
    p = write(tmp_path, "deployments:\n  a: {provider: openai, model: m, api_key: env:K, headers: "
                        "{Authorization: 'Bearer 9f8Qz2LmX7cR4tV1bN6wK3yP0sD5hJ8e', "
                        "x-other: 'gsk_Ab3dEf6hIj9kLm2nOp5q', "
                        "OpenAI-Organization: 'org-9f8Qz2LmX7cR4tV1bN6wK3yP'}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert [f for f, _ in e.value.problems] == ["deployments.a.headers.Authorization", "deployments.a.headers.x-other"]
    assert "9f8Qz2" not in str(e.value)
