"""Settings that are derived rather than given: how many workers `genecommons serve` starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genecommons.config import MAX_DEFAULT_WORKERS, Settings


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
