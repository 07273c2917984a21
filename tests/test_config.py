"""Config files, built-in profiles and endpoint resolution (the one reader of the environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlift.config import (
    PLACEHOLDER_KEY,
    Config,
    load_config,
    parse_spec,
    resolve_endpoint,
)
from mlift.errors import AuthError, ConfigError, UnknownNameError

SECRET = "sk-proj-SECRETSECRET0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mlift.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test where no ./mlift.toml exists unless the test writes one."""
    monkeypatch.chdir(tmp_path)


def test_builtin_profiles_exist_without_a_file() -> None:
    config = load_config(env={})
    assert config.path is None
    assert {"openai", "anthropic", "sim"} <= set(config.providers)
    assert config.providers["openai"].base_url == "https://api.openai.com/v1"
    assert config.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert config.providers["sim"].api_key_env is None


def test_openai_base_url_env_is_honoured() -> None:
    env = {"OPENAI_BASE_URL": "https://proxy.example.com/v1", "OPENAI_API_KEY": SECRET}
    endpoint = resolve_endpoint("openai:gpt-4o-mini", load_config(env=env), env=env)
    assert endpoint.base_url == "https://proxy.example.com/v1"
    assert endpoint.api_key == SECRET


def test_anthropic_base_url_env_is_honoured() -> None:
    env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9999"}
    endpoint = resolve_endpoint("anthropic:claude-x", load_config(env=env), env=env)
    assert endpoint.base_url == "http://127.0.0.1:9999"
    assert endpoint.api_key == PLACEHOLDER_KEY  # a local server: no key needed


def test_key_is_read_from_the_named_variable_and_never_shown() -> None:
    env = {"OPENAI_API_KEY": SECRET}
    config = load_config(env=env)
    endpoint = resolve_endpoint("openai:gpt-4o-mini", config, env=env)
    assert endpoint.api_key == SECRET
    assert SECRET not in repr(endpoint) and SECRET not in str(endpoint)
    assert SECRET not in repr(config)


def test_missing_key_for_public_api_is_auth_error_naming_the_variable() -> None:
    with pytest.raises(AuthError) as caught:
        resolve_endpoint("anthropic:claude-3-5-haiku-latest", load_config(env={}), env={})
    assert "ANTHROPIC_API_KEY" in str(caught.value)


def test_empty_key_counts_as_missing() -> None:
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        resolve_endpoint("openai:gpt-4o", load_config(env={}), env={"OPENAI_API_KEY": "  "})


def test_local_base_url_flag_needs_no_key() -> None:
    endpoint = resolve_endpoint("openai:qwen2.5-7b", load_config(env={}), env={},
                                base_url="http://localhost:11434/v1")
    assert endpoint.base_url == "http://localhost:11434/v1"
    assert endpoint.api_key == PLACEHOLDER_KEY


def test_sim_needs_no_key() -> None:
    endpoint = resolve_endpoint("sim:gpt-4o-mini", load_config(env={}), env={})
    assert (endpoint.kind, endpoint.model, endpoint.api_key) == ("sim", "gpt-4o-mini", None)


def test_file_profile_becomes_an_endpoint_with_limits_and_prices(tmp_path: Path) -> None:
    path = write(tmp_path, """
[providers.local]
kind = "openai"
base_url = "http://192.168.1.20:8000/v1"
rpm = 600
tpm = 200000
concurrency = 16
context_tokens = 32768
prices = { input = 0.1, output = 0.4 }
""")
    config = load_config(path, env={})
    assert config.path == path
    endpoint = resolve_endpoint("local:llama3:8b", config, env={}, concurrency=4)
    assert (endpoint.name, endpoint.kind, endpoint.model) == ("local", "openai", "llama3:8b")
    assert (endpoint.rpm, endpoint.tpm, endpoint.concurrency) == (600, 200000, 4)
    assert (endpoint.input_price, endpoint.output_price) == (0.1, 0.4)
    assert endpoint.context_tokens == 32768
    assert endpoint.api_key == PLACEHOLDER_KEY


def test_profile_with_its_own_key_variable(tmp_path: Path) -> None:
    path = write(tmp_path, """
[providers.router]
kind = "openai"
base_url = "https://router.example.com/api/v1"
api_key_env = "ROUTER_KEY"
""")
    config = load_config(path, env={})
    with pytest.raises(AuthError, match="ROUTER_KEY"):
        resolve_endpoint("router:m", config, env={})
    assert resolve_endpoint("router:m", config, env={"ROUTER_KEY": SECRET}).api_key == SECRET


def test_file_overrides_only_the_fields_it_sets_on_a_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, "[providers.openai]\nrpm = 500\n")
    profile = load_config(path, env={}).providers["openai"]
    assert (profile.kind, profile.rpm, profile.api_key_env) == ("openai", 500, "OPENAI_API_KEY")


def test_file_base_url_beats_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.openai]\nbase_url = "http://127.0.0.1:8000/v1"\n')
    config = load_config(path, env={"OPENAI_BASE_URL": "https://elsewhere.example/v1"})
    assert config.providers["openai"].base_url == "http://127.0.0.1:8000/v1"


def test_invalid_value_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.local]\nkind = "openai"\nrpm = -5\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert f"{path}:3" in message
    assert "providers.local.rpm" in message
    assert "greater than 0" in message and "-5" in message


def test_misspelt_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.local]\nkind = "openai"\nrmp = 60\n')
    with pytest.raises(ConfigError, match=r"mlift.toml:3: providers.local.rmp: .*'rpm'"):
        load_config(path, env={})


