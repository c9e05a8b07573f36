"""Hostile and careless configuration files: a generated corpus of more than 200 broken files
(nesting, sizes, encodings, control characters, tags, aliases, wrong types, header injection).

Every one must end ``citrixagent validate`` with exit 2 and one-line errors naming file and line,
without a traceback and without any network connection.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CliResult

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.errors import ConfigError

BASE = """\
appliance:
  url: https://adc.example.com/
  username: nsroot
  password: ${ADC_PASSWORD}
vservers:
  - vs_web
certificate:
  common_name: www.example.com
sectigo:
  org_id: 1
  cert_type: 2
  term: 365
"""
SCM = """\
url: https://cert-manager.com/api
customer_uri: acme
username: api-user
password: ${SCM_PASSWORD}
"""
ENV = {"ADC_PASSWORD": "adc-secret-1", "SCM_PASSWORD": "scm-secret-1"}

Case = tuple[str, bytes, str]  # (id, file content, "profile" | "scm")


def _sub(old: str, new: str, base: str = BASE) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def _nesting() -> Iterator[Case]:
    for depth in (33, 100, 1000, 5000, 50_000):
        yield f"flow-list-{depth}", ("a: " + "[" * depth + "]" * depth + "\n").encode(), "profile"
        yield f"flow-map-{depth}", ("a: " + "{b: " * depth + "1" + "}" * depth + "\n").encode(), "profile"
        yield f"unclosed-{depth}", ("a: " + "[" * depth + "\n").encode(), "profile"
    for depth in (33, 60, 200):
        text = "".join(" " * i + f"k{i}:\n" for i in range(depth)) + " " * depth + "v\n"
        yield f"block-map-{depth}", text.encode(), "profile"
        yield f"block-seq-{depth}", "".join(" " * (2 * i) + "-\n" for i in range(depth)).encode(), "profile"
    yield (
        "nested-in-field",
        _sub("  username: nsroot", "  username: " + "[" * 40 + "]" * 40).encode(),
        "profile",
    )
    yield "scm-nested", ("poll: " + "[" * 3000 + "]" * 3000 + "\n" + SCM).encode(), "scm"


def _sizes() -> Iterator[Case]:
    million = "9" * 1_000_000
    for field, old in (("term", "term: 365"), ("org_id", "org_id: 1"), ("cert_type", "cert_type: 2")):
        yield f"million-digits-{field}", _sub(old, f"{field}: {million}").encode(), "profile"
        yield f"5000-digits-{field}", _sub(old, f"{field}: {'7' * 5000}").encode(), "profile"
        yield f"negative-big-{field}", _sub(old, f"{field}: -{'1' * 50}").encode(), "profile"
        yield f"float-{field}", _sub(old, f"{field}: 1.0e+999999").encode(), "profile"
    yield "term-10e20", _sub("term: 365", "term: 100000000000000000000").encode(), "profile"
    yield "term-zero", _sub("term: 365", "term: 0").encode(), "profile"
    yield "term-3651", _sub("term: 365", "term: 3651").encode(), "profile"
    yield "org-id-2e31", _sub("org_id: 1", "org_id: 2147483648").encode(), "profile"
    yield "timeout-nan", _sub("  password:", "  timeout: .nan\n  password:").encode(), "profile"
    yield "timeout-inf", _sub("  password:", "  timeout: .inf\n  password:").encode(), "profile"
    yield "timeout-huge", _sub("  password:", "  timeout: 1e300\n  password:").encode(), "profile"
    yield "scm-timeout-million", (SCM + "timeout: " + "9" * 1_000_000 + "\n").encode(), "scm"
    yield "scm-poll-negative", (SCM + "poll: {first_wait: -1}\n").encode(), "scm"
    yield (
        "scm-profile-id-big",
        (
            b"api: enrollment\nurl: https://e.example\nclient_id: c\nclient_secret: s\n"
            b"profile_id: 99999999999999999999999\n"
        ),
        "scm",
    )
    cn = "  common_name: www.example.com\n"
    for count in (251, 1001, 20_000):
        sans = ", ".join(f"h{i}.example.com" for i in range(count))
        yield f"sans-{count}", _sub(cn, cn + f"  subject_alt_names: [{sans}]\n").encode(), "profile"
    for count in (65, 1001):
        vservers = "".join(f"  - vs{i}\n" for i in range(count))
        yield f"vservers-{count}", _sub("  - vs_web\n", vservers).encode(), "profile"
    fields = ", ".join(f"f{i}: v" for i in range(51))
    yield "custom-fields-51", (BASE + f"  custom_fields: {{{fields}}}\n").encode(), "profile"
    yield "custom-field-long", (BASE + f"  custom_fields: {{a: {'x' * 300}}}\n").encode(), "profile"
    for field, old in (
        ("username", "  username: nsroot"),
        ("common_name", "  common_name: www.example.com"),
        ("url", "  url: https://adc.example.com/"),
    ):
        key = old.split(":")[0]
        yield f"long-{field}-70000", _sub(old, f"{key}: {'a' * 70_000}").encode(), "profile"
        yield f"long-{field}-300", _sub(old, f"{key}: {'a' * 300}").encode(), "profile"
    yield "long-comments", (BASE + f"  comments: {'c' * 2000}\n").encode(), "profile"
    yield "long-certkey", _sub(cn, cn + f"  certkey_name: {'k' * 32}\n").encode(), "profile"
    yield "long-name", (BASE + f"name: {'n' * 64}\n").encode(), "profile"
    yield "long-vserver", _sub("  - vs_web", f"  - {'v' * 128}").encode(), "profile"
    yield "long-partition", _sub("  password:", f"  partition: {'p' * 300}\n  password:").encode(), "profile"
    yield (
        "url-port-70000",
        _sub("https://adc.example.com/", "https://adc.example.com:70000/").encode(),
        "profile",
    )
    yield "url-port-0", _sub("https://adc.example.com/", "https://adc.example.com:0/").encode(), "profile"
    yield "scm-url-port", SCM.replace("cert-manager.com/api", "cert-manager.com:99999/api").encode(), "scm"
    yield "file-5mib", (BASE + "#" + "x" * (5 * 1024 * 1024) + "\n").encode(), "profile"
    yield (
        "keys-1001",
        (BASE + "renewal:\n" + "".join(f"  k{i}: 1\n" for i in range(1001))).encode(),
        "profile",
    )
    yield "keys-100000", "".join(f"k{i}: {i}\n" for i in range(100_000)).encode(), "profile"


def _encodings() -> Iterator[Case]:
    text = _sub("username: nsroot", "username: nsröot")
    yield "latin-1", text.encode("latin-1"), "profile"
    yield "cp1252", _sub("username: nsroot", "username: ns€root").encode("cp1252"), "profile"
    yield "utf-16-bom", text.encode("utf-16"), "profile"
    yield "utf-16-le", text.encode("utf-16-le"), "profile"
    yield "utf-32", text.encode("utf-32"), "profile"
    yield "binary-all-bytes", bytes(range(256)) * 4, "profile"
    yield "binary-png-header", b"\x89PNG\r\n\x1a\n" + bytes(100), "profile"
    yield "binary-gzip", b"\x1f\x8b\x08\x00" + bytes(range(1, 200)), "profile"
    yield "binary-zeros", bytes(64), "profile"
    yield "truncated-utf8", BASE.encode() + b"  comments: caf\xc3\n", "profile"
    yield "overlong-utf8", BASE.encode() + b"  comments: \xc0\xaf\n", "profile"
    yield "surrogate-cesu", BASE.encode() + b"  comments: \xed\xa0\x80\n", "profile"
    yield "ff-first", b"\xff" + BASE.encode(), "profile"
    yield "bad-byte-line-9", BASE.replace("sectigo:", "sectigo:\xa0").encode("latin-1"), "profile"
    yield "scm-latin-1", SCM.replace("acme", "acmé").encode("latin-1"), "scm"
    yield "scm-binary", bytes(range(255, -1, -1)), "scm"


def _controls() -> Iterator[Case]:
    for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, *range(0x80, 0x85), 0x86, 0x9F]:
        raw = _sub("username: nsroot", f"username: ns{chr(code)}root")
        yield f"raw-control-{code:02x}", raw.encode("utf-8"), "profile"
    header_fields = {
        "profile": ("username: nsroot", "username"),
        "scm-user": ("username: api-user", "username"),
        "scm-customer": ("customer_uri: acme", "customer_uri"),
        "scm-password": ("password: ${SCM_PASSWORD}", "password"),
        "profile-password": ("password: ${ADC_PASSWORD}", "password"),
    }
    escapes = {
        "crlf": "\\r\\nX-Injected: 1",
        "lf": "\\nX-Injected: 1",
        "cr": "\\r",
        "nul": "\\0",
        "bell": "\\a",
        "esc": "\\e",
        "nel": "\\N",
        "line-sep": "\\L",
        "snowman": "\\u2603",
        "emoji": "\\U0001F600",
        "del": "\\x7f",
        "c1": "\\x9b",
    }
    for where, (old, key) in header_fields.items():
        base = SCM if where.startswith("scm") else BASE
        kind = "scm" if where.startswith("scm") else "profile"
        for name, escape in escapes.items():
            yield f"header-{where}-{name}", _sub(old, f'{key}: "x{escape}y"', base).encode(), kind
    oauth = "url: https://admin.example.com/api\nauth: oauth\nclient_id: cid\nclient_secret: s\n"
    for name in ("crlf", "snowman", "nul"):
        yield (
            f"header-client-id-{name}",
            _sub("client_id: cid", f'client_id: "c{escapes[name]}"', oauth).encode(),
            "scm",
        )
    yield (
        "url-with-crlf",
        _sub("url: https://adc.example.com/", 'url: "https://adc.example.com/\\r\\nX: 1"').encode(),
        "profile",
    )


def _tags() -> Iterator[Case]:
    tags = [
        "!!python/object/apply:os.system ['touch /tmp/pwned']",
        "!!python/object/new:subprocess.Popen [['id']]",
        "!!python/name:os.system",
        "!!python/module:os",
        "!!python/object:__main__.X {}",
        "!!python/tuple [1, 2]",
        "!!python/bytes aGk=",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "!!pairs [a: 1]",
        "!custom value",
        "!<tag:example.com,2000:app/x> value",
        "!!map {a: 1}",
        "!!seq [a]",
        "!!int '12'",
        "!!float '1.5'",
        "!!bool 'true'",
        "!!null ''",
        "!!timestamp 2001-12-14",
        "!!int notanumber",
    ]
    for i, tag in enumerate(tags):
        yield f"tag-{i:02d}", _sub("username: nsroot", f"username: {tag}").encode(), "profile"
    yield "tag-on-top", ("!!python/object/apply:os.system\n" + BASE).encode(), "profile"
    yield "tag-scm", _sub("username: api-user", "username: !!python/name:os.getcwd", SCM).encode(), "scm"
    yield (
        "tag-directive",
        ("%TAG !e! tag:example.com,2000:\n---\n" + BASE.replace("nsroot", "!e!x y")).encode(),
        "profile",
    )


def _aliases() -> Iterator[Case]:
    levels = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    yield (
        "billion-laughs",
        ("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels).encode(),
        "profile",
    )
    bomb_in_field = _sub(
        "  - vs_web\n", "  - *l6\n", "l0: &l0 [a, a, a, a, a, a, a, a, a]\n" + levels.split("l7:")[0] + BASE
    )
    yield "bomb-in-vservers", bomb_in_field.encode(), "profile"
    maps = "".join(
        f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(9)) + "}\n" for i in range(1, 10)
    )
    yield "mapping-bomb", ("m0: &m0 {a: 1}\n" + maps).encode(), "profile"
    yield "unknown-alias", _sub("username: nsroot", "username: *nowhere").encode(), "profile"
    yield "self-alias", ("a: &a [*a]\n" + BASE).encode(), "profile"
    yield "alias-as-key", ("k: &k username\n" + BASE + "*k : x\n").encode(), "profile"
    yield "merge-scalar", (BASE + "renewal:\n  <<: 5\n").encode(), "profile"
    yield "merge-list-of-scalars", (BASE + "renewal:\n  <<: [1, 2]\n").encode(), "profile"
    yield (
        "anchor-reuse-wrong-type",
        ("x: &x [1, 2]\n" + _sub("username: nsroot", "username: *x")).encode(),
        "profile",
    )
    yield "scm-bomb", ("l0: &l0 [a, a, a, a, a, a, a, a, a]\n" + levels + SCM).encode(), "scm"


def _types() -> Iterator[Case]:
    wrong = {
        "list": "[a, b]",
        "map": "{a: b}",
        "bool": "true",
        "int": "12",
        "float": "1.5",
        "date": "2020-01-01",
    }
    fields = {
        "username": "  username: nsroot",
        "url": "  url: https://adc.example.com/",
        "common_name": "  common_name: www.example.com",
        "org_id": "  org_id: 1",
        "term": "  term: 365",
        "vserver": "  - vs_web",
    }
    for fname, old in fields.items():
        key = old.split(":")[0] if ":" in old else "  -"
        for wname, value in wrong.items():
            if (fname, wname) in {("org_id", "int"), ("term", "int"), ("cert_type", "int")}:
                continue
            new = f"{key}: {value}" if ":" in old else f"  - {value}"
            if fname == "vserver" and wname in ("map",):
                new = "  - {a: b}"
            yield f"type-{fname}-{wname}", _sub(old, new).encode(), "profile"
    yield "top-list", b"- a\n- b\n", "profile"
    yield "top-scalar", b"just a string\n", "profile"
    yield "top-int", b"42\n", "profile"
    yield "empty", b"", "profile"
    yield "only-comment", b"# nothing\n", "profile"
    yield "null-doc", b"~\n", "profile"
    yield "two-docs", (BASE + "---\n" + BASE).encode(), "profile"
    yield "int-keys", (BASE + "1: x\n").encode(), "profile"
    yield "null-key", (BASE + "~: x\n").encode(), "profile"
    yield "list-key", (BASE + "? [a]\n: x\n").encode(), "profile"
    yield "appliance-list", _sub("appliance:\n", "appliance: [x]\nold:\n").encode(), "profile"
    yield "sni-yes", _sub("  - vs_web", "  - {name: vs_web, sni: yes}").encode(), "profile"
    yield (
        "key-size-string",
        _sub("  common_name: www.example.com", "  common_name: www.example.com\n  key_size: '2048'").encode(),
        "profile",
    )
    yield "scm-list", b"- url\n", "scm"
    yield "scm-url-int", SCM.replace("url: https://cert-manager.com/api", "url: 12").encode(), "scm"
    yield "scm-poll-list", (SCM + "poll: [1, 2]\n").encode(), "scm"
    yield "scm-verify-int", (SCM + "verify_tls: 1\n").encode(), "scm"
    yield "scm-proxy-ftp", (SCM + "proxy: ftp://proxy.example.com\n").encode(), "scm"
    yield "scm-proxy-int", (SCM + "proxy: 3128\n").encode(), "scm"
    yield "scm-proxy-path", (SCM + "proxy: http://u:hunter2@proxy.example.com:3128/x\n").encode(), "scm"
    yield (
        "profile-proxy-bad",
        _sub("  password:", "  proxy: socks5://p.example.com\n  password:").encode(),
        "profile",
    )


def corpus() -> list[Case]:
    cases = [*_nesting(), *_sizes(), *_encodings(), *_controls(), *_tags(), *_aliases(), *_types()]
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CORPUS = corpus()


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 200
    assert len({c[0].split("-")[0] for c in CORPUS}) >= 8


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network connection attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _write(tmp_path: Path, case: Case) -> Path:
    name, data, kind = case
    path = tmp_path / (f"scm-{name}.yaml" if kind == "scm" else f"{name}.yaml")
    path.write_bytes(data)
    return path


def _check_errors(path: Path, code: int, err: str, out: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in err + out and "internal error" not in err + out, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors, err
    pattern = re.compile(rf"^error: {re.escape(str(path))}:[1-9][0-9]*: \S")
    for line in errors:
        assert pattern.match(line), line
        assert len(line) < 400, line[:400]
    for secret in ENV.values():
        assert secret not in err + out


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_file_is_a_clean_exit_2_with_file_and_line(
    case: Case,
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no ./scm.yaml
    path = _write(tmp_path, case)
    args = ("--scm-config", path, "validate") if case[2] == "scm" else ("validate", path)
    result = cli(*args)
    _check_errors(path, result.code, result.err, result.out)


SUBPROCESS_CASES = [
    "flow-list-50000",
    "million-digits-term",
    "raw-control-00",
    "binary-all-bytes",
    "billion-laughs",
    "header-profile-crlf",
]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_hostile_file_through_the_installed_command(name: str, tmp_path: Path) -> None:
    (case,) = [c for c in CORPUS if c[0] == name]
    path = _write(tmp_path, case)
    env = {
        "PATH": "/usr/bin:/bin",
        "ADC_PASSWORD": ENV["ADC_PASSWORD"],
        "CITRIXAGENT_ACCEPT_LICENSE": "yes",
        "CITRIXAGENT_STATE_DIR": str(tmp_path / "state"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "citrix_connector", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    _check_errors(path, proc.returncode, proc.stderr, proc.stdout)


# ----------------------------------------------------------------------------- specific messages


def _problems(path: Path, loader: Callable[..., object] = load_profile) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader(path, env=ENV)
    return info.value.problems


def test_decoding_failure_names_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    data = BASE.replace("sectigo:", "sectigo: \xe9").encode("latin-1")
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    assert _problems(path) == [f"{path}:9: not UTF-8 text: invalid byte 0xe9 at byte offset {offset}"]


def test_nul_byte_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(BASE.replace("nsroot", "ns\x00root").encode())
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:3: control character U+0000 at column 15")


def test_deep_nesting_and_big_numbers_name_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(_sub("  username: nsroot", "  username: " + "[" * 100 + "]" * 100))
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:3: nested deeper than")
    path.write_text(_sub("term: 365", "term: " + "9" * 100_000))
    assert _problems(path) == [f"{path}:12: sectigo.term: value longer than 65536 characters"]
    path.write_text(_sub("term: 365", "term: " + "9" * 50))
    assert _problems(path) == [f"{path}:12: sectigo.term: number too large (50 characters)"]
    path.write_text(_sub("term: 365", "term: 100000000000000000000"))
    assert _problems(path) == [
        f"{path}:12: sectigo.term: must be between 1 and 3650, got 100000000000000000000"
    ]


def test_header_values_are_rejected_at_load_without_echoing_secrets(tmp_path: Path) -> None:
    path = tmp_path / "scm.yaml"
    path.write_text(_sub("username: api-user", 'username: "api\\r\\nX-Injected: 1"', SCM))
    (problem,) = _problems(path, load_scm_config)
    assert problem.startswith(f"{path}:3: username: contains a line break (CR/LF)")
    path.write_text(_sub("password: ${SCM_PASSWORD}", 'password: "s3cr\\u2603t"', SCM))
    (problem,) = _problems(path, load_scm_config)
    assert problem.startswith(f"{path}:4: password: contains character U+2603 outside Latin-1")
    assert "s3cr" not in problem
    profile = tmp_path / "p.yaml"
    profile.write_text(_sub("username: nsroot", 'username: "ns\\troot\\x01"'))
    (problem,) = _problems(profile)
    assert problem.startswith(f"{profile}:3: appliance.username: contains control character U+0001")


def test_limits_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    cn = "  common_name: www.example.com\n"
    sans = ", ".join(f"h{i}.example.com" for i in range(251))
    path.write_text(_sub(cn, cn + f"  subject_alt_names: [{sans}]\n"))
    assert _problems(path) == [f"{path}:9: certificate.subject_alt_names: at most 250 entries, got 251"]
    path.write_text(_sub("  - vs_web\n", "".join(f"  - vs{i}\n" for i in range(65))))
    assert _problems(path) == [f"{path}:6: vservers: at most 64 entries, got 65"]


def test_code_execution_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "p.yaml"
    path.write_text(_sub("username: nsroot", f"username: !!python/object/apply:os.system ['touch {marker}']"))
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:3: appliance.username: unsupported YAML tag")
    assert not marker.exists()


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    (case,) = [c for c in CORPUS if c[0] == "billion-laughs"]
    path = _write(tmp_path, case)
    (problem,) = _problems(path)
    assert re.match(
        rf"{re.escape(str(path))}:\d+: more than 100000 YAML nodes after expanding aliases", problem
    )


def test_many_keys_file_is_refused_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BASE + "renewal:\n" + "".join(f"  k{i}: 1\n" for i in range(1001)))
    problems = _problems(path)
    assert problems[0] == f"{path}:14: renewal: more than 1000 entries"
