"""Small pure helpers: credentials in upstream URLs (stripped, masked, kept when sent
back masked) and temp-file ownership."""

from __future__ import annotations

from pathlib import Path

from lockgate.urls import keep_secret, redact_url, strip_credentials


def test_strip_and_redact_keep_ipv6_hosts_and_ports() -> None:
    url = "http://user:pw@[::1]:8080/simple/"
    assert strip_credentials(url) == "http://[::1]:8080/simple/"
    assert redact_url(url) == "http://user:****@[::1]:8080/simple/"
    assert strip_credentials("https://index.example/simple/") == "https://index.example/simple/"
    assert redact_url("https://host/simple/") == "https://host/simple/"


def test_masked_url_sent_back_keeps_the_stored_password() -> None:
    stored = "https://me:s3cret@mirror.example:8443/simple/"
    assert keep_secret(redact_url(stored), stored) == stored
    assert keep_secret("https://me:new@mirror.example:8443/simple/", stored).endswith(
        "me:new@mirror.example:8443/simple/"
    )
    # Masked but pointed elsewhere: the secret must not follow it to another host.
    other = "https://me:****@evil.example/simple/"
    assert keep_secret(other, stored) == other


def test_temp_files_of_live_processes_survive_a_neighbour_starting(tmp_path: Path) -> None:
    import os
    import subprocess

    from lockgate.config import Settings
    from lockgate.serverdir import clean_tmp

    settings = Settings(serverdir=tmp_path, db_url="sqlite://")
    settings.tmp_dir.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = settings.tmp_dir / f"incoming-{sleeper.pid}-abc"
        dead = settings.tmp_dir / "incoming-999999999-abc"
        stray = settings.tmp_dir / "leftover"
        own = settings.tmp_dir / f"incoming-{os.getpid()}-abc"
        for path in (live, dead, stray, own):
            path.write_bytes(b"x")
        assert clean_tmp(settings) == 3
        assert [p.name for p in settings.tmp_dir.iterdir()] == [live.name]
    finally:
        sleeper.kill()
        sleeper.wait()
