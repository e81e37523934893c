"""The mailbox connect/test endpoint is no port scanner and no way to hold worker threads:
private targets are refused unless allowed, a silent host fails fast, and an organisation
runs only a few tests at once."""

from __future__ import annotations

import socket
import time

import pytest
from fastapi.testclient import TestClient

from crm.domain.errors import InvalidInput, RateLimited
from tests.factories import connect_mailbox
from widget_api.connection_tests import ConnectionTests, check_target


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "::1", "127.0.0.1", "localhost", "192.168.1.1", "224.0.0.1", "0.0.0.0", "::ffff:10.0.0.1", "fe80::1"])
def test_private_targets_are_refused(host: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_target(host, 993)
    assert raised.value.code == "private_address"


def test_a_public_address_passes() -> None:
    check_target("93.184.216.34", 993)


def test_the_api_refuses_a_private_host_unless_allowed(client: TestClient, member, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.connection_tests.allow_private = False
    for host in ("10.0.0.1", "169.254.169.254", "::1"):
        response = connect_mailbox(client, member, imap_user, host=host, security="ssl")
        assert response.status_code == 400, response.text
        assert set(response.json()) >= {"type", "detail"} and response.json()["type"] == "private_address"
    runtime.connection_tests.allow_private = True
    assert connect_mailbox(client, member, imap_user).status_code == 201


def test_a_host_that_never_answers_fails_within_seconds(client: TestClient, member, imap_user) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        response = connect_mailbox(client, member, imap_user, port=silent.getsockname()[1])
        elapsed = time.monotonic() - started
    assert response.status_code == 502 and response.json()["type"] == "mailbox_unavailable"
    assert elapsed < 8, elapsed  # the connect timeout (5 s), not the 20 s read timeout


def test_at_most_n_tests_per_organisation_at_once() -> None:
    tests = ConnectionTests(2, allow_private=True)
    with tests.slot(1, "127.0.0.1", 993), tests.slot(1, "127.0.0.1", 993):
        with pytest.raises(RateLimited) as raised, tests.slot(1, "127.0.0.1", 993):
            pass
        assert raised.value.retry_after >= 1
        with tests.slot(2, "127.0.0.1", 993):  # another organisation is not held up
            pass
    with tests.slot(1, "127.0.0.1", 993):  # the slots were given back
        pass
