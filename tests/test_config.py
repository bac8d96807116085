"""Loading the TOML configuration: sources, secrets from the environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_config, parse_config

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def source(**overrides: object) -> dict:
    return {"sources": {"acme": {"scheme": "standard-webhooks", "secrets_env": ["ACME_SECRET"], **overrides}}}


def test_valid_source_uses_scheme_defaults():
    config = parse_config(source(), {"ACME_SECRET": SECRET})
    acme = config.sources["acme"]
    assert acme.event_type_pointer == "/type"
    assert acme.occurred_at_pointer == "/timestamp"
    assert acme.subject_pointer is None
    assert "webhook-id" in acme.key_spec.headers


def test_pointer_overrides_apply():
    config = parse_config(
        source(subject_pointer="/data/user_id", occurred_at_pointer="", idempotency_key_pointer="/id"),
        {"ACME_SECRET": SECRET},
    )
    acme = config.sources["acme"]
    assert acme.subject_pointer == "/data/user_id"
    assert acme.occurred_at_pointer is None
    assert acme.key_spec.pointers == ("/id",)
    assert acme.key_spec.headers == ()


def test_missing_secret_variable_fails_closed():
    with pytest.raises(ConfigError, match="ACME_SECRET is not set"):
        parse_config(source(), {})


def test_empty_secret_variable_fails_closed():
    with pytest.raises(ConfigError, match="ACME_SECRET is empty"):
        parse_config(source(), {"ACME_SECRET": "   "})


def test_second_rotation_secret_is_checked_too():
    with pytest.raises(ConfigError, match="ACME_NEXT"):
        parse_config(source(secrets_env=["ACME_SECRET", "ACME_NEXT"]), {"ACME_SECRET": SECRET})


def test_unknown_scheme_lists_known_ones():
    with pytest.raises(ConfigError, match="known schemes: .*standard-webhooks"):
        parse_config(source(scheme="carrier-pigeon"), {"ACME_SECRET": SECRET})


def test_invalid_pointer_is_rejected():
    with pytest.raises(ConfigError, match="subject_pointer"):
        parse_config(source(subject_pointer="data/user_id"), {"ACME_SECRET": SECRET})


def test_invalid_source_name_is_rejected():
    raw = {"sources": {"Bad Name": {"scheme": "standard-webhooks", "secrets_env": ["ACME_SECRET"]}}}
    with pytest.raises(ConfigError, match="Source name 'Bad Name' is invalid"):
        parse_config(raw, {"ACME_SECRET": SECRET})


def test_unknown_scheme_option_is_rejected():
    with pytest.raises(ConfigError, match="tolerance_secs"):
        parse_config(source(tolerance_secs=10), {"ACME_SECRET": SECRET})


def test_empty_secrets_env_is_rejected():
    with pytest.raises(ConfigError, match="secrets_env"):
        parse_config(source(secrets_env=[]), {})


def test_missing_file_names_the_path(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_is_reported(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[sources.acme\nscheme = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_duplicate_table_is_reported(tmp_path: Path):
    path = tmp_path / "dup.toml"
    path.write_text('[sources.acme]\nscheme = "svix"\n[sources.acme]\nscheme = "svix"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_no_path_gives_empty_config():
    assert load_config(None).sources == {}


def test_unknown_top_level_table_is_rejected():
    raw = {"source": {"s": {"scheme": "svix", "secrets_env": ["ACME_SECRET"]}}}
    with pytest.raises(ConfigError, match=r"Unknown top-level table 'source' \(did you mean 'sources'\?\)"):
        parse_config(raw, {"ACME_SECRET": SECRET})


def test_misspelled_source_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"'subject_pointr' \(did you mean 'subject_pointer'\?\) is not a source key"):
        parse_config(source(subject_pointr="/data/user_id"), {"ACME_SECRET": SECRET})


def test_misspelled_secrets_env_is_named():
    raw = {"sources": {"acme": {"scheme": "standard-webhooks", "secret_env": ["ACME_SECRET"]}}}
    with pytest.raises(ConfigError, match=r"'secret_env' \(did you mean 'secrets_env'\?\)"):
        parse_config(raw, {"ACME_SECRET": SECRET})


def test_invalid_pointer_message_is_clean():
    with pytest.raises(ConfigError) as caught:
        parse_config(source(subject_pointer="data/user_id"), {"ACME_SECRET": SECRET})
    message = str(caught.value)
    assert "Value error" not in message
    assert ".." not in message
