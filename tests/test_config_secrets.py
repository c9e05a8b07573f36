"""${file:PATH} secrets, the literal-secret warning, and the proxy: key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from citrix_connector.config import ProxySetting, Severity, load_profile, load_scm_config
from citrix_connector.errors import ConfigError

POSIX = os.name == "posix"
SCM = """\
url: https://cert-manager.com/api
customer_uri: acme
username: api-user
password: {password}
"""
PROFILE = """\
appliance:
  url: https://adc.example.com
  username: nsroot
  password: {password}
{extra}vservers: [vs1]
certificate: {{common_name: www.example.com}}
sectigo: {{org_id: 1, cert_type: 2, term: 365}}
"""


def private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def problems(path: Path, loader=load_scm_config, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader(path, env=env or {})
    return info.value.problems


# ---------------------------------------------------------------------------------- ${file:PATH}


def test_file_secret_is_read_relative_to_the_config_and_redacted(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    private(secrets / "scm", "s3cret-from-file\n")
    path = private(tmp_path / "scm.yaml", SCM.format(password="${file:secrets/scm}"))
    config = load_scm_config(path, env={})
    assert config.password is not None and config.password.reveal() == "s3cret-from-file"
    assert "s3cret-from-file" not in repr(config) and "s3cret-from-file" not in str(config)
    assert config.warnings == ()


def test_file_secret_absolute_path_and_mixed_with_env(tmp_path: Path) -> None:
    secret = private(tmp_path / "pw", "part2")
    path = private(
        tmp_path / "p.yaml", PROFILE.format(password="${PRE}-${file:" + str(secret) + "}", extra="")
    )
    profile = load_profile(path, env={"PRE": "part1"})
    assert profile.appliance.password.reveal() == "part1-part2"


def test_missing_secret_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = private(tmp_path / "scm.yaml", SCM.format(password="${file:nope.txt}"))
    assert problems(path) == [f"{path}:4: password: secret file not found: {tmp_path / 'nope.txt'}"]


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    private(tmp_path / "empty", "\n")
    path = private(tmp_path / "scm.yaml", SCM.format(password="${file:empty}"))
    assert problems(path) == [f"{path}:4: password: secret file {tmp_path / 'empty'} is empty"]


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-readable")
    secret.chmod(mode)
    path = private(tmp_path / "scm.yaml", SCM.format(password="${file:pw}"))
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:4: password: secret file {secret} is readable by group or others")
    assert f"{mode:04o}" in problem and "chmod 600" in problem
    assert "s3cret-readable" not in problem


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    for mode in (0o600, 0o400):
        secret = tmp_path / f"pw{mode:o}"
        secret.write_text("ok")
        secret.chmod(mode)
        path = private(tmp_path / "scm.yaml", SCM.format(password=f"${{file:{secret.name}}}"))
        assert load_scm_config(path, env={}).password is not None


def test_secret_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    path = private(tmp_path / "scm.yaml", SCM.format(password="${file:dir}"))
    assert problems(path) == [f"{path}:4: password: secret file {tmp_path / 'dir'} is not a regular file"]


def test_literal_file_reference_with_double_dollar(tmp_path: Path) -> None:
    path = private(tmp_path / "scm.yaml", SCM.format(password="'$${file:x}'"))
    assert load_scm_config(path, env={}).password.reveal() == "${file:x}"  # type: ignore[union-attr]


# -------------------------------------------------------------------------- literal-secret warning


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_literal_secret_in_a_readable_file_is_a_typed_warning(tmp_path: Path) -> None:
    path = tmp_path / "scm.yaml"
    path.write_text(SCM.format(password="hunter2-literal"))
    path.chmod(0o644)
    config = load_scm_config(path, env={})
    (warning,) = config.warnings
    assert warning.severity is Severity.WARNING  # type: ignore[attr-defined]
    assert (warning.file, warning.line, warning.field) == (str(path), 4, "password")  # type: ignore[attr-defined]
    assert "readable by group or others (mode 0644)" in str(warning) and "hunter2" not in str(warning)
    path.chmod(0o600)
    assert load_scm_config(path, env={}).warnings == ()
    path.chmod(0o644)
    path.write_text(SCM.format(password="${P}"))
    assert load_scm_config(path, env={"P": "x"}).warnings == ()  # a reference is not a literal


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_literal_profile_password_warning_goes_to_validate_output(
    tmp_path: Path, cli, state_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./scm.yaml
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.format(password="hunter2-literal", extra=""))
    path.chmod(0o640)
    result = cli("validate", path)
    assert result.code == 0, result.output
    assert f"warning: {path}:4: appliance.password: a secret written in clear" in result.err
    assert "hunter2" not in result.output


# ------------------------------------------------------------------------------------- proxy key


def test_scm_proxy_url_with_credentials(tmp_path: Path) -> None:
    text = SCM.format(password="${P}") + "proxy: http://svc:${PROXY_PASSWORD}@proxy.example.com:3128\n"
    path = private(tmp_path / "scm.yaml", text)
    config = load_scm_config(path, env={"P": "x", "PROXY_PASSWORD": "pr0xy-pw"})
    assert isinstance(config.proxy, ProxySetting)
    assert not config.proxy.disabled
    assert config.proxy.url is not None
    assert config.proxy.url.reveal() == "http://svc:pr0xy-pw@proxy.example.com:3128"
    assert config.proxy.redacted == "http://svc:***@proxy.example.com:3128"
    assert "pr0xy-pw" not in repr(config) and "pr0xy-pw" not in repr(config.proxy)


def test_proxy_none_and_absent(tmp_path: Path) -> None:
    path = private(tmp_path / "scm.yaml", SCM.format(password="${P}") + "proxy: none\n")
    config = load_scm_config(path, env={"P": "x"})
    assert config.proxy == ProxySetting(disabled=True) and config.proxy.url is None
    path = private(tmp_path / "scm.yaml", SCM.format(password="${P}"))
    assert load_scm_config(path, env={"P": "x"}).proxy is None


def test_appliance_proxy(tmp_path: Path) -> None:
    path = private(
        tmp_path / "p.yaml",
        PROFILE.format(password="${P}", extra="").replace(
            "  password: ${P}\n", "  password: ${P}\n  proxy: https://proxy.example.com:8443\n"
        ),
    )
    profile = load_profile(path, env={"P": "x"})
    assert profile.appliance.proxy is not None
    assert profile.appliance.proxy.url is not None
    assert profile.appliance.proxy.url.reveal() == "https://proxy.example.com:8443"
    path.write_text(path.read_text().replace("https://proxy.example.com:8443", "NONE"))
    assert load_profile(path, env={"P": "x"}).appliance.proxy == ProxySetting(disabled=True)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("ftp://u:Hunter2pw@proxy.example.com", "http:// or https://"),
        ("socks5://u:Hunter2pw@proxy.example.com:1080", "http:// or https://"),
        ("http://u:Hunter2pw@proxy.example.com:99999", "port"),
        ("http://u:Hunter2pw@proxy.example.com/path", "no path"),
        ("http://u:Hunter2pw@", "no host"),
        ("'http://u:Hunter2 pw@proxy.example.com'", "whitespace"),
        ("3128", "expected a string"),
    ],
)
def test_bad_proxy_is_a_config_error_that_never_echoes_credentials(
    tmp_path: Path, value: str, needle: str
) -> None:
    path = private(tmp_path / "scm.yaml", SCM.format(password="${P}") + f"proxy: {value}\n")
    (problem,) = problems(path, env={"P": "x"})
    assert problem.startswith(f"{path}:5: proxy: ")
    assert needle in problem
    assert "Hunter2" not in problem
