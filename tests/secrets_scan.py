"""The secrets scan after the whole test session (issue 7, point 5).

Tests that create a secret (the mail stack's password, an OAuth token the test token server issues, a
password given to `cadence account add`) call `register_secret(value, label=...)`. When the session ends
(`pytest_sessionfinish`, wired in tests/conftest.py), every regular file under the session's base temp
directory (all data dirs, cadence.log files — crash reports go there too —, settings files, SQLite files
with their -wal/-shm) and the throw-away HOME's config, cache and data dirs is read as bytes and searched
for every registered secret in every form it could take on disk or on the wire: plain, URL-encoded,
base64 at any alignment (so the password inside an AUTH PLAIN or XOAUTH2 string is found whatever comes
before it). A hit fails the run (exit code 1) and is reported as file + byte offset + form + label, never
the secret itself. The figures (secrets, files, bytes, hits) are printed and recorded for the chaos report.

Legitimate places are excluded by path, nothing else: see `_excluded`.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPORT_NAME = "secrets_scan"
SHORT = 12  # secrets shorter than this are matched as whole tokens only (see `_patterns`)
CHUNK = 8 * 1024 * 1024
# Characters that may belong to a token, password or base64 text: a short secret only counts as found when
# it is not part of a longer run of them ("at-1" in "at-12" or "format-1" is not a leak of "at-1").
_TOKEN_CHAR = rb"A-Za-z0-9._~+/=\-"

_lock = threading.Lock()
_registered: dict[str, str] = {}  # secret → label (first label wins)


def register_secret(value: str, *, label: str = "secret") -> None:
    """Have the end-of-session scan look for `value` (ignored when empty)."""
    if not value:
        return
    with _lock:
        _registered.setdefault(value, label)


def registered_secrets() -> dict[str, str]:
    with _lock:
        return dict(_registered)


# --- the forms a secret takes -----------------------------------------------------------------------------


def _base64_cores(raw: bytes) -> dict[str, bytes]:
    """For each of the three alignments, the base64 characters that depend on `raw` alone: whatever bytes
    come before and after it in the encoded stream (AUTH PLAIN's "\\0user\\0", XOAUTH2's "auth=Bearer "),
    the stream contains one of these."""
    cores: dict[str, bytes] = {}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        begin = -(-shift * 8 // 6)  # characters that carry prefix bits
        end = (shift + len(raw)) * 8 // 6  # characters complete before any following bits
        core = encoded[begin:end]
        if len(core) >= 8:
            cores[f"base64@{shift}"] = core
            urlsafe = core.replace(b"+", b"-").replace(b"/", b"_")
            if urlsafe != core:
                cores[f"base64url@{shift}"] = urlsafe
    return cores


def leak_forms(secret: str) -> dict[str, bytes]:
    """Every byte string whose presence in a file means `secret` leaked."""
    raw = secret.encode("utf-8")
    forms = {
        "plain": raw,
        "url": urllib.parse.quote(secret, safe="").encode("ascii"),
        "url_path": urllib.parse.quote(secret).encode("ascii"),
        "url_plus": urllib.parse.quote_plus(secret).encode("ascii"),
    }
    if len(raw) >= SHORT:
        forms.update(_base64_cores(raw))
    else:
        # too short for a meaningful base64 fragment: look for it inside the SASL strings that carry it
        forms.update(_base64_cores(b"auth=Bearer " + raw + b"\x01"))  # XOAUTH2 / OAUTHBEARER
        forms.update({f"auth_plain:{k}": v for k, v in _base64_cores(b"\0" + raw).items() if len(v) >= 8})
    unique: dict[bytes, str] = {}
    for name, needle in forms.items():
        unique.setdefault(needle, name)
    return {name: needle for needle, name in unique.items()}


@dataclass(frozen=True)
class Needles:
    """Every form of every secret in one regular expression (a trie, so one pass over the bytes finds any
    of them), what each matched byte string stands for, and which must stand alone as a token."""

    pattern: re.Pattern[bytes] | None
    meaning: dict[bytes, tuple[str, str]]  # needle → (label, form)
    whole_token: frozenset[bytes]
    longest: int


def _trie_regex(words: Iterable[bytes]) -> bytes:
    trie: dict[int, Any] = {}
    for word in words:
        node = trie
        for byte in word:
            node = node.setdefault(byte, {})
        node[-1] = {}

    def build(node: dict[int, Any]) -> bytes:
        branches = [
            re.escape(bytes([byte])) + build(child) for byte, child in sorted(node.items()) if byte >= 0
        ]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        if -1 in node:
            body = b"(?:" + body + b")?"  # greedy: the longest needle wins
        return body

    return build(trie)


def needles_for(secrets: dict[str, str]) -> Needles:
    meaning: dict[bytes, tuple[str, str]] = {}
    whole_token: set[bytes] = set()
    for index, (secret, label) in enumerate(sorted(secrets.items(), key=lambda item: item[1])):
        short = len(secret.encode("utf-8")) < SHORT
        for form, needle in leak_forms(secret).items():
            meaning.setdefault(needle, (f"{label} #{index + 1}", form))
            if short and not form.startswith(("base64", "auth_plain")):
                whole_token.add(needle)
    if not meaning:
        return Needles(None, meaning, frozenset(), 0)
    # the token boundaries of short secrets are checked on each match, not in the expression: a look-behind
    # tried at every byte makes the scan ten times slower
    pattern = re.compile(_trie_regex(meaning))
    return Needles(pattern, meaning, frozenset(whole_token), max(map(len, meaning)))


_IS_TOKEN_CHAR = re.compile(rb"[" + _TOKEN_CHAR + rb"]")


def _stands_alone(buffer: bytes, begin: int, end: int) -> bool:
    before = buffer[begin - 1 : begin] if begin > 0 else b""
    after = buffer[end : end + 1]
    return not any(_IS_TOKEN_CHAR.fullmatch(edge) for edge in (before, after) if edge)


# --- the scan --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    path: Path
    offset: int
    label: str
    form: str

    def __str__(self) -> str:  # never the secret itself
        return f"{self.path} at byte {self.offset}: {self.label} ({self.form})"


@dataclass
class ScanResult:
    secrets: int = 0
    files: int = 0
    bytes: int = 0
    excluded: int = 0
    unreadable: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "secrets": self.secrets,
            "files": self.files,
            "bytes": self.bytes,
            "excluded": self.excluded,
            "unreadable": len(self.unreadable),
            "hits": len(self.hits),
        }


def _excluded(path: Path) -> bool:
    # gnome-keyring's own store (…/keyrings/*.keyring under the test HOME or a keyring_session folder) is
    # the one legitimate home of a secret on disk; it is encrypted with the keyring password.
    return path.parent.name == "keyrings" and path.suffix == ".keyring"


def _files(roots: Iterable[Path]) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
    for root in roots:
        for folder, directories, names in os.walk(root, followlinks=False):
            directories.sort()
            for name in sorted(names):
                path = Path(folder) / name
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if not path.is_file() or path.is_symlink() or (info.st_dev, info.st_ino) in seen:
                    continue  # sockets, FIFOs, links; a file reached through two roots is read once
                seen.add((info.st_dev, info.st_ino))
                yield path


def scan(roots: Iterable[Path], secrets: dict[str, str]) -> ScanResult:
    """Search every regular file under `roots` for every form of every secret (secret → label)."""
    result = ScanResult(secrets=len(secrets), roots=[root for root in roots if root.exists()])
    needles = needles_for(secrets)
    for path in _files(result.roots):
        if _excluded(path):
            result.excluded += 1
            continue
        try:
            result.hits.extend(_scan_file(path, needles, result=result))
        except OSError as error:
            result.unreadable.append(f"{path}: {error.strerror or error}")
            continue
        result.files += 1
    return result


def _scan_file(path: Path, needles: Needles, *, result: ScanResult) -> list[Hit]:
    found: dict[int, Hit] = {}
    overlap = needles.longest + 1  # +1: the look-behind of a whole-token match
    with path.open("rb") as stream:
        start = 0  # file offset of buffer[0]
        buffer = b""
        while True:
            chunk = stream.read(CHUNK)
            result.bytes += len(chunk)
            if needles.pattern is not None:
                buffer += chunk
                position = 0
                while (match := needles.pattern.search(buffer, position)) is not None:
                    needle, begin, end = match.group(), match.start(), match.end()
                    if chunk and end == len(buffer):
                        break  # may go on in the next chunk: found again from the kept tail
                    if needle in needles.whole_token and not _stands_alone(buffer, begin, end):
                        position = begin + 1  # part of a longer token; a needle may still start inside
                        continue
                    label, form = needles.meaning[needle]
                    found.setdefault(start + begin, Hit(path, start + begin, label, form))
                    position = end
                keep = min(len(buffer), overlap)
                start += len(buffer) - keep
                buffer = buffer[len(buffer) - keep :]
            if not chunk:
                break
    return sorted(found.values(), key=lambda hit: hit.offset)


# --- where to look ---------------------------------------------------------------------------------------


def _throwaway(path: Path) -> bool:
    """A directory made for this run inside the temp dir (not the temp dir itself)."""
    try:
        resolved, temp = path.resolve(), Path(tempfile.gettempdir()).resolve()
    except OSError:
        return False
    return resolved != temp and resolved.is_relative_to(temp)


def session_roots(basetemp: Path | None) -> list[Path]:
    """The session's base temp dir, and HOME's config/cache/data dirs when HOME is a throw-away one
    (tests/run.sh); with a real HOME only Cadence's own directories there."""
    roots: list[Path] = [basetemp] if basetemp is not None else []
    home = Path.home()
    xdg = [
        Path(os.environ.get(name, default)).expanduser()
        for name, default in (
            ("XDG_CONFIG_HOME", "~/.config"),
            ("XDG_CACHE_HOME", "~/.cache"),
            ("XDG_DATA_HOME", "~/.local/share"),
            ("XDG_STATE_HOME", "~/.local/state"),
        )
    ]
    if _throwaway(home):
        roots.append(home)
        roots.extend(path for path in xdg if _throwaway(path))
    else:
        import platformdirs

        from cadence import APP_NAME

        roots.extend(
            Path(directory)
            for directory in (
                platformdirs.user_data_dir(APP_NAME, appauthor=False),
                platformdirs.user_config_dir(APP_NAME, appauthor=False),
                platformdirs.user_cache_dir(APP_NAME, appauthor=False),
                platformdirs.user_log_dir(APP_NAME, appauthor=False),
            )
        )
    existing = [root.resolve() for root in dict.fromkeys(roots) if root.exists()]
    return [
        root
        for root in existing
        if not any(root != other and root.is_relative_to(other) for other in existing)
    ]


