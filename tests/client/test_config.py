"""Where `vt` takes its settings from: arguments, then the environment, then a profile of the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxtrain_client.config import DEFAULT_URL, ClientConfig, ConfigError, config_file

FILE = """
profile = "prod"

[profiles.prod]
url = "https://voxtrain.example.com/"
api_key = "vtk_prod"

[profiles.local]
url = "http://127.0.0.1:8100"
token = "tok_local"
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(FILE)
    return path


def test_the_file_names_the_profile_used_when_nothing_else_does(conf: Path) -> None:
    c = ClientConfig.load(env={"VT_CONFIG": str(conf)})
    assert (c.url, c.api_key, c.token, c.profile) == ("https://voxtrain.example.com", "vtk_prod", None, "prod")


def test_vt_profile_and_then_the_argument_choose_another_profile(conf: Path) -> None:
    env = {"VT_CONFIG": str(conf), "VT_PROFILE": "local"}
    c = ClientConfig.load(env=env)
    assert (c.url, c.api_key, c.token) == ("http://127.0.0.1:8100", None, "tok_local")
    assert ClientConfig.load(env=env, profile="prod").api_key == "vtk_prod"


def test_the_environment_overrides_the_file_setting_by_setting(conf: Path) -> None:
    c = ClientConfig.load(env={"VT_CONFIG": str(conf), "VT_URL": "http://elsewhere:8100"})
    assert (c.url, c.api_key) == ("http://elsewhere:8100", "vtk_prod"), "the URL from the env, the key from the file"
    c = ClientConfig.load(env={"VT_CONFIG": str(conf), "VT_TOKEN": "tok_env"})
    assert (c.token, c.api_key, c.source) == ("tok_env", None, "environment"), "credentials come as one"
    c = ClientConfig.load(env={"VT_CONFIG": str(conf), "VT_TOKEN": "tok_env", "VT_API_KEY": "vtk_env"})
    assert (c.token, c.api_key) == (None, "vtk_env"), "an API key wins over a token from the same place"


def test_arguments_override_everything(conf: Path) -> None:
    env = {"VT_CONFIG": str(conf), "VT_URL": "http://env", "VT_API_KEY": "vtk_env"}
    c = ClientConfig.load(url="http://arg", token="tok_arg", env=env)
    assert (c.url, c.token, c.api_key, c.source) == ("http://arg", "tok_arg", None, "arguments")


def test_the_older_top_level_keys_are_the_default_profile(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text('url = "http://old:8100"\ntoken = "tok_old"\n')
    c = ClientConfig.load(file=path, env={})
    assert (c.url, c.token, c.profile) == ("http://old:8100", "tok_old", None)


def test_no_file_and_only_a_key_uses_the_local_default_url(tmp_path: Path) -> None:
    c = ClientConfig.load(env={"VT_CONFIG": str(tmp_path / "missing.toml"), "VT_API_KEY": "vtk"})
    assert (c.url, c.api_key) == (DEFAULT_URL, "vtk")


def test_the_default_file_is_in_the_platform_config_folder_for_voxtrain(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_file({}) == tmp_path / "voxtrain" / "config.toml"
    (tmp_path / "vt").mkdir()
    (tmp_path / "vt" / "config.toml").write_text('token = "t"\n')
    assert config_file({}) == tmp_path / "vt" / "config.toml", "the file of earlier versions, while it is the only one"
    (tmp_path / "voxtrain").mkdir()
    (tmp_path / "voxtrain" / "config.toml").write_text('token = "t"\n')
    assert config_file({}) == tmp_path / "voxtrain" / "config.toml"
    assert config_file({"VT_CONFIG": "~/x.toml"}) == Path.home() / "x.toml"


@pytest.mark.parametrize(
    ("text", "env", "says"),
    [
        ("", {}, "no credentials: set VT_API_KEY"),
        (FILE, {"VT_PROFILE": "staging"}, "no profile 'staging'"),
        ("[profiles.x]\nurl = 'u'\napikey = 'typo'\n", {}, "unknown keys ['apikey']"),
        ("profiles = 3\n", {}, "`profiles` must be tables"),
        ("url = \n", {}, "not a readable TOML file"),
    ],
)
def test_a_config_that_cannot_work_says_what_to_fix(tmp_path: Path, text: str, env: dict, says: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("(", r"\(")):
        ClientConfig.load(env={"VT_CONFIG": str(path), **env})
