"""The end-of-session secrets scan (tests/secrets_scan.py) finds what it must, where it is, and fails a run.

The scanner is searched with planted secrets in every form (plain, URL-encoded, base64 at each alignment,
inside AUTH PLAIN and XOAUTH2 strings), at known byte offsets, across its read-chunk boundary; the keyring
store is the one path it skips. End to end, a pytest session whose test leaks a registered secret into its
tmp_path exits non-zero and names the file and offset without printing the secret.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests import secrets_scan
from tests.secrets_scan import leak_forms, scan

REPO = Path(__file__).resolve().parents[2]
USER = "seller@seller.test"


def marker() -> str:
    return f"Pw!{secrets.token_hex(12)}/+={secrets.token_urlsafe(9)}"


def test_every_form_is_found_at_its_offset_and_reported_without_the_secret(tmp_path: Path) -> None:
    secret = marker()
    for form, needle in leak_forms(secret).items():
        path = tmp_path / form / "blob.bin"
        path.parent.mkdir()
        path.write_bytes(b"\x00" * 37 + needle + b"\xff tail")
    result = scan([tmp_path], {secret: "stack password"})
    assert result.files == len(leak_forms(secret)) and result.secrets == 1
    assert {(hit.path.parent.name, hit.offset) for hit in result.hits} == {
        (form, 37) for form in leak_forms(secret)
    }
    for hit in result.hits:
        assert str(hit).startswith(f"{hit.path} at byte 37: stack password #1 (")
        assert secret not in str(hit)
        assert not any(needle.decode("latin-1") in str(hit) for needle in leak_forms(secret).values())


def test_the_secret_inside_sasl_and_url_strings_is_found(tmp_path: Path) -> None:
    password, token = marker(), "zq-7"
    transcripts = {
        "auth_plain": b"AUTH PLAIN " + base64.b64encode(f"\0{USER}\0{password}".encode()),
        "auth_plain_authzid": base64.b64encode(f"{USER}\0{USER}\0{password}".encode()),
        "auth_login": b"334 UGFzc3dvcmQ6\r\n" + base64.b64encode(password.encode()),
        "xoauth2": b"AUTH XOAUTH2 "
        + base64.b64encode(f"user={USER}\x01auth=Bearer {token}\x01\x01".encode()),
        "form": b"grant_type=refresh_token&refresh_token=" + urllib.parse.quote_plus(password).encode(),
        "json": b'{"access_token": "zq-7", "expires_in": 3600}',
    }
    for name, content in transcripts.items():
        (tmp_path / f"{name}.log").write_bytes(b"C: " + content + b"\r\n")
    result = scan([tmp_path], {password: "account password", token: "OAuth access token"})
    assert sorted(hit.path.stem for hit in result.hits) == sorted(transcripts)


def test_a_short_token_counts_only_as_a_whole_token(tmp_path: Path) -> None:
    # tokens no fixture issues: a planted OAuth-server token would be a real hit for the session's own scan
    (tmp_path / "near-misses.txt").write_bytes(b"zq-12 formzq-1 czq-1 zq-1x Bzq-1 zq-1= zq-1/2")
    (tmp_path / "leak.txt").write_bytes(b'{"token": "zq-1"}')
    result = scan([tmp_path], {"zq-1": "OAuth access token"})
    assert [(hit.path.name, hit.offset) for hit in result.hits] == [("leak.txt", 11)]


def test_a_secret_across_the_read_chunk_boundary_is_found_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets_scan, "CHUNK", 64)
    secret = marker()
    path = tmp_path / "big.sqlite3-wal"
    for offset in (64 - 5, 128 + 64 - 1, 1000):
        content = b"x" * offset + secret.encode() + b"y" * 300
        path.write_bytes(content)
        hits = scan([tmp_path], {secret: "s"}).hits
        assert [(hit.offset, hit.form) for hit in hits] == [(offset, "plain")], offset
    short = tmp_path / "short.txt"
    path.unlink()
    short.write_bytes(b"z" * 60 + b" zq-1" + b"2" * 10)  # "zq-12…": the chunk ends right after "zq-1"
    assert scan([tmp_path], {"zq-1": "t"}).hits == []


def test_the_keyring_store_is_the_one_place_skipped(tmp_path: Path) -> None:
    secret = marker()
    keyrings = tmp_path / "home" / ".local" / "share" / "keyrings"
    keyrings.mkdir(parents=True)
    (keyrings / "login.keyring").write_bytes(secret.encode())
    (keyrings / "notes.txt").write_bytes(secret.encode())  # not the keyring's store: scanned
    result = scan([tmp_path], {secret: "s"})
    assert result.excluded == 1
    assert [hit.path.name for hit in result.hits] == ["notes.txt"]


def test_sockets_and_links_are_not_followed(tmp_path: Path) -> None:
    secret = marker()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(secret)
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "link").symlink_to(outside / "secret.txt")
    (inside / "plain.txt").write_text("nothing here")
    result = scan([inside], {secret: "s"})
    assert result.hits == [] and result.files == 1


# --- end to end: a pytest session ------------------------------------------------------------------------

INNER_CONFTEST = "from tests.secrets_scan import pytest_sessionfinish  # noqa: F401\n"
INNER_TEST = """
from tests.secrets_scan import register_secret

SECRET = {secret!r}


def test_makes_a_secret(tmp_path):
    register_secret(SECRET, label="planted password")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cadence.log").write_bytes({content!r})
"""


def _inner_session(tmp_path: Path, secret: str, content: bytes) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(INNER_CONFTEST)
    (project / "test_inner.py").write_text(INNER_TEST.format(secret=secret, content=content))
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CADENCE_CHAOS"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(project), "--basetemp", str(tmp_path / "basetemp"), str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_session_that_leaks_a_registered_secret_fails_with_file_and_offset(tmp_path: Path) -> None:
    secret = marker()
    leaked = _inner_session(tmp_path, secret, b"2026 INFO login " + secret.encode() + b"\n")
    output = leaked.stdout + leaked.stderr
    assert leaked.returncode == 1, output
    assert "1 passed" in output  # the test itself passed: the scan failed the run
    log = tmp_path / "basetemp" / "test_makes_a_secret0" / "data" / "cadence.log"
    assert f"LEAK: {log} at byte 16: planted password #1 (plain)" in output
    assert "1 secret(s)" in output and "1 hit(s)" in output
    assert secret not in output


def test_a_clean_session_passes_and_prints_its_figures(tmp_path: Path) -> None:
    clean = _inner_session(tmp_path, marker(), b"2026 INFO login ok\n")
    output = clean.stdout + clean.stderr
    assert clean.returncode == 0, output
    assert (
        "secrets scan: 1 secret(s), 1 file(s), 19 byte(s) scanned, 0 excluded (keyring store), 0 hit(s)"
        in (output)
    )


def test_the_session_scans_its_base_temp_and_the_throwaway_home_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    basetemp, home = tmp_path / "basetemp", tmp_path / "cadence-test-home.x"
    for folder in (basetemp, home / ".config", home / ".cache", home / ".local" / "share"):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    assert secrets_scan.session_roots(basetemp) == [basetemp.resolve(), home.resolve()]
    elsewhere = tmp_path / "other-data"
    elsewhere.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(elsewhere))  # a throw-away dir outside HOME is scanned too
    assert secrets_scan.session_roots(basetemp)[-1] == elsewhere.resolve()
