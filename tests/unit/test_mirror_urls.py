"""Credentials in upstream URLs: stripped, masked, and kept when sent back masked."""

from __future__ import annotations

from lockgate.mirror.pages import keep_secret, redact_url, strip_credentials


def test_strip_and_redact_keep_ipv6_hosts_and_ports() -> None:
    url = "http://user:pw@[::1]:8080/simple/"
    assert strip_credentials(url) == "http://[::1]:8080/simple/"
    assert redact_url(url) == "http://user:****@[::1]:8080/simple/"
    assert strip_credentials("https://pypi.org/simple/") == "https://pypi.org/simple/"
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
