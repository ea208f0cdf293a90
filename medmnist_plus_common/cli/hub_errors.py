"""One paragraph for each Hub or network failure a user can act on (no token, unreachable Hub, bad repo id, a
server without Xet...): what went wrong, where, and what to do. ``medmnist-plus`` prints these instead of a
traceback (``--verbose`` adds the traceback).

Nothing here is imported until an error is explained, so the catalog-only commands stay fast.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from typing import Iterator, Optional

DEFAULT_ENDPOINT = "https://huggingface.co"
RERUN = ("A push that stops half-way can simply be run again: a config is listed in the card only once all its "
         "shards are uploaded.")


def hub_endpoint(endpoint: Optional[str] = None) -> str:
    """The Hub a push talks to: ``--endpoint``, else ``HF_ENDPOINT``, else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _request(err: BaseException) -> str:
    """``METHOD URL`` of the request that failed, when the error knows it."""
    try:  # httpx raises RuntimeError for a response or an error without its request
        response = getattr(err, "response", None)
        request = response.request if response is not None else getattr(err, "request", None)
    except RuntimeError:
        return ""
    return f"{request.method} {request.url}" if request is not None else ""


def _status(err: BaseException) -> Optional[int]:
    return getattr(getattr(err, "response", None), "status_code", None)


def _server_message(err: BaseException) -> str:
    """The Hub's own explanation (huggingface_hub puts it after the status line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = [line for line in lines[1:] if not line.startswith("For more information check")]
    return (" Server said: " + " ".join(detail)) if detail else ""


READ_AGAIN = ("Reading --repo needs the Hub: read an exported folder instead (--data-dir DIR, written by "
              "`medmnist-plus export`), or the local build (leave out --repo).")


def explain(err: BaseException, endpoint: Optional[str] = None, reading: bool = False) -> Optional[str]:
    """A one-paragraph message for a known Hub or network failure, else None (an unexpected error: a bug).

    ``reading``: the command reads from the Hub (verify, montage, evaluate with --repo): its advice is about
    reading, not pushing.
    """
    message = _explain(err, endpoint)
    if message is not None and reading:
        message = message.replace(RERUN, READ_AGAIN).replace(" and push again", " and run it again")
    return message


def _explain(err: BaseException, endpoint: Optional[str] = None) -> Optional[str]:
    try:
        from huggingface_hub.errors import (
            HfHubHTTPError,
            HFValidationError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover - a hard dependency
        return None
    base = hub_endpoint(endpoint)
    if isinstance(err, HFValidationError):
        problem = str(err).splitlines()[0].replace(" Use `repo_type` argument if needed.", "")
        return (f"Not a valid Hub repo id: {problem} Use --repo <namespace>/<name> (letters, digits, "
                "'-', '_' and '.'), e.g. --repo your-name/medmnist_plus. Nothing was uploaded.")
    if isinstance(err, OfflineModeIsEnabled):
        return ("Offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE), and publishing needs the Hub. Unset it "
                "to push, or write the same files to a folder with `medmnist-plus export --out DIR`.")
    if isinstance(err, HfHubHTTPError) and _status(err) is not None:
        return _explain_http(err, base, RepositoryNotFoundError)
    if any("xet-write-token" in str(e) or "xet-read-token" in str(e) for e in _chain(err)):
        return (f"The Hub at {base} does not offer Xet storage, which huggingface_hub uses for uploads unless told "
                f"otherwise ({str(err).splitlines()[0]}). For a Hub without Xet, such as the local test Hub "
                "(tests/fakes/hub_server.py), set HF_HUB_DISABLE_XET=1 and push again.")
    return _explain_connection(err, base)


def _explain_http(err, base: str, not_found_class) -> str:
    status, request = _status(err), _request(err)
    where = f" ({status} on {request})" if request else f" (HTTP {status})"
    if status == 401:
        return (f"The Hub at {base} did not accept the token{where}: no token was given, or it is not valid there. "
                "Log in with `hf auth login`, set HF_TOKEN, or pass --token with a token that has write access "
                "(it is never printed).")
    if status == 403:
        return (f"The token may not write there{where}.{_server_message(err)} Use a token with write access to that "
                "namespace (a fine-grained token needs write permission for it), or push to your own namespace.")
    if isinstance(err, not_found_class) or status == 404:
        return (f"Not found on the Hub at {base}{where}.{_server_message(err)} Check --repo, --endpoint / HF_ENDPOINT "
                "and that the token can see the repo.")
    if status in (409, 412):
        return (f"The repo changed while this push wrote to it{where}.{_server_message(err)} Run the push again. "
                + RERUN)
    if status == 429 or status >= 500:
        return (f"The Hub at {base} is overloaded or failing{where}.{_server_message(err)} Try again later. " + RERUN)
    return f"The Hub at {base} refused a request{where}.{_server_message(err)} " + RERUN


def _explain_connection(err: BaseException, base: str) -> Optional[str]:
    chain = list(_chain(err))
    transport = False
    try:  # huggingface_hub's HTTP client
        import httpx2

        transport = any(isinstance(e, httpx2.TransportError) for e in chain)
        timeout = any(isinstance(e, httpx2.TimeoutException) for e in chain)
    except ImportError:  # pragma: no cover
        timeout = False
    if not transport and not any(isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)) for e in chain):
        return None
    host = urllib.parse.urlsplit(base).hostname or base
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text \
            or "nodename nor servname" in text or "Temporary failure in name resolution" in text:
        return (f"Cannot reach the Hub: the host name {host!r} of {base} cannot be resolved. You are offline, or "
                "--endpoint / HF_ENDPOINT is wrong. Connect to the network and push again, or write the files to a "
                "folder with `medmnist-plus export --out DIR`.")
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return (f"Cannot reach the Hub at {base}: the connection was refused (nothing listens there). Check "
                "--endpoint / HF_ENDPOINT; for a local test Hub, start it first "
                "(python tests/fakes/hub_server.py ./fake-hub PORT).")
    if timeout or any(isinstance(e, TimeoutError) for e in chain):
        return f"The Hub at {base} did not answer in time ({err}). Try again later. " + RERUN
    return f"The connection to the Hub at {base} failed ({type(err).__name__}: {err}). Try again later. " + RERUN
