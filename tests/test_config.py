"""Tests for citrix_connector.config: scm.yaml and profile loading, validation and messages."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from citrix_connector.config import (
    ApplianceConfig,
    Profile,
    ScmConfig,
    Secret,
    Severity,
    check_profile_against_scm,
    derive_certkey_name,
    expand_profile_paths,
    load_profile,
    load_scm_config,
)
from citrix_connector.crypto import KeySpec
from citrix_connector.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
ENV = {"ADC_PASSWORD": "adc-s3cret!", "SCM_PASSWORD": "scm-s3cret!", "SCM_CLIENT_SECRET": "cl-s3cret!"}

BASE_PROFILE = """\
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


def write(tmp_path: Path, text: str, name: str = "web.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def profile_with(tmp_path: Path, cert_extra: str = "", top_extra: str = "", name: str = "web.yaml") -> Path:
    text = BASE_PROFILE.replace(
        "  common_name: www.example.com\n",
        "  common_name: www.example.com\n" + textwrap.indent(textwrap.dedent(cert_extra), "  "),
    )
    return write(tmp_path, text + textwrap.dedent(top_extra), name)


def problems_of(
    path: Path, loader: Callable[..., object] = load_profile, env: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader(path, env=ENV if env is None else env)
    return info.value.problems


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# ------------------------------------------------------------------------------------ valid profiles


def test_minimal_profile_defaults(tmp_path: Path) -> None:
    path = profile_with(tmp_path)
    profile = load_profile(path, env=ENV)
    assert isinstance(profile, Profile)
    assert profile.name == "web"
    assert profile.source == path
    assert profile.appliance.urls == ("https://adc.example.com",)
    assert profile.appliance.url == "https://adc.example.com"
    assert profile.appliance.password.reveal() == "adc-s3cret!"
    assert profile.appliance.verify_tls is True
    assert profile.appliance.partition is None
    assert profile.appliance.timeout == 60.0
    assert [(v.name, v.type, v.sni) for v in profile.vservers] == [("vs_web", "lb", False)]
    cert = profile.certificate
    assert cert.common_name == "www.example.com"
    assert cert.subject_alt_names == ("www.example.com",)
    assert cert.key == KeySpec("RSA", size=2048)
    assert cert.key_location == "local"
    assert cert.certkey_name == "web"
    assert profile.renewal.days_before_expiry == 30
    assert profile.renewal.percent_of_lifetime is None
    assert profile.renewal.reuse_key is False
    assert profile.sectigo.org_id == 1 and profile.sectigo.cert_type == 2 and profile.sectigo.term == 365
    assert dict(profile.sectigo.custom_fields) == {}


def test_profiles_share_what_they_have_alike_and_copies_stay_their_own(tmp_path: Path) -> None:
    """Memory at fleet size (issue 12): the names of the fields a file gave are one shared frozen
    set per combination, and a section left out is one shared instance; copies can still change."""
    first = load_profile(profile_with(tmp_path, name="a.yaml"), env=ENV)
    second = load_profile(profile_with(tmp_path, name="b.yaml"), env=ENV)
    assert first.certificate.model_fields_set == {"common_name", "certkey_name"}
    assert first.certificate.model_fields_set is second.certificate.model_fields_set
    assert first.model_fields_set is second.model_fields_set
    assert first.certificate.subject_fields is second.certificate.subject_fields  # no subject: given
    assert first.renewal is second.renewal
    for deep in (False, True):
        changed = first.certificate.model_copy(update={"key_location": "appliance"}, deep=deep)
        assert changed.key_location == "appliance"
        assert changed.model_fields_set == {"common_name", "certkey_name", "key_location"}
    assert first.certificate.model_fields_set == {"common_name", "certkey_name"}  # shared set untouched
    with pytest.raises(TypeError):
        first.certificate.model_fields_set.add("key_location")  # shared: it refuses to change
    assert "key_location" not in first.model_dump(exclude_unset=True)["certificate"]  # a real set
    assert first.certificate.key_location == "local"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("key_type: RSA\nkey_size: 2048\n", KeySpec("RSA", size=2048)),
        ("key_type: RSA\nkey_size: 3072\n", KeySpec("RSA", size=3072)),
        ("key_type: rsa\nkey_size: 4096\n", KeySpec("RSA", size=4096)),
        ("key_type: ECDSA\ncurve: P-256\n", KeySpec("ECDSA", curve="P-256")),
        ("key_type: ECDSA\ncurve: P-384\n", KeySpec("ECDSA", curve="P-384")),
        ("key_type: ECDSA\n", KeySpec("ECDSA", curve="P-256")),
    ],
)
def test_all_key_types(tmp_path: Path, extra: str, expected: KeySpec) -> None:
    profile = load_profile(profile_with(tmp_path, extra), env=ENV)
    assert profile.certificate.key == expected


