"""Settings that are derived rather than given: how many workers `genecommons serve` starts."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr

from genecommons import config
from genecommons.config import MAX_DEFAULT_WORKERS, Settings, load_settings
from genecommons.errors import ConfigurationError


def test_serve_starts_one_worker_per_core_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GENECOMMONS_WORKERS", raising=False)
    for cores, expected in ((1, 1), (2, 2), (3, 3), (64, MAX_DEFAULT_WORKERS)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert Settings(data_dir=tmp_path).effective_workers == expected
    assert Settings(data_dir=tmp_path, workers=7).effective_workers == 7
    monkeypatch.setenv("GENECOMMONS_WORKERS", "3")
    assert Settings(data_dir=tmp_path).effective_workers == 3


def test_a_worker_count_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        Settings(data_dir=tmp_path, workers=0)


def test_no_proxy_is_trusted_unless_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENECOMMONS_FORWARDED_ALLOW_IPS", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable changes nothing
    assert Settings(data_dir=tmp_path).forwarded_proxies == []
    monkeypatch.setenv("GENECOMMONS_FORWARDED_ALLOW_IPS", " 10.0.0.5, 10.0.1.9/24 ,::1,")
    assert Settings(data_dir=tmp_path).forwarded_proxies == ["10.0.0.5", "10.0.1.0/24", "::1"]


@pytest.mark.parametrize("proxies", ["*", "proxy.example.org", "10.0.0.5/33", "unix:/run/x"])
def test_a_proxy_that_is_no_address_or_network_is_refused(tmp_path: Path, proxies: str) -> None:
    with pytest.raises(ValueError, match="GENECOMMONS_FORWARDED_ALLOW_IPS"):
        Settings(data_dir=tmp_path, forwarded_allow_ips=proxies)


# A bad value of a setting: one bilingual line naming the variable, the value and what it
# takes, from the CLI and from create_app alike (never pydantic's report).

BAD_VALUES = {  # a value each kind of setting refuses
    int: "many",
    float: "soon",
    bool: "maybe",
}


def _bad_value(name: str) -> str | None:
    """A value the setting `name` refuses, by its type (None: it takes any text)."""
    base = config._base_type(Settings.model_fields[name].annotation)
    if typing.get_origin(base) is typing.Literal:
        return "nonsense"
    return BAD_VALUES.get(base)


SETTINGS_WITH_BAD_VALUES = [n for n in Settings.model_fields if _bad_value(n) is not None]


def test_every_kind_of_setting_that_can_be_wrong_is_covered() -> None:
    kinds = {
        config._base_type(Settings.model_fields[n].annotation) for n in SETTINGS_WITH_BAD_VALUES
    }
    assert {int, float, bool} <= kinds
    assert any(typing.get_origin(k) is typing.Literal for k in kinds)
    # the rest take any text (str, SecretStr, Path): nothing an environment variable holds is
    # wrong for them, save what their validators check (below)
    for name in set(Settings.model_fields) - set(SETTINGS_WITH_BAD_VALUES):
        base = config._base_type(Settings.model_fields[name].annotation)
        assert base in (str, SecretStr, Path), name


@pytest.mark.parametrize("name", SETTINGS_WITH_BAD_VALUES)
def test_a_bad_value_names_the_variable_the_value_and_what_it_takes(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variable = "GENECOMMONS_" + name.upper()
    value = _bad_value(name)
    assert value is not None
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(data_dir=tmp_path)
    english, chinese = caught.value.message, caught.value.message_zh
    accepted_en, accepted_zh = config.accepted(name)
    assert f"{variable}={value!r} is not accepted: it takes {accepted_en}" in english
    assert f"{variable}={value!r} 无效：可接受的值为{accepted_zh}" in chinese
    assert "\n" not in english and "\n" not in chinese
    assert "pydantic" not in english and "validation error" not in english


@pytest.mark.parametrize(
    ("variable", "value", "expected_en", "expected_zh"),
    [
        (
            "GENECOMMONS_WORKERS",
            "",
            "GENECOMMONS_WORKERS='' is not accepted: it takes a whole number >= 1, or the "
            "variable unset",
            "GENECOMMONS_WORKERS='' 无效：可接受的值为整数（>= 1），或不设置该变量",
        ),
        (
            "GENECOMMONS_WORKERS",
            "0",
            "GENECOMMONS_WORKERS='0' is not accepted: it takes a whole number >= 1",
            "GENECOMMONS_WORKERS='0' 无效",
        ),
        (
            "GENECOMMONS_BEACON_THRESHOLD_ALPHA",
            "0",
            "it takes a number > 0 and <= 100",
            "数值（> 0 且 <= 100）",
        ),
        (
            "GENECOMMONS_ENVIRONMENT",
            "prod",
            "GENECOMMONS_ENVIRONMENT='prod' is not accepted: it takes one of development, test, "
            "production",
            "以下之一：development, test, production",
        ),
        (
            "GENECOMMONS_SMTP_STARTTLS",
            "sometimes",
            "it takes true or false",
            "true 或 false",
        ),
        (
            "GENECOMMONS_FORWARDED_ALLOW_IPS",
            "*",
            "GENECOMMONS_FORWARDED_ALLOW_IPS: '*' is not an IP address or network",
            "不是 IP 地址或网段",
        ),
        (
            "GENECOMMONS_BEACON_THRESHOLD_MIN",
            "50",
            "GENECOMMONS_BEACON_THRESHOLD_MIN must not exceed GENECOMMONS_BEACON_THRESHOLD_MAX",
            "不得大于",
        ),
    ],
)
def test_refusals_read_as_the_operator_needs_them(
    variable: str,
    value: str,
    expected_en: str,
    expected_zh: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(data_dir=tmp_path)
    assert expected_en in caught.value.message
    assert expected_zh in caught.value.message_zh


def test_a_secret_is_never_repeated() -> None:
    assert config._shown("smtp_password", "hunter2") == "(hidden / 已隐藏)"
    assert config._shown("smtp_port", "x" * 100) == repr("x" * config.SHOWN_CHARACTERS + "…")


def test_create_app_refuses_a_bad_setting_with_the_same_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from genecommons.app import create_app

    monkeypatch.setenv("GENECOMMONS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENECOMMONS_WORKERS", "")
    config.get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="GENECOMMONS_WORKERS='' is not accepted"):
            create_app()
    finally:
        config.get_settings.cache_clear()


def test_the_cli_says_it_in_one_line_each_and_exits_6(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GENECOMMONS_DATA_DIR": str(tmp_path),
        "GENECOMMONS_WORKERS": "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "genecommons", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == ConfigurationError.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("Error: GENECOMMONS_WORKERS='' is not accepted: it takes a whole")
    assert lines[1].startswith("错误：GENECOMMONS_WORKERS='' 无效：可接受的值为整数")
    assert len(lines) == 2, done.stderr
    assert "Traceback" not in done.stderr