def test_unknown_kind_suggests_the_nearest(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.local]\nkind = "opneai"\n')
    with pytest.raises(ConfigError, match=r"mlift.toml:2: providers.local.kind: .*'openai'"):
        load_config(path, env={})


def test_inline_table_error_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.local]\nkind = "openai"\n\nprices = { input = -1 }\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "mlift.toml:4: providers.local.prices.input" in message
    assert "providers.local.prices.output: Field required" in message


def test_key_pasted_into_api_key_env_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, f'[providers.x]\nkind = "openai"\napi_key_env = "{SECRET}"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "providers.x.api_key_env" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_key_in_the_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, f'[providers.x]\nkind = "openai"\napi_key = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="api_key_env") as caught:
        load_config(path, env={})
    assert SECRET not in str(caught.value)


def test_bad_base_url_in_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.x]\nkind = "openai"\nbase_url = "localhost:8000"\n')
    with pytest.raises(ConfigError, match=r"providers\.x\.base_url: .*http"):
        load_config(path, env={})


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.x]\nkind = "openai\n')
    with pytest.raises(ConfigError, match=r"mlift.toml: invalid TOML: .*line 2"):
        load_config(path, env={})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_mlift_config_variable_selects_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[providers.remote]\nkind = "sim"\n', encoding="utf-8")
    assert "remote" in load_config(env={"MLIFT_CONFIG": str(path)}).providers
    with pytest.raises(ConfigError, match="MLIFT_CONFIG"):
        load_config(env={"MLIFT_CONFIG": str(tmp_path / "gone.toml")})


def test_mlift_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path, '[providers.here]\nkind = "sim"\n')
    config = load_config(env={})
    assert "here" in config.providers
    assert config.path == Path("mlift.toml")


def test_run_section_passes_through_and_unknown_sections_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\nlang = "hi"\nmin_score = 4\n')
    assert load_config(path, env={}).run == {"lang": "hi", "min_score": 4}
    bad = write(tmp_path, '[engien]\nworkers = 4\n')
    with pytest.raises(ConfigError, match=r"mlift.toml:1: engien: unknown key"):
        load_config(bad, env={})


def test_profile_name_with_a_colon_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers."a:b"]\nkind = "sim"\n')
    with pytest.raises(ConfigError, match="NAME:MODEL"):
        load_config(path, env={})


@pytest.mark.parametrize("spec", ["gpt-4o-mini", "openai:", ":gpt-4o", "", "  :  "])
def test_bad_spec_is_config_error_with_an_example(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"NAME:MODEL, e\.g\. openai:gpt-4o-mini"):
        parse_spec(spec)


def test_unknown_profile_suggests_the_nearest() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'anthropic'"):
        resolve_endpoint("antropic:claude", load_config(env={}), env={})


@pytest.mark.parametrize("flags", [{"rpm": 0}, {"tpm": -1}, {"concurrency": 0},
                                   {"base_url": "ftp://x"}])
def test_bad_flag_overrides_are_refused(flags: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        resolve_endpoint("sim:default", load_config(env={}), env={}, **flags)  # type: ignore[arg-type]


def test_empty_config_knows_no_profiles() -> None:
    with pytest.raises(UnknownNameError):
        resolve_endpoint("sim:default", Config(), env={})


def test_transport_defaults_to_auto_and_flags_override_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[providers.local]\nkind = "openai"\n'
                                         'base_url = "http://127.0.0.1:8000/v1"\n'), env={})
    assert resolve_endpoint("local:m", config, env={}).transport == "auto"
    assert resolve_endpoint("local:m", config, transport="sdk", env={}).transport == "sdk"


def test_structured_outputs_and_sdk_only_settings_reach_the_endpoint(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.llama]\nkind = "openai"\n'
                           'base_url = "http://127.0.0.1:8080/v1"\nstructured_outputs = true\n'
                           '[providers.work]\nkind = "openai"\norganization = "org-1"\n'
                           'project = "proj_1"\n')
    config = load_config(path, env={"OPENAI_API_KEY": SECRET})
    assert resolve_endpoint("llama:m", config, env={}).structured_outputs is True
    work = resolve_endpoint("work:m", config, env={"OPENAI_API_KEY": SECRET})
    assert (work.organization, work.project) == ("org-1", "proj_1")
    assert work.sdk_only_settings == ("organization", "project")


def test_sdk_only_settings_on_another_kind_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.claude]\nkind = "anthropic"\norganization = "org-1"\n')
    with pytest.raises(ConfigError, match=r"mlift.toml:1: providers.claude: .*organization: "
                                          r"only for kind = \"openai\""):
        load_config(path, env={})


def test_azure_needs_its_resource_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[providers.az]\nkind = "openai"\nazure_api_version = "2024-10-21"\n')
    with pytest.raises(ConfigError, match="azure_api_version needs base_url"):
        load_config(path, env={})


@pytest.mark.parametrize(("profile", "message"), [
    ('transport = "aiohttp"\norganization = "org-1"\n', "organization only work"),
    ('transport = "curl"\n', "unknown transport for openai 'curl'. Known: aiohttp, auto, sdk"),
])
def test_impossible_transport_fails_when_the_endpoint_is_resolved(
        tmp_path: Path, profile: str, message: str) -> None:
    path = write(tmp_path, f'[providers.p]\nkind = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
                           f'{profile}')
    with pytest.raises(ConfigError, match=message):
        resolve_endpoint("p:m", load_config(path, env={}), env={})