def test_full_profile_all_vserver_types_ha_partition_appliance_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        name: shop_prod
        appliance:
          url: [https://adc1.example.com/, "https://adc2.example.com:8443"]
          username: nsroot
          password: "${ADC_PASSWORD}"
          partition: part_web
          timeout: 15
          verify_tls: false
        vservers:
          - plain_lb
          - {name: vs_lb, type: loadbalancing}
          - {name: vs_cs, type: contentswitching, sni: true}
          - {name: vs_cs2, type: content_switching}
          - {name: vs_cs3, type: cs}
          - {name: vs_gw, type: gateway}
          - {name: vs_vpn, type: VPN, sni: false}
          - {name: vs_aaa, type: aaa}
          - {name: vs_auth, type: authentication, sni: true}
        certificate:
          common_name: shop.example.com
          subject_alt_names:
            [SHOP.example.com, "*.shop.example.com", 192.0.2.10, "2001:db8::1", shop.example.com]
          key_type: ECDSA
          curve: P-384
          key_location: appliance
          subject: {organization: Example, state: Bavaria, country: de, locality: Munich,
                    organizational_unit: Web, email: pki@example.com}
          certkey_name: shop-2025
        sectigo:
          org_id: 7
          cert_type: "OV Multi-Domain"
          term: 365
          comments: hello
          external_requester: ops@example.com
          custom_fields: [{name: cost, value: "42"}, {name: team, value: web}]
          profile_id: 99
        renewal: {days_before_expiry: 20, percent_of_lifetime: 66.5, reuse_key: true}
        """,
    )
    profile = load_profile(path, env=ENV)
    assert profile.name == "shop_prod"
    assert profile.appliance.urls == ("https://adc1.example.com", "https://adc2.example.com:8443")
    assert profile.appliance.partition == "part_web"
    assert profile.appliance.timeout == 15.0
    assert profile.appliance.verify_tls is False
    assert [(v.name, v.type, v.sni) for v in profile.vservers] == [
        ("plain_lb", "lb", False),
        ("vs_lb", "lb", False),
        ("vs_cs", "cs", True),
        ("vs_cs2", "cs", False),
        ("vs_cs3", "cs", False),
        ("vs_gw", "vpn", False),
        ("vs_vpn", "vpn", False),
        ("vs_aaa", "authentication", False),
        ("vs_auth", "authentication", True),
    ]
    cert = profile.certificate
    assert cert.subject_alt_names == ("shop.example.com", "*.shop.example.com", "192.0.2.10", "2001:db8::1")
    assert cert.key == KeySpec("ECDSA", curve="P-384")
    assert cert.key_location == "appliance"
    assert cert.subject.country == "DE"
    assert cert.subject.organization == "Example"
    assert cert.certkey_name == "shop-2025"
    assert profile.sectigo.cert_type == "OV Multi-Domain"
    assert dict(profile.sectigo.custom_fields) == {"cost": "42", "team": "web"}
    assert profile.sectigo.profile_id == 99
    assert profile.renewal.days_before_expiry == 20
    assert profile.renewal.percent_of_lifetime == 66.5
    assert profile.renewal.reuse_key is True


def test_custom_fields_as_mapping_and_ca_bundle_path(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("dummy")
    path = write(
        tmp_path,
        BASE_PROFILE.replace("  username: nsroot\n", "  username: nsroot\n  verify_tls: ca.pem\n")
        + "  custom_fields: {Cost Center: '4711'}\n",
    )
    profile = load_profile(path, env=ENV)
    assert profile.appliance.verify_tls == tmp_path / "ca.pem"
    assert dict(profile.sectigo.custom_fields) == {"Cost Center": "4711"}


def test_norway_is_not_false(tmp_path: Path) -> None:
    path = profile_with(tmp_path, "subject: {country: NO}\n")
    assert load_profile(path, env=ENV).certificate.subject.country == "NO"


def test_http_needs_allow_http(tmp_path: Path) -> None:
    text = BASE_PROFILE.replace("https://adc.example.com/", "http://adc.example.com")
    path = write(tmp_path, text)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:2: appliance.url: ")
    assert "allow_http" in problem
    path = write(tmp_path, text.replace("  username:", "  allow_http: true\n  username:"))
    assert load_profile(path, env=ENV).appliance.url == "http://adc.example.com"


# ----------------------------------------------------------------------------------- certkey names


def test_derive_certkey_name() -> None:
    assert derive_certkey_name("web") == "web"
    long_name = "a-very-long-profile-name-for-the-shop-backend"
    derived = derive_certkey_name(long_name)
    assert len(derived) == 31
    assert re.fullmatch(r"a-very-long-profile-name-[0-9a-f]{6}", derived)
    assert derive_certkey_name(long_name + "x") != derived
    assert derive_certkey_name("-odd name") == "c-odd-name"


def test_long_profile_name_gives_short_certkey(tmp_path: Path) -> None:
    path = profile_with(tmp_path, name="www-example-com-production-frontend.yaml")
    cert = load_profile(path, env=ENV).certificate
    assert len(cert.certkey_name) <= 31
    assert cert.certkey_name == derive_certkey_name("www-example-com-production-frontend")


def test_invalid_certkey_name(tmp_path: Path) -> None:
    path = profile_with(tmp_path, "certkey_name: this-name-is-way-too-long-for-netscaler\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, 'certkey_name')}: certificate.certkey_name: ")
    path = profile_with(tmp_path, "certkey_name: 'bad name'\n")
    assert "certificate.certkey_name" in problems_of(path)[0]


# --------------------------------------------------------------------------------- invalid profiles


@pytest.mark.parametrize(
    ("extra", "field", "needle"),
    [
        ("key_type: RSA\nkey_size: 1024\n", "key_size", "key_size"),
        ("key_type: RSA\nkey_size: 8192\n", "key_size", "key_size"),
        ("key_type: ECDSA\ncurve: P-521\n", "curve", "curve"),
        ("key_type: Ed25519\n", "key_type", "key_type"),
        ("key_type: RSAA\nkey_size: 2048\n", "key_type", "key_type"),
        ("key_type: RSA\ncurve: P-256\n", "curve", "curve"),
        ("key_type: ECDSA\nkey_size: 521\n", "key_size", "key_size"),
        ("key_type: RSA\nkey_size: '2048'\n", "key_size", "key_size"),
    ],
)
def test_invalid_key_types(tmp_path: Path, extra: str, field: str, needle: str) -> None:
    path = profile_with(tmp_path, extra)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, needle + ':')}: certificate.{field}: "), problem


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE + "renewal:\n  days_before_expiri: 10\n")
    (problem,) = problems_of(path)
    assert problem == (
        f"{path}:{line_of(path, 'days_before_expiri')}: renewal.days_before_expiri: "
        "unknown key; did you mean 'days_before_expiry'?"
    )
    path = write(tmp_path, BASE_PROFILE + "vserver: [x]\n")
    (problem,) = problems_of(path)
    assert "vserver: unknown key; did you mean 'vservers'?" in problem


def test_missing_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        appliance:
          url: https://adc.example.com
          password: x
        certificate:
          key_type: RSA
        """,
    )
    problems = problems_of(path)
    assert f"{path}:2: appliance.username: required field is missing" in problems
    assert f"{path}:5: certificate.common_name: required field is missing" in problems
    assert any(p.startswith(f"{path}:1: vservers: required field is missing") for p in problems)
    assert len(problems) == 3


