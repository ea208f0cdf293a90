"""The session's test Hub: its port (and so HF_ENDPOINT) is fixed at import, it serves only once a test asks for it."""

import os
import socket
import urllib.error
import urllib.request

import huggingface_hub.constants
import pytest

from tests import conftest
from tests.fakes.hub_server import HubServer


def test_the_endpoint_is_coherent_everywhere():
    endpoint = conftest._HUB_SERVER.endpoint
    assert os.environ["HF_ENDPOINT"] == endpoint == huggingface_hub.constants.ENDPOINT
    import datasets

    assert datasets.config.HF_ENDPOINT == endpoint


def test_a_reserved_hub_refuses_until_started_then_serves(tmp_path):
    server = HubServer(tmp_path / "hub", listen=False)
    try:
        port = server.server_address[1]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        server.start()
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{server.endpoint}/api/datasets/tester/none", timeout=10)
        assert answer.value.code == 404  # a real Hub answer: the repo does not exist
        assert server.endpoint == f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_the_fixture_starts_the_session_hub(hub_server):
    assert hub_server is conftest._HUB_SERVER and hub_server.serving
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"{hub_server.endpoint}/api/datasets/tester/none", timeout=10)
    assert answer.value.code == 404