# --- the pytest hook (imported by tests/conftest.py) ------------------------------------------------------


def _basetemp(config: pytest.Config) -> Path | None:
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    given = getattr(factory, "_basetemp", None) or config.option.basetemp
    if given is None:
        # no test asked for a temp dir: nothing of this session's can be there (and creating it is pointless)
        return None
    return Path(given)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller scans
        return
    secrets = registered_secrets()
    result = scan(session_roots(_basetemp(session.config)), secrets)
    problems = [str(hit) for hit in result.hits]
    if secrets and result.files == 0:
        problems.append(f"secrets were registered but no file was scanned under {result.roots}")
    figures = result.figures()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        "secrets scan: {secrets} secret(s), {files} file(s), {bytes} byte(s) scanned, {excluded} excluded "
        "(keyring store), {hits} hit(s)".format(**figures),
        *(f"  LEAK: {problem}" for problem in problems),
        *(f"  unreadable: {entry}" for entry in result.unreadable),
    ]
    if reporter is not None:
        reporter.write_sep("=", "secrets scan", red=bool(problems), green=not problems)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    if secrets:  # a session that made no secret has nothing to report to the chaos figures
        from tests.stack.report import record

        record(REPORT_NAME, roots=[str(root) for root in result.roots], **figures)
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