def test_all_problems_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        appliance:
          url: ftp://adc.example.com
          username: nsroot
          password: ${ADC_PASSWORD}
          timeout: fast
        vservers:
          - {name: a, type: gatway}
          - {name: a}
        certificate:
          common_name: bad_host.example.com
          subject_alt_names: ["*.*.example.com", "ünïcode.example.com"]
          key_type: RSA
          key_size: 1024
          key_location: appliance
        renewal:
          days_before_expiry: 0
          percent_of_lifetime: 100
          reuse_key: "yes"
        """,
    )
    problems = problems_of(path)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    fields = [p.split(": ")[1] for p in problems]
    for expected in (
        "appliance.url",
        "appliance.timeout",
        "vservers[0].type",
        "vservers[1].name",
        "certificate.common_name",
        "certificate.subject_alt_names[0]",
        "certificate.subject_alt_names[1]",
        "certificate.key_size",
        "renewal.days_before_expiry",
        "renewal.percent_of_lifetime",
        "renewal.reuse_key",
    ):
        assert expected in fields, (expected, problems)
    assert "did you mean 'vpn'?" in next(p for p in problems if "vservers[0].type" in p)
    assert "duplicate vserver 'a'" in next(p for p in problems if "vservers[1].name" in p)


def test_bool_fields_reject_yes_no(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE.replace("  - vs_web\n", "  - {name: vs_web, sni: yes}\n"))
    (problem,) = problems_of(path)
    assert problem == f"{path}:6: vservers[0].sni: expected true or false, got string 'yes'"


def test_int_vs_string_types(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE.replace("org_id: 1", "org_id: '1'").replace("term: 365", "term: 1.5"))
    problems = problems_of(path)
    assert any("sectigo.org_id: expected an integer, got string '1'" in p for p in problems)
    assert any("sectigo.term: expected an integer, got number" in p for p in problems)
    path = write(tmp_path, BASE_PROFILE.replace("username: nsroot", "username: 12345"))
    (problem,) = problems_of(path)
    assert "appliance.username: expected a string, got integer" in problem and "quotes" in problem


def test_empty_vservers_and_duplicate_keys(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE.replace("  - vs_web\n", "  []\n").replace("vservers:\n", "vservers:"))
    text = path.read_text().replace("vservers:  []", "vservers: []")
    path.write_text(text)
    (problem,) = problems_of(path)
    assert "vservers: at least one vserver is required" in problem
    path = write(tmp_path, BASE_PROFILE + "name: a\nname: b\n")
    (problem,) = problems_of(path)
    assert f"{path}:14: name: duplicate key (first given on line 13)" == problem


def test_malformed_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "appliance:\n  url: https://x\n  username: [unclosed\nvservers: []\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path, env=ENV)
    (problem,) = info.value.problems
    assert re.match(rf"{re.escape(str(path))}:[34]: invalid YAML: ", problem), problem

    path = write(tmp_path, "appliance:\n\turl: x\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:2: invalid YAML")


def test_missing_and_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems_of(missing) == [f"{missing}: no such file"]
    assert problems_of(missing, load_scm_config) == [f"{missing}: no such file"]
    empty = write(tmp_path, "")
    assert problems_of(empty) == [f"{empty}:1: the file is empty"]
    top_list = write(tmp_path, "- a\n- b\n")
    assert "expected a mapping" in problems_of(top_list)[0]


def test_unsafe_tags_are_rejected(tmp_path: Path) -> None:
    unsafe = "username: !!python/object/apply:os.getcwd []"
    path = write(tmp_path, BASE_PROFILE.replace("username: nsroot", unsafe))
    problems = problems_of(path)
    assert any("appliance.username" in p for p in problems)


def test_profile_name_rules(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE + "name: 'has space'\n")
    assert "name: invalid profile name" in problems_of(path)[0]
    path = profile_with(tmp_path, name="bad name.yaml")
    (problem,) = problems_of(path)
    assert "set 'name:'" in problem
    path = write(tmp_path, BASE_PROFILE + f"name: {'x' * 64}\n")
    assert "longer than 63" in problems_of(path)[0]


# ------------------------------------------------------------------------------------- environment


def test_env_substitution(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE_PROFILE.replace("username: nsroot", "username: ${ADC_USER}-bot")
        + "  comments: 'cost $${NOT_A_VAR} for ${TEAM}'\n",
    )
    env = {**ENV, "ADC_USER": "svc", "TEAM": "web"}
    profile = load_profile(path, env=env)
    assert profile.appliance.username == "svc-bot"
    assert profile.sectigo.comments == "cost ${NOT_A_VAR} for web"


def test_env_default_is_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADC_PASSWORD", "from-os")
    assert load_profile(profile_with(tmp_path)).appliance.password.reveal() == "from-os"


def test_missing_env_var(tmp_path: Path) -> None:
    path = profile_with(tmp_path)
    (problem,) = problems_of(path, env={})
    assert problem == f"{path}:4: appliance.password: environment variable ADC_PASSWORD is not set"


def test_malformed_env_reference(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE.replace("username: nsroot", "username: '${bad-name}'"))
    (problem,) = problems_of(path)
    assert "appliance.username: malformed" in problem


# ------------------------------------------------------------------------------------------ secrets


def test_secret_behaviour() -> None:
    secret = Secret("hunter2")
    assert repr(secret) == "***" and str(secret) == "***" and f"{secret}" == "***"
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2") and secret != Secret("other")
    assert bool(secret) and not bool(Secret(""))
    assert hash(secret) == hash(Secret("hunter2"))


def test_secrets_never_in_repr_or_str(tmp_path: Path) -> None:
    profile = load_profile(profile_with(tmp_path), env=ENV)
    for text in (repr(profile), str(profile), repr(profile.appliance), str(profile.appliance)):
        assert "adc-s3cret!" not in text
    assert "***" in repr(profile.appliance)
    scm = write(
        tmp_path,
        "url: https://scm.example.com/api\ncustomer_uri: c\nusername: u\npassword: ${SCM_PASSWORD}\n",
        "scm.yaml",
    )
    config = load_scm_config(scm, env=ENV)
    assert "scm-s3cret!" not in repr(config) and "scm-s3cret!" not in str(config)
    oauth = write(
        tmp_path,
        "url: https://scm.example.com\nclient_id: id\nclient_secret: ${SCM_CLIENT_SECRET}\n",
        "o.yaml",
    )
    config = load_scm_config(oauth, env=ENV)
    assert "cl-s3cret!" not in repr(config)


def test_secret_value_not_echoed_in_type_error(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_PROFILE.replace("password: ${ADC_PASSWORD}", "password: 98765432"))
    (problem,) = problems_of(path)
    assert "appliance.password" in problem and "98765432" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "http://api-user:Hunter2-s3cret@cert-manager.com/api",  # http refused
        "ftp://api-user:Hunter2-s3cret@cert-manager.com/api",  # not https
        "https://api-user:Hunter2-s3cret@cert-manager.com/api?x=1",  # query
        "'https://api-user:Hunter2 s3cret@cert-manager.com/api'",  # whitespace
    ],
)
def test_password_in_url_not_echoed(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f"url: {url}\ncustomer_uri: c\nusername: u\npassword: p\n", "scm.yaml")
    problems = problems_of(path, load_scm_config)
    assert any("url" in p for p in problems), problems
    assert not any("Hunter2" in p for p in problems), problems


def test_malformed_url_is_a_config_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "url: 'https://[scm.example.com/api'\ncustomer_uri: c\nusername: u\npassword: p\n")
    (problem,) = problems_of(path, load_scm_config)
    assert problem.startswith(f"{path}:1: url: not a valid URL")


# ----------------------------------------------------------------------------------------- scm.yaml


def scm_file(tmp_path: Path, text: str) -> Path:
    return write(tmp_path, text, "scm.yaml")


def test_scm_password(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        """\
        url: https://cert-manager.com/api/
        customer_uri: acme
        username: api-user
        password: ${SCM_PASSWORD}
        timeout: 12
        poll: {first_wait: 0, interval: 2.5, timeout: 60}
        """,
    )
    config = load_scm_config(path, env=ENV)
    assert isinstance(config, ScmConfig)
    assert (config.api, config.auth) == ("admin", "password")
    assert config.url == "https://cert-manager.com/api"
    assert config.customer_uri == "acme" and config.username == "api-user"
    assert config.password is not None and config.password.reveal() == "scm-s3cret!"
    assert config.timeout == 12.0
    assert (config.poll.first_wait, config.poll.interval, config.poll.timeout) == (0.0, 2.5, 60.0)
    assert config.verify_tls is True and config.source == path


def test_scm_password_missing_fields(tmp_path: Path) -> None:
    path = scm_file(tmp_path, "url: https://cert-manager.com/api\nusername: u\n")
    problems = problems_of(path, load_scm_config)
    assert any("customer_uri: required field is missing" in p for p in problems)
    assert any("password: required field is missing" in p for p in problems)


def test_scm_client_cert_inferred(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    path = scm_file(
        tmp_path,
        "url: https://cert-manager.com/private/api\ncustomer_uri: acme\nusername: u\n"
        "client_cert: c.pem\nclient_key: k.pem\nverify_tls: c.pem\n",
    )
    config = load_scm_config(path, env=ENV)
    assert (config.api, config.auth) == ("admin", "client_cert")
    assert config.client_cert == tmp_path / "c.pem" and config.client_key == tmp_path / "k.pem"
    assert config.password is None
    assert config.verify_tls == tmp_path / "c.pem"


def test_scm_client_cert_missing_file(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        "url: https://x.example/api\ncustomer_uri: a\nusername: u\n"
        "auth: client_cert\nclient_cert: nope.pem\n",
    )
    (problem,) = problems_of(path, load_scm_config)
    assert problem.startswith(f"{path}:5: client_cert: file not found")


def test_scm_oauth_explicit(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        "url: https://admin.enterprise.sectigo.com/api\nauth: oauth\nclient_id: cid\n"
        "client_secret: ${SCM_CLIENT_SECRET}\ntoken_url: https://auth.example.com/token\n",
    )
    config = load_scm_config(path, env=ENV)
    assert (config.api, config.auth) == ("admin", "oauth")
    assert config.client_id == "cid" and config.client_secret == Secret("cl-s3cret!")
    assert config.token_url == "https://auth.example.com/token"
    assert config.customer_uri is None


def test_scm_enrollment_inferred(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        "url: https://acme.enroll.enterprise.sectigo.com\nclient_id: cid\n"
        "client_secret: ${SCM_CLIENT_SECRET}\nprofile_id: 42\n",
    )
    config = load_scm_config(path, env=ENV)
    assert (config.api, config.auth) == ("enrollment", "oauth")
    assert config.profile_id == 42


def test_scm_enrollment_rejects_admin_keys(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        "api: enrollment\nurl: https://e.example.com\nclient_id: cid\nclient_secret: s\npassword: p\n",
    )
    (problem,) = problems_of(path, load_scm_config)
    assert problem.startswith(f"{path}:5: password: not used with api: enrollment")


def test_scm_enrollment_requires_client_secret(tmp_path: Path) -> None:
    path = scm_file(tmp_path, "api: enrollment\nurl: https://e.example.com\nclient_id: cid\n")
    (problem,) = problems_of(path, load_scm_config)
    assert "client_secret: required field is missing" in problem


def test_scm_bad_values(tmp_path: Path) -> None:
    path = scm_file(
        tmp_path,
        "api: admn\nurl: cert-manager.com\ncustomer_uri: a\nusername: u\npassword: p\n"
        "verify_tls: 'no'\ntimeout: -1\npoll: {intervall: 3}\n",
    )
    problems = problems_of(path, load_scm_config)
    joined = "\n".join(problems)
    assert f"{path}:1: api: must be one of admin, enrollment, got 'admn'; did you mean 'admin'?" in problems
    assert f"{path}:2: url: must be an https:// URL" in joined
    assert f"{path}:6: verify_tls: file not found" in joined
    assert f"{path}:7: timeout: must be greater than 0" in joined
    assert f"{path}:8: poll.intervall: unknown key; did you mean 'interval'?" in problems


# ------------------------------------------------------------------------------- shipped examples


def test_shipped_example_profile_loads() -> None:
    profile = load_profile(REPO / "example_cert_config.yaml", env=ENV)
    assert profile.appliance.password.reveal() == ENV["ADC_PASSWORD"]
    assert len(profile.vservers) >= 1


def _schema_keys(schema: dict[str, object]) -> set[str]:
    """Every property name anywhere in a JSON Schema."""
    keys: set[str] = set()
    todo: list[object] = [schema]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            props = item.get("properties")
            if isinstance(props, dict):
                keys.update(props)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return keys


def test_shipped_example_documents_every_profile_key() -> None:
    text = (REPO / "example_cert_config.yaml").read_text()
    keys = _schema_keys(Profile.model_json_schema(mode="validation"))
    assert {"appliance", "allow_http", "certkey_name", "days_before_expiry", "sni", "email"} <= keys
    for key in sorted(keys):
        assert re.search(rf"(^|\s|#\s*|-\s*|\{{){key}:", text, re.M) or f"{key}:" in text, key


def _scm_alternatives() -> list[str]:
    """The commented alternative blocks of scm.yaml, uncommented."""
    text = (REPO / "scm.yaml").read_text()
    blocks = re.split(r"^# --- Alternative: .*$", text, flags=re.M)[1:]
    result = []
    for block in blocks:
        lines = [line[2:] for line in block.splitlines() if re.match(r"^# [a-z_]+:", line)]
        result.append("\n".join(lines) + "\n")
    return result


def test_shipped_scm_yaml_and_its_alternatives_load(tmp_path: Path) -> None:
    main = load_scm_config(REPO / "scm.yaml", env=ENV)
    assert (main.api, main.auth) == ("admin", "password")
    alternatives = _scm_alternatives()
    assert len(alternatives) == 3
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "api-certbot.crt.pem").write_text("c")
    (tmp_path / "certs" / "api-certbot.key.pem").write_text("k")
    kinds = []
    for i, text in enumerate(alternatives):
        path = tmp_path / f"scm{i}.yaml"
        path.write_text(text)
        config = load_scm_config(path, env=ENV)
        kinds.append((config.api, config.auth))
    assert kinds == [("admin", "client_cert"), ("admin", "oauth"), ("enrollment", "oauth")]


# ---------------------------------------------------------------------------------- cross-file checks


def _scm(tmp_path: Path, text: str) -> ScmConfig:
    return load_scm_config(scm_file(tmp_path, text), env=ENV)


def test_check_profile_against_admin_scm(tmp_path: Path) -> None:
    scm = _scm(tmp_path, "url: https://x.example/api\ncustomer_uri: a\nusername: u\npassword: p\n")
    good = load_profile(profile_with(tmp_path), env=ENV)
    assert check_profile_against_scm(good, scm) == []
    text = BASE_PROFILE.replace("  cert_type: 2\n  term: 365\n", "")
    bad = load_profile(write(tmp_path, text, "bad.yaml"), env=ENV)
    problems = check_profile_against_scm(bad, scm)
    assert len(problems) == 2
    assert all(p.severity is Severity.ERROR for p in problems)
    assert str(problems[0]).startswith(f"{bad.source}:9: sectigo.cert_type: required with api: admin")
    assert str(problems[1]).startswith(f"{bad.source}:9: sectigo.term: required")
    first = problems[0]
    assert (first.file, first.line, first.field) == (str(bad.source), 9, "sectigo.cert_type")


def test_check_profile_against_enrollment_scm(tmp_path: Path) -> None:
    scm = _scm(tmp_path, "url: https://e.example\nclient_id: c\nclient_secret: s\n")
    text = BASE_PROFILE.split("sectigo:")[0]
    profile = load_profile(write(tmp_path, text, "p.yaml"), env=ENV)
    problems = check_profile_against_scm(profile, scm)
    assert len(problems) == 1
    assert problems[0].severity is Severity.WARNING and problems[0].field == "sectigo.profile_id"
    scm2 = _scm(tmp_path, "url: https://e.example\nclient_id: c\nclient_secret: s\nprofile_id: 3\n")
    assert check_profile_against_scm(profile, scm2) == []
    # admin-only fields are not errors with the enrollment API
    with_admin_fields = load_profile(profile_with(tmp_path), env=ENV)
    warnings = check_profile_against_scm(with_admin_fields, scm2)
    assert warnings and all(p.severity is Severity.WARNING for p in warnings)


# ---------------------------------------------------------------------------------- profile paths


def test_expand_profile_paths(tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    for name in ("b.yaml", "a.yml", "scm.yaml", "scm-prod.yml", "notes.txt", "c.YAML"):
        (d / name).write_text("x")
    (d / "sub").mkdir()
    (d / "sub" / "deep.yaml").write_text("x")
    single = tmp_path / "scm-like-but-explicit.yaml"
    single.write_text("x")
    result = expand_profile_paths([d, single])
    assert [p.name for p in result] == ["a.yml", "b.yaml", "c.YAML", "scm-like-but-explicit.yaml"]
    assert expand_profile_paths([d / "scm.yaml"]) == [d / "scm.yaml"]  # explicit files are taken as given
    assert expand_profile_paths([d / "b.yaml", d]) == [d / "b.yaml", d / "a.yml", d / "c.YAML"]


def test_expand_profile_paths_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        expand_profile_paths([tmp_path / "gone.yaml", tmp_path / "gone-dir"])
    assert len(info.value.problems) == 2
    assert str(tmp_path / "gone.yaml") in info.value.problems[0]


def test_dataclasses_are_frozen(tmp_path: Path) -> None:
    profile = load_profile(profile_with(tmp_path), env=ENV)
    with pytest.raises(ValidationError, match="frozen"):
        profile.name = "x"
    assert isinstance(profile.appliance, ApplianceConfig)
    with pytest.raises(TypeError):
        profile.sectigo.custom_fields["x"] = "y"  # type: ignore[index]
    # hashable, so profiles can be dict keys / set members
    assert hash(profile) == hash(load_profile(profile.source, env=ENV))


def test_misspelt_required_key_is_one_problem_not_two(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "appliance: {url: https://a.example, username: u, password: p}\n"
        "vservers: [vs1]\n"
        "certificate:\n"
        "  comon_name: www.example.com\n"
        "sectigo: {org_id: 1, cert_type: 2, term: 365}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.problems == [
        f"{path}:4: certificate.comon_name: unknown key; did you mean 'common_name'?"
    ]
