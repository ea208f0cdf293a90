"""Hub failures through `medmnist-plus push`: one paragraph saying what to do, a traceback only with --verbose.

Each case is real: the loopback test Hub answers 401 without a token and has no Xet; a closed port on 127.0.0.1
refuses; a name under .invalid fails in the resolver (patched here, so no DNS query leaves the machine).
"""

import socket

import datasets
import huggingface_hub.constants
import numpy as np
import pytest

from medmnist_plus_common.cli.main import main

from tests.fakes.releases import write_fake_release

COUNTS = {"train": 4, "validation": 2, "test": 2}


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    write_fake_release(folder, "breastmnist", 28, COUNTS)
    return folder


def push(release_dir, tmp_path, repo, *options, verbose=False):
    return main((["--verbose"] if verbose else []) + [
        "push", "--repo", repo, "--configs", "breastmnist-28", "--data-dir", str(release_dir), "--cache-dir",
        str(tmp_path / "cache"), "--no-checks", *options])


def one_paragraph(capsys, *expected):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_no_token(release_dir, tmp_path, hub_server, hub_repo_id, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert push(release_dir, tmp_path, hub_repo_id, "--endpoint", hub_server.endpoint) == 2
    one_paragraph(capsys, f"The Hub at {hub_server.endpoint} did not accept the token (401 on POST",
                  "`hf auth login`, set HF_TOKEN, or pass --token")


def test_refused_connection(release_dir, tmp_path, capsys):
    assert push(release_dir, tmp_path, "tester/refused", "--endpoint", "http://127.0.0.1:9") == 2
    one_paragraph(capsys, "Cannot reach the Hub at http://127.0.0.1:9: the connection was refused",
                  "Check --endpoint / HF_ENDPOINT")


def test_unresolvable_host(release_dir, tmp_path, monkeypatch, capsys):
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def getaddrinfo(host, *args, **kwargs):
        if host == "hub.medmnist-plus.invalid":
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert push(release_dir, tmp_path, "tester/x", "--endpoint", "http://hub.medmnist-plus.invalid") == 2
    one_paragraph(capsys, "the host name 'hub.medmnist-plus.invalid' of http://hub.medmnist-plus.invalid cannot be "
                          "resolved", "You are offline, or --endpoint / HF_ENDPOINT is wrong")
    assert lookups  # it was the resolver that failed


@pytest.mark.parametrize("repo", ["tester/a/b", "tester/bad name"])
def test_bad_repo_id(release_dir, tmp_path, repo, capsys):
    assert push(release_dir, tmp_path, repo) == 2
    message = one_paragraph(capsys, "Not a valid Hub repo id:", repr(repo), "Use --repo <namespace>/<name>")
    assert "repo_type" not in message  # huggingface_hub's hint is about an argument the CLI does not have


def test_server_without_xet(release_dir, tmp_path, hub_server, hub_repo_id, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", False)
    assert push(release_dir, tmp_path, hub_repo_id, "--endpoint", hub_server.endpoint) == 2
    one_paragraph(capsys, f"The Hub at {hub_server.endpoint} does not offer Xet storage",
                  "set HF_HUB_DISABLE_XET=1 and push again")


def test_offline_mode(release_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert push(release_dir, tmp_path, "tester/offline") == 2
    one_paragraph(capsys, "Offline mode is on", "medmnist-plus export --out DIR")


def test_verbose_adds_the_traceback(release_dir, tmp_path, capsys):
    assert push(release_dir, tmp_path, "tester/refused", "--endpoint", "http://127.0.0.1:9", verbose=True) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("error: Cannot reach the Hub at http://127.0.0.1:9")


def test_build_errors_get_the_traceback_only_with_verbose(tmp_path, capsys):
    argv = ["build", "breastmnist-28", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--verbose"] + argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "breastmnist.npz: not found" in err


# -- reading a Hub repo (verify, montage, evaluate with --repo) ---------------------------------------------------

READ_COMMANDS = {
    "verify": ["verify", "breastmnist-28", "--repo", "tester/x"],
    "montage": ["montage", "breastmnist-28", "--repo", "tester/x", "-o", "never.png"],
    "evaluate": ["evaluate", "breastmnist-28", "--repo", "tester/x", "--predictions", "PREDICTIONS"],
}


@pytest.fixture
def read_command(request, tmp_path):
    predictions = tmp_path / "p.npy"
    np.save(predictions, np.full((COUNTS["test"], 2), 0.5))
    return [str(predictions) if arg == "PREDICTIONS" else arg for arg in READ_COMMANDS[request.param]]


@pytest.fixture
def no_hub_request(monkeypatch):
    """The reachability check fails before datasets is asked (datasets would retry for about 25 s)."""
    def load_dataset(*args, **kwargs):
        raise AssertionError(f"datasets.load_dataset{args} was called")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


@pytest.mark.parametrize("read_command", list(READ_COMMANDS), indirect=True)
def test_reading_from_an_unresolvable_hub_fails_at_once_with_reading_advice(read_command, no_hub_request,
                                                                            monkeypatch, capsys):
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hub.medmnist-plus.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", "http://hub.medmnist-plus.invalid")  # what datasets asks
    assert main(read_command) == 2
    line = one_paragraph(capsys, "cannot reach the Hub: the host name 'hub.medmnist-plus.invalid'",
                         "you are offline, or HF_ENDPOINT is wrong", "read an exported folder instead")
    assert "push" not in line, line


@pytest.mark.parametrize("read_command", ["verify", "montage"], indirect=True)
def test_reading_from_a_refusing_or_offline_hub_fails_at_once(read_command, no_hub_request, monkeypatch, capsys):
    with socket.socket() as closed:  # a loopback port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert main(read_command) == 2
    one_paragraph(capsys, f"cannot reach the Hub at http://127.0.0.1:{port}: the connection was refused")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    assert main(read_command) == 2
    one_paragraph(capsys, "offline mode is on", "read an exported folder instead")


def test_a_hub_failure_while_reading_gets_reading_advice():
    from medmnist_plus_common.cli.hub_errors import explain

    err = ConnectionError("the connection broke")
    assert "push" in explain(err, "http://127.0.0.1:1").lower()
    reading = explain(err, "http://127.0.0.1:1", reading=True)
    assert "push" not in reading.lower() and "read an exported folder instead" in reading
