"""The simulated NetScaler, driven with plain ``requests`` over HTTPS (no agent code)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.netscaler import NetScalerSimulator

USER, PASSWORD = "nsroot", "sandbox-nsroot"

# ------------------------------------------------------------------------------------------ test PKI


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Any, password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    data: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    return data


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_cert(
    key: Any,
    *,
    cn: str | None = "www.example.com",
    sans: Sequence[str] = (),
    issuer: tuple[x509.Certificate, Any] | None = None,
    ca: bool = False,
    not_before: datetime | None = None,
    days: int = 90,
    subject_extra: Sequence[x509.NameAttribute[Any]] = (),
) -> x509.Certificate:
    attrs = list(subject_extra) + ([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    subject = x509.Name(attrs)
    start = not_before or datetime.now(timezone.utc) - timedelta(days=1)
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


class Pki:
    """Root -> intermediate; leaves on demand."""

    def __init__(self, name: str = "Test") -> None:
        self.root_key = ec_key()
        org = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
        self.root = make_cert(self.root_key, cn=f"{name} Root", ca=True, days=3650, subject_extra=org)
        self.ic_key = ec_key()
        self.ic = make_cert(
            self.ic_key,
            cn=f"{name} Issuing CA",
            ca=True,
            days=3650,
            issuer=(self.root, self.root_key),
            subject_extra=org,
        )

    def leaf(
        self, cn: str | None = "www.example.com", sans: Sequence[str] = (), key: Any = None, **kw: Any
    ) -> tuple[x509.Certificate, Any]:
        key = key or ec_key()
        return make_cert(key, cn=cn, sans=sans, issuer=(self.ic, self.ic_key), **kw), key


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tls_material() -> tuple[bytes, bytes, bytes]:
    ca = LocalCA.create("NS Sim Test")
    cert, key = ca.issue_tls_server_cert()
    return cert, key, ca.bundle_pem()


@pytest.fixture(scope="module")
def bundle(tls_material: tuple[bytes, bytes, bytes], tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("nsbundle") / "ca.pem"
    path.write_bytes(tls_material[2])
    return str(path)


@pytest.fixture
def sim(tls_material: tuple[bytes, bytes, bytes]) -> Iterator[NetScalerSimulator]:
    server = NetScalerSimulator(tls_material[0], tls_material[1])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


class Nitro:
    """A deliberately dumb NITRO caller: every call spelled out, no retries."""

    def __init__(self, sim: NetScalerSimulator, verify: str) -> None:
        self.sim = sim
        self.verify = verify
        self.http = requests.Session()
        self.headers: dict[str, str] = {}

    def call(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        query: str = "",
        body: Any = None,
        headers: dict[str, str] | None = None,
        api: str = "config",
    ) -> requests.Response:
        url = f"{self.sim.url}/nitro/v1/{api}/{resource}"
        if name is not None:
            url += "/" + quote(quote(name, safe=""), safe="")
        if query:
            url += "?" + query
        hdrs = {**self.headers, **(headers or {})}
        return self.http.request(method, url, json=body, headers=hdrs, verify=self.verify, timeout=30)

    def login(self, user: str = USER, password: str = PASSWORD) -> requests.Response:
        return self.call("POST", "login", body={"login": {"username": user, "password": password}})

    def upload(self, filename: str, data: bytes, location: str = "/nsconfig/ssl") -> requests.Response:
        content = base64.b64encode(data).decode()
        return self.call(
            "POST",
            "systemfile",
            body={
                "systemfile": {
                    "filename": filename,
                    "filelocation": location,
                    "filecontent": content,
                    "fileencoding": "BASE64",
                }
            },
        )

    def add(self, certkey: str, cert: str, key: str | None = None, **extra: Any) -> requests.Response:
        obj: dict[str, Any] = {"certkey": certkey, "cert": cert, **extra}
        if key is not None:
            obj["key"] = key
        return self.call("POST", "sslcertkey", body={"sslcertkey": obj})

    def install(
        self, certkey: str, cert: x509.Certificate, key: Any = None, **extra: Any
    ) -> requests.Response:
        """Upload cert (+key) under fresh names and add the certkey; asserts the uploads worked."""
        assert self.upload(f"{certkey}.crt", cert_pem(cert)).status_code == 201
        key_file = None
        if key is not None:
            assert self.upload(f"{certkey}.key", key_pem(key)).status_code == 201
            key_file = f"{certkey}.key"
        return self.add(certkey, f"{certkey}.crt", key_file, **extra)

    def bind(self, vserver: str, certkey: str, **flags: Any) -> requests.Response:
        return self.call(
            "PUT",
            "sslvserver_sslcertkey_binding",
            body={"sslvserver_sslcertkey_binding": {"vservername": vserver, "certkeyname": certkey, **flags}},
        )

    def get(self, resource: str, name: str | None = None, query: str = "") -> requests.Response:
        return self.call("GET", resource, name, query=query)


@pytest.fixture
def nitro(sim: NetScalerSimulator, bundle: str) -> Nitro:
    client = Nitro(sim, bundle)
    assert client.login().status_code == 201
    return client


def err(response: requests.Response) -> tuple[int, int]:
    """(HTTP status, NITRO errorcode)."""
    return response.status_code, response.json()["errorcode"]


def items(response: requests.Response, resource: str) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["errorcode"] == 0
    return list(data.get(resource, []))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# ------------------------------------------------------------------------------------------ auth


def test_login_returns_201_sessionid_and_cookie(sim: NetScalerSimulator, bundle: str) -> None:
    client = Nitro(sim, bundle)
    r = client.login()
    assert r.status_code == 201
    body = r.json()
    assert body["errorcode"] == 0 and body["severity"] == "NONE"
    assert re.fullmatch(r"##[0-9A-F]{64}", body["sessionid"])
    assert f"NITRO_AUTH_TOKEN={body['sessionid']}" in r.headers["Set-Cookie"]
    assert "path=/nitro/v1" in r.headers["Set-Cookie"]
    # the cookie jar sends it back
    assert client.get("nsversion").status_code == 200


def test_auth_failures(sim: NetScalerSimulator, bundle: str) -> None:
    client = Nitro(sim, bundle)
    assert err(client.login(password="wrong")) == (401, 354)
    assert err(client.login(user="nobody")) == (401, 354)
    assert err(client.get("nsversion")) == (401, 1027)
    assert err(client.call("GET", "nsversion", headers={"X-NITRO-USER": USER, "X-NITRO-PASS": "x"})) == (
        401,
        354,
    )
    bad_cookie = {"Cookie": "NITRO_AUTH_TOKEN=##" + "0" * 64}
    assert err(client.call("GET", "nsversion", headers=bad_cookie)) == (401, 444)
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    assert err(client.call("GET", "nsversion", headers=basic)) == (401, 1244)
    assert err(client.call("POST", "login", body={"login": {"password": "x"}})) == (400, 1095)


def test_per_request_header_auth(sim: NetScalerSimulator, bundle: str) -> None:
    client = Nitro(sim, bundle)
    client.headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD}
    r = client.get("nsversion")
    assert r.status_code == 200
    assert r.json()["nsversion"]["version"].startswith("NetScaler NS13.1: Build 50.23.nc")


def test_session_expiry_sliding_and_killed(sim: NetScalerSimulator, bundle: str) -> None:
    clock = Clock()
    sim.clock = clock
    sim.session_timeout = 60
    client = Nitro(sim, bundle)
    assert client.login().status_code == 201
    clock.advance(50)
    assert client.get("nsconfig").status_code == 200
    clock.advance(50)  # 100 s after login, but only 50 s idle: sliding expiry keeps it alive
    assert client.get("nsconfig").status_code == 200
    clock.advance(61)
    assert err(client.get("nsconfig")) == (401, 444)
    assert client.login().status_code == 201
    assert client.get("nsconfig").status_code == 200
    sim.expire_sessions()
    assert err(client.get("nsconfig")) == (401, 444)
    assert client.login().status_code == 201
    assert client.call("POST", "logout", body={"logout": {}}).status_code == 200
    assert err(client.get("nsconfig")) == (401, 444)


def test_login_timeout_field_sets_session_timeout(sim: NetScalerSimulator, bundle: str) -> None:
    clock = Clock()
    sim.clock = clock
    client = Nitro(sim, bundle)
    r = client.call("POST", "login", body={"login": {"username": USER, "password": PASSWORD, "timeout": 10}})
    assert r.status_code == 201
    clock.advance(11)
    assert err(client.get("nsconfig")) == (401, 444)


# ------------------------------------------------------------------------------------------ nsconfig


def test_nsconfig_dirty_flag_and_save(nitro: Nitro, pki: Pki) -> None:
    cfg = nitro.get("nsconfig").json()["nsconfig"]
    assert cfg["configchanged"] is False
    assert cfg["systemtype"] == "Stand-alone"
    assert cfg["primaryip"]
    cert, _ = pki.leaf()
    assert nitro.upload("x.crt", cert_pem(cert)).status_code == 201
    assert nitro.get("nsconfig").json()["nsconfig"]["configchanged"] is False  # files are not config
    assert nitro.add("x", "x.crt").status_code == 201
    assert nitro.get("nsconfig").json()["nsconfig"]["configchanged"] is True
    nitro.sim.save_in_progress_times = 2
    save: dict[str, Any] = {"nsconfig": {}}
    assert err(nitro.call("POST", "nsconfig", query="action=save", body=save)) == (599, 293)
    assert err(nitro.call("POST", "nsconfig", query="action=save", body=save)) == (599, 293)
    r = nitro.call("POST", "nsconfig", query="action=save", body=save)
    assert r.status_code == 200 and r.json()["errorcode"] == 0
    cfg = nitro.get("nsconfig").json()["nsconfig"]
    assert cfg["configchanged"] is False and cfg["lastconfigsavetime"]
    assert nitro.sim.state()["saved"] is True


def test_reboot_loses_unsaved_config(nitro: Nitro, pki: Pki) -> None:
    cert, _ = pki.leaf()
    assert nitro.install("a", cert).status_code == 201
    assert nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}}).status_code == 200
    cert2, _ = pki.leaf("b.example.com")
    assert nitro.install("b", cert2).status_code == 201
    nitro.sim.reboot()
    assert nitro.login().status_code == 201
    assert [c["certkey"] for c in items(nitro.get("sslcertkey"), "sslcertkey")] == ["a"]


# ------------------------------------------------------------------------------------------ systemfile


def test_systemfile_roundtrip_list_delete(nitro: Nitro) -> None:
    r = nitro.upload("hello.txt", b"hello\n")
    assert r.status_code == 201
    assert err(nitro.upload("hello.txt", b"other")) == (409, 1642)
    got = items(
        nitro.get("systemfile", query="args=filename:hello.txt,filelocation:%2Fnsconfig%2Fssl"), "systemfile"
    )
    assert len(got) == 1 and base64.b64decode(got[0]["filecontent"]) == b"hello\n"
    assert got[0]["fileencoding"] == "BASE64" and got[0]["filesize"] == "6"
    listing = items(nitro.get("systemfile", query="args=filelocation:%2Fnsconfig%2Fssl"), "systemfile")
    assert [e["filename"] for e in listing] == ["hello.txt"]
    assert "filecontent" not in listing[0]
    # a trailing slash on the location is tolerated
    assert nitro.upload("b.txt", b"b", location="/nsconfig/ssl/").status_code == 201
    r = nitro.call("DELETE", "systemfile", "hello.txt", query="args=filelocation:%2Fnsconfig%2Fssl")
    assert r.status_code == 200
    assert err(
        nitro.call("DELETE", "systemfile", "hello.txt", query="args=filelocation:%2Fnsconfig%2Fssl")
    ) == (
        404,
        258,
    )
    assert err(nitro.get("systemfile", query="args=filename:hello.txt,filelocation:%2Fnsconfig%2Fssl")) == (
        404,
        258,
    )
    nitro.sim.systemfile_missing_errorcode = 3441
    assert err(nitro.get("systemfile", query="args=filename:nope,filelocation:%2Fnsconfig%2Fssl")) == (
        404,
        3441,
    )


def test_systemfile_args_url_encoded_inside_args_as_third_party_clients_send_them(
    sim: NetScalerSimulator, bundle: str
) -> None:
    """The reference: values inside ``args`` must be URL-encoded. A client that builds that text and hands
    it to its HTTP library's query encoder (requests' ``params=``, as most third-party NITRO clients do)
    sends ``filelocation%3A%252Fnsconfig%252Fssl``; one that writes it into the URL sends
    ``filelocation:%2Fnsconfig%2Fssl``. Listing, download and delete work for both."""
    http = requests.Session()
    headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD}
    base = f"{sim.url}/nitro/v1/config/systemfile"
    location = quote("/nsconfig/ssl", safe="")  # %2Fnsconfig%2Fssl, as the reference asks
    for name in ("one.crt", "a,b.crt"):  # a comma inside a value, encoded the same way
        upload = {
            "systemfile": {
                "filename": name,
                "filelocation": "/nsconfig/ssl",
                "filecontent": base64.b64encode(name.encode()).decode(),
            }
        }
        assert http.post(base, json=upload, headers=headers, verify=bundle, timeout=30).status_code == 201

    def get(**kw: Any) -> requests.Response:
        return http.get(base, headers=headers, verify=bundle, timeout=30, **kw)

    # 1. through the query encoder: the %2F travels as %252F
    listing = get(params={"args": f"filelocation:{location}"})
    assert "%252Fnsconfig%252Fssl" in str(listing.request.url)
    assert sorted(e["filename"] for e in items(listing, "systemfile")) == ["a,b.crt", "one.crt"]
    for name in ("one.crt", "a,b.crt"):
        args = f"filename:{quote(name, safe='')},filelocation:{location}"
        (entry,) = items(get(params={"args": args}), "systemfile")
        assert base64.b64decode(entry["filecontent"]) == name.encode()
        # 2. written into the URL as the reference shows it
        literal = http.get(f"{base}?args={args}", headers=headers, verify=bundle, timeout=30)
        (entry,) = items(literal, "systemfile")
        assert entry["filename"] == name and entry["filelocation"] == "/nsconfig/ssl"
    deleted = http.delete(
        f"{base}/one.crt",
        params={"args": f"filelocation:{location}"},
        headers=headers,
        verify=bundle,
        timeout=30,
    )
    assert deleted.status_code == 200, deleted.text
    deleted = http.delete(
        f"{base}/{quote(quote('a,b.crt', safe=''), safe='')}?args=filelocation:{location}",
        headers=headers,
        verify=bundle,
        timeout=30,
    )
    assert deleted.status_code == 200, deleted.text
    assert sim.get_file("/nsconfig/ssl/one.crt") is None and sim.get_file("/nsconfig/ssl/a,b.crt") is None
    assert items(get(params={"args": f"filelocation:{location}"}), "systemfile") == []


def test_systemfile_validation(nitro: Nitro) -> None:
    assert err(nitro.upload("x" * 64, b"x")) == (400, 1106)
    assert nitro.upload("x" * 63, b"x").status_code == 201
    body = {"systemfile": {"filename": "a", "filelocation": "/nsconfig/ssl", "filecontent": "!!notbase64!!"}}
    assert err(nitro.call("POST", "systemfile", body=body)) == (400, 1097)
    body = {"systemfile": {"filename": "a", "filelocation": "/nsconfig/ssl"}}
    assert err(nitro.call("POST", "systemfile", body=body)) == (400, 1095)
    body = {
        "systemfile": {
            "filename": "a",
            "filelocation": "/nsconfig/ssl",
            "filecontent": "eA==",
            "fileencoding": "HEX",
        }
    }
    assert err(nitro.call("POST", "systemfile", body=body)) == (400, 1097)
    assert err(nitro.upload("a/b", b"x")) == (400, 1097)
    assert err(nitro.get("systemfile", query="args=filename:a")) == (400, 1095)
    assert err(nitro.upload("p.txt", b"x", location="/var/partitions/p1/ssl")) == (599, 1645)


# ------------------------------------------------------------------------------------------ sslcertkey add


def test_certkey_add_and_parsed_facts(nitro: Nitro, pki: Pki, keys: dict[str, Any]) -> None:
    key = keys["RSA 2048"]
    cert = make_cert(
        key, cn="www.example.com", sans=["www.example.com", "example.com"], issuer=(pki.ic, pki.ic_key)
    )
    assert nitro.upload("www-1.crt", cert_pem(cert)).status_code == 201
    assert nitro.upload("www-1.key", key_pem(key)).status_code == 201
    r = nitro.add(
        "www", "/nsconfig/ssl/www-1.crt", "www-1.key", expirymonitor="ENABLED", notificationperiod=30
    )
    assert r.status_code == 201
    (ck,) = items(nitro.get("sslcertkey", "www"), "sslcertkey")
    assert ck["certkey"] == "www"
    assert ck["cert"] == "/nsconfig/ssl/www-1.crt" and ck["key"] == "www-1.key"  # echoed as given
    serial = format(cert.serial_number, "X")
    assert ck["serial"].lstrip("0") == serial.lstrip("0") and ck["serial"] == ck["serial"].upper()
    assert int(ck["serial"], 16) == cert.serial_number
    assert ck["subject"] == " CN=www.example.com"
    assert ck["issuer"] == " C=US,O=Test,CN=Test Issuing CA"
    pattern = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT"
    assert re.fullmatch(pattern, ck["clientcertnotbefore"]) and re.fullmatch(
        pattern, ck["clientcertnotafter"]
    )
    assert ck["daystoexpiration"] in (88, 89)
    assert ck["status"] == "Valid"
    assert ck["publickey"] == "rsaEncryption" and ck["publickeysize"] == 2048
    assert "www.example.com" in ck["sandns"] and "example.com" in ck["sandns"]
    assert ck["certificatetype"] == ["SRVR_CERT"]
    assert ck["expirymonitor"] == "ENABLED" and str(ck["notificationperiod"]) == "30"
    assert "linkcertkeyname" not in ck


def test_certkey_status_follows_the_clock(nitro: Nitro, pki: Pki) -> None:
    old, _ = pki.leaf("old.example.com", not_before=datetime.now(timezone.utc) - timedelta(days=100), days=30)
    future, _ = pki.leaf("new.example.com", not_before=datetime.now(timezone.utc) + timedelta(days=5))
    assert nitro.install("old", old).status_code == 201
    assert nitro.install("future", future).status_code == 201
    (o,) = items(nitro.get("sslcertkey", "old"), "sslcertkey")
    (f,) = items(nitro.get("sslcertkey", "future"), "sslcertkey")
    assert o["status"] == "Expired" and o["daystoexpiration"] <= 0
    assert f["status"] == "Not yet valid"
    clock = Clock()
    clock.advance(6 * 86400)
    nitro.sim.clock = clock
    assert nitro.login().status_code == 201
    (f,) = items(nitro.get("sslcertkey", "future"), "sslcertkey")
    assert f["status"] == "Valid"


def test_ca_certificates_without_key(nitro: Nitro, pki: Pki) -> None:
    assert nitro.install("Test-Root", pki.root).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    (root,) = items(nitro.get("sslcertkey", "Test-Root"), "sslcertkey")
    (ic,) = items(nitro.get("sslcertkey", "Test-IC"), "sslcertkey")
    assert root["certificatetype"] == ["ROOT_CERT"] and ic["certificatetype"] == ["INTM_CERT"]
    assert "key" not in ic


def test_certkey_name_rules(nitro: Nitro, pki: Pki) -> None:
    cert, _ = pki.leaf()
    assert nitro.upload("c.crt", cert_pem(cert)).status_code == 201
    assert err(nitro.add("bad/name", "c.crt")) == (400, 1232)
    assert err(nitro.add("-starts-with-dash", "c.crt")) == (400, 1232)
    assert err(nitro.add("a" * 32, "c.crt")) == (400, 1106)
    assert nitro.add("My cert_#.:@=-" + "x" * 17, "c.crt").status_code == 201  # 31 chars, all legal
    assert err(nitro.add("My cert_#.:@=-" + "x" * 17, "c.crt")) == (409, 273)
    assert err(nitro.add("other", "c.crt", bogus=1)) == (400, 278)
    assert err(nitro.call("POST", "sslcertkey", body={"sslcertkey": {"certkey": "nocert"}})) == (400, 1095)


def test_duplicate_certificate_content_is_refused(nitro: Nitro, pki: Pki) -> None:
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert nitro.upload("ic-copy.crt", cert_pem(pki.ic)).status_code == 201
    r = nitro.add("Test-IC-2", "ic-copy.crt")
    assert r.status_code == 409
    assert r.json()["errorcode"] == 273
    assert "[certkeyName Contents, Test-IC]" in r.json()["message"]
    # reuse by serial lookup works whatever the name
    serial = items(nitro.get("sslcertkey", "Test-IC"), "sslcertkey")[0]["serial"]
    found = items(nitro.get("sslcertkey", query=f"filter=serial:{serial}"), "sslcertkey")
    assert [c["certkey"] for c in found] == ["Test-IC"]


def test_certkey_file_errors(nitro: Nitro, pki: Pki, keys: dict[str, Any]) -> None:
    cert, key = pki.leaf()
    assert nitro.upload("c.crt", cert_pem(cert)).status_code == 201
    assert nitro.upload("k.key", key_pem(key)).status_code == 201
    assert err(nitro.add("a", "missing.crt")) == (599, 1647)
    assert err(nitro.add("a", "c.crt", "missing.key")) == (599, 1647)
    nitro.sim.legacy_missing_file_codes = True
    assert err(nitro.add("a", "missing.crt")) == (599, 1631)
    assert err(nitro.add("a", "c.crt", "missing.key")) == (599, 1632)
    nitro.sim.legacy_missing_file_codes = False
    # invalid certificate: garbage, and a valid PEM with a stray control character
    assert nitro.upload("garbage.crt", b"not a certificate").status_code == 201
    assert err(nitro.add("a", "garbage.crt")) == (599, 1536)
    assert nitro.upload("ctrl.crt", cert_pem(cert).replace(b"\n", b"\n\x01", 1)).status_code == 201
    assert err(nitro.add("a", "ctrl.crt")) == (599, 1536)
    # invalid key
    assert (
        nitro.upload(
            "garbage.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ).status_code
        == 201
    )
    assert err(nitro.add("a", "c.crt", "garbage.key")) == (599, 1537)
    assert err(nitro.add("a", "c.crt", "c.crt")) == (599, 1537)  # a cert is not a key
    # key of someone else
    assert nitro.upload("other.key", key_pem(keys["RSA 2048"])).status_code == 201
    assert err(nitro.add("a", "c.crt", "other.key")) == (599, 1538)
    # encrypted key: passphrase required / wrong / right
    assert nitro.upload("enc.key", key_pem(key, b"s3cret")).status_code == 201
    assert err(nitro.add("a", "c.crt", "enc.key")) == (599, 1613)
    assert err(nitro.add("a", "c.crt", "enc.key", passplain="wrong")) == (599, 1614)
    assert nitro.add("a", "c.crt", "enc.key", passplain="s3cret").status_code == 201
    assert "passplain" not in items(nitro.get("sslcertkey", "a"), "sslcertkey")[0]


def test_certkey_get_filter_count_attrs(nitro: Nitro, pki: Pki) -> None:
    for n in range(3):
        cert, key = pki.leaf(f"h{n}.example.com")
        assert nitro.install(f"h{n}", cert, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert err(nitro.get("sslcertkey", "nope")) == (404, 258)
    count = nitro.get("sslcertkey", query="count=yes").json()["sslcertkey"][0]["__count"]
    assert int(count) == 4
    assert [
        c["certkey"]
        for c in items(nitro.get("sslcertkey", query="filter=certkey:/%5Eh%5B01%5D/"), "sslcertkey")
    ] == [
        "h0",
        "h1",
    ]
    subj = " C=US,O=Test,CN=Test Issuing CA"
    for query in (
        f"filter=subject:{quote(subj, safe='')}",  # value encoded, separators literal
        "filter=" + quote(f"subject:{subj}", safe=""),  # everything encoded (requests' params=)
        f"filter=subject:{quote(subj, safe=',=')},certificatetype:INTM_CERT",  # literal commas in the value
    ):
        found = items(nitro.get("sslcertkey", query=query), "sslcertkey")
        assert [c["certkey"] for c in found] == ["Test-IC"], query
    assert items(nitro.get("sslcertkey", query="filter=serial:00"), "sslcertkey") == []
    assert "sslcertkey" not in nitro.get("sslcertkey", query="filter=serial:00").json()
    only = items(nitro.get("sslcertkey", "h1", query="attrs=serial,status"), "sslcertkey")
    assert set(only[0]) == {"serial", "status"}


def test_double_encoded_names_in_paths(nitro: Nitro, pki: Pki) -> None:
    cert, _ = pki.leaf()
    assert nitro.install("my cert", cert).status_code == 201
    assert nitro.call("GET", "sslcertkey", "my cert").status_code == 200  # helper encodes twice (%2520)
    url = f"{nitro.sim.url}/nitro/v1/config/sslcertkey/my%20cert"
    assert nitro.http.get(url, verify=nitro.verify).status_code == 200  # single-encoded decodes the same


# ------------------------------------------------------------------------------------------ links


def test_link_and_unlink_rules(nitro: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert nitro.install("Test-Root", pki.root).status_code == 201
    # an impostor CA: same subject as the real issuer, different key -> signature does not verify
    impostor_key = ec_key()
    impostor = make_cert(
        impostor_key,
        cn="Test Issuing CA",
        ca=True,
        subject_extra=[
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test"),
        ],
    )
    assert nitro.install("Impostor", impostor).status_code == 201

    def link(ck: str, target: str) -> requests.Response:
        return nitro.call(
            "POST",
            "sslcertkey",
            query="action=link",
            body={"sslcertkey": {"certkey": ck, "linkcertkeyname": target}},
        )

    def unlink(ck: str) -> requests.Response:
        return nitro.call("POST", "sslcertkey", query="action=unlink", body={"sslcertkey": {"certkey": ck}})

    assert err(link("www", "nope")) == (599, 1540)
    assert err(link("nope", "Test-IC")) == (599, 1540)
    assert err(link("www", "www")) == (599, 1543)
    assert err(link("www", "Test-Root")) == (599, 1548)  # not the issuer
    assert err(link("www", "Impostor")) == (599, 1548)  # subject matches but the signature does not verify
    assert err(unlink("www")) == (599, 1545)
    assert link("www", "Test-IC").status_code == 200
    assert items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]["linkcertkeyname"] == "Test-IC"
    assert err(link("www", "Test-IC")) == (409, 273)
    assert link("Test-IC", "Test-Root").status_code == 200
    links = items(nitro.get("sslcertlink"), "sslcertlink")
    assert {(li["certkeyname"], li["linkcertkeyname"]) for li in links} == {
        ("www", "Test-IC"),
        ("Test-IC", "Test-Root"),
    }
    assert unlink("www").status_code == 200
    assert "linkcertkeyname" not in items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]


def test_delete_refusals(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "lb")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert nitro.call(
        "POST",
        "sslcertkey",
        query="action=link",
        body={"sslcertkey": {"certkey": "www", "linkcertkeyname": "Test-IC"}},
    ).ok
    assert nitro.bind("vs", "www").status_code == 201
    assert err(nitro.call("DELETE", "sslcertkey", "www")) == (599, 1541)  # bound
    assert err(nitro.call("DELETE", "sslcertkey", "Test-IC")) == (599, 1541)  # linked to
    assert err(nitro.call("DELETE", "sslcertkey", "nope")) == (404, 258)
    assert nitro.call("DELETE", "sslvserver_sslcertkey_binding", "vs", query="args=certkeyname:www").ok
    assert nitro.call("DELETE", "sslcertkey", "www", query="args=deletefromdevice:true").status_code == 200
    assert nitro.sim.get_file("/nsconfig/ssl/www.crt") is None  # files removed from the device
    assert nitro.call("DELETE", "sslcertkey", "Test-IC").status_code == 200  # no longer linked to
    assert nitro.sim.get_file("/nsconfig/ssl/Test-IC.crt") is not None
    assert err(nitro.call("DELETE", "sslcertkey", "x", query="args=deletefromdevice:True")) == (400, 1097)


# ------------------------------------------------------------------------------------------ vservers


@pytest.mark.parametrize("kind", ["lb", "cs", "vpn", "authentication"])
def test_each_vserver_kind_goes_up_when_a_cert_is_bound(nitro: Nitro, pki: Pki, kind: str) -> None:
    resource = f"{kind}vserver"
    nitro.sim.add_vserver(f"{kind}_vs", kind)
    nitro.sim.add_vserver("other_http", kind, servicetype="HTTP", port=80)
    (vs,) = items(nitro.get(resource, f"{kind}_vs"), resource)
    assert vs["curstate"] == "DOWN" and vs["value"] == "Certkey not bound"
    assert vs["servicetype"] == "SSL" and vs["ipv46"] == "127.0.0.1"  # loopback VIP, a free port
    assert vs["port"] == nitro.sim.vip(f"{kind}_vs")[1] > 0
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.bind(f"{kind}_vs", "www").status_code == 201
    (vs,) = items(nitro.get(resource, f"{kind}_vs"), resource)
    assert vs["curstate"] == "UP" and "value" not in vs
    assert err(nitro.bind("other_http", "www")) == (599, 1544)
    assert len(items(nitro.get(resource), resource)) == 2
    assert err(nitro.get(resource, "nope")) == (404, 258)
    assert nitro.sim.serving_certificate(f"{kind}_vs") == format(leaf.serial_number, "X").zfill(
        len(items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]["serial"])
    )
    # a vserver of another kind is not visible in this collection
    other = "lb" if kind != "lb" else "cs"
    assert err(nitro.get(f"{other}vserver", f"{kind}_vs")) == (404, 258)


def test_sslvserver_get_and_set(nitro: Nitro) -> None:
    nitro.sim.add_vserver("vs", "cs")
    nitro.sim.add_vserver("plain", "lb", servicetype="HTTP")
    (ssl,) = items(nitro.get("sslvserver", "vs"), "sslvserver")
    assert ssl["vservername"] == "vs" and ssl["snienable"] == "DISABLED"
    r = nitro.call("PUT", "sslvserver", body={"sslvserver": {"vservername": "vs", "snienable": "ENABLED"}})
    assert r.status_code == 200
    assert items(nitro.get("sslvserver", "vs"), "sslvserver")[0]["snienable"] == "ENABLED"
    assert err(
        nitro.call("PUT", "sslvserver", body={"sslvserver": {"vservername": "vs", "snienable": "maybe"}})
    ) == (
        400,
        1097,
    )
    assert err(
        nitro.call("PUT", "sslvserver", body={"sslvserver": {"vservername": "nope", "snienable": "ENABLED"}})
    ) == (
        599,
        461,
    )
    assert err(
        nitro.call("PUT", "sslvserver", body={"sslvserver": {"vservername": "plain", "snienable": "ENABLED"}})
    ) == (
        599,
        1544,
    )
    assert err(nitro.get("sslvserver", "plain")) == (404, 258)


# ------------------------------------------------------------------------------------------ bindings


def test_binding_errors(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "lb")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert err(nitro.bind("nope", "www")) == (599, 461)
    assert err(nitro.bind("vs", "nope")) == (599, 1540)
    assert err(nitro.bind("vs", "Test-IC")) == (599, 1547)  # key-less cert as server cert
    assert err(nitro.bind("vs", "www", snicert=True, ca=True)) == (400, 1092)
    assert nitro.bind("vs", "www").status_code == 201
    assert err(nitro.bind("vs", "www")) == (409, 273)
    nitro.sim.duplicate_binding = "ignore"
    assert nitro.bind("vs", "www").status_code == 201
    assert nitro.bind("vs", "Test-IC", ca=True, ocspcheck="Optional").status_code == 201
    assert len(items(nitro.get("sslvserver_sslcertkey_binding", "vs"), "sslvserver_sslcertkey_binding")) == 2


def test_post_is_accepted_for_binding(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "authentication")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    r = nitro.call(
        "POST",
        "sslvserver_sslcertkey_binding",
        body={"sslvserver_sslcertkey_binding": {"vservername": "vs", "certkeyname": "www"}},
    )
    assert r.status_code == 201


def test_binding_views_share_one_table(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs_a", "lb")
    nitro.sim.add_vserver("vs_b", "vpn")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    # empty: envelope only
    r = nitro.get("sslvserver_sslcertkey_binding", "vs_a")
    assert r.status_code == 200 and r.json() == {"errorcode": 0, "message": "Done", "severity": "NONE"}
    r = nitro.get("sslcertkey_sslvserver_binding", "www")
    assert r.status_code == 200 and "sslcertkey_sslvserver_binding" not in r.json()
    assert err(nitro.get("sslvserver_sslcertkey_binding", "nope")) == (404, 461)
    assert err(nitro.get("sslcertkey_sslvserver_binding", "nope")) == (404, 1540)

    assert nitro.bind("vs_a", "www").status_code == 201
    assert nitro.bind("vs_b", "www").status_code == 201
    assert nitro.bind("vs_a", "Test-IC", ca=True).status_code == 201
    rows = items(nitro.get("sslvserver_sslcertkey_binding", "vs_a"), "sslvserver_sslcertkey_binding")
    assert {(r["certkeyname"], r["snicert"], r["ca"]) for r in rows} == {
        ("www", False, False),
        ("Test-IC", False, True),
    }
    rows = items(nitro.get("sslcertkey_sslvserver_binding", "www"), "sslcertkey_sslvserver_binding")
    assert sorted(r["servername"] for r in rows) == ["vs_a", "vs_b"]
    (entry,) = items(nitro.get("sslcertkey_binding", "www"), "sslcertkey_binding")
    assert sorted(r["servername"] for r in entry["sslcertkey_sslvserver_binding"]) == ["vs_a", "vs_b"]
    (entry,) = items(nitro.get("sslvserver_binding", "vs_a"), "sslvserver_binding")
    assert {r["certkeyname"] for r in entry["sslvserver_sslcertkey_binding"]} == {"www", "Test-IC"}
    count = nitro.get("sslvserver_sslcertkey_binding", "vs_a", query="count=yes").json()
    assert int(count["sslvserver_sslcertkey_binding"][0]["__count"]) == 2

    # unbinding removes the row from every view
    r = nitro.call("DELETE", "sslvserver_sslcertkey_binding", "vs_b", query="args=certkeyname:www")
    assert r.status_code == 200
    rows = items(nitro.get("sslcertkey_sslvserver_binding", "www"), "sslcertkey_sslvserver_binding")
    assert [r["servername"] for r in rows] == ["vs_a"]
    assert (
        "sslvserver_sslcertkey_binding"
        not in items(nitro.get("sslvserver_binding", "vs_b"), "sslvserver_binding")[0]
    )


def test_unbind_flags_must_match(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "cs", snienable=True)
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert nitro.bind("vs", "www", snicert=True).status_code == 201
    assert nitro.bind("vs", "Test-IC", ca=True).status_code == 201

    def unbind(args: str) -> requests.Response:
        return nitro.call("DELETE", "sslvserver_sslcertkey_binding", "vs", query=f"args={args}")

    assert err(unbind("certkeyname:www")) == (599, 1542)  # it is an SNI binding
    assert err(unbind("certkeyname:www,snicert:True")) == (400, 1097)  # capitalised boolean
    assert err(unbind("certkeyname:Test-IC")) == (599, 1542)  # it is a CA binding
    assert err(unbind("snicert:true")) == (400, 1095)
    assert err(
        nitro.call("DELETE", "sslvserver_sslcertkey_binding", "nope", query="args=certkeyname:www")
    ) == (599, 461)
    assert unbind("certkeyname:www,snicert:true").status_code == 200
    assert unbind("certkeyname:Test-IC,ca:true").status_code == 200
    assert nitro.sim.state()["bindings"] == []


def test_sni_rules(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "lb")
    a, ka = pki.leaf("a.example.com")
    a2, ka2 = pki.leaf("A.example.com", sans=["other.example.com"])
    nocn, knocn = pki.leaf(None, sans=["nocn.example.com"])
    for name, cert, key in (("a", a, ka), ("a2", a2, ka2), ("nocn", nocn, knocn)):
        assert nitro.install(name, cert, key).status_code == 201
    assert err(nitro.bind("vs", "a", snicert=True)) == (599, 3627)
    assert nitro.call(
        "PUT", "sslvserver", body={"sslvserver": {"vservername": "vs", "snienable": "ENABLED"}}
    ).ok
    assert err(nitro.bind("vs", "nocn", snicert=True)) == (599, 3628)
    assert nitro.bind("vs", "a", snicert=True).status_code == 201
    assert err(nitro.bind("vs", "a2", snicert=True)) == (599, 3629)  # same CN, case-insensitive
    assert nitro.bind("vs", "nocn").status_code == 201  # as the default (non-SNI) cert a CN is not needed
    assert (
        nitro.sim.serving_certificate("vs", servername="a.example.com")
        == items(nitro.get("sslcertkey", "a"), "sslcertkey")[0]["serial"]
    )
    assert (
        nitro.sim.serving_certificate("vs")
        == items(nitro.get("sslcertkey", "nocn"), "sslcertkey")[0]["serial"]
    )


def test_second_server_cert_replaces_the_first_without_a_gap(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "lb")
    old, kold = pki.leaf("www.example.com")
    new, knew = pki.leaf("www.example.com")
    assert nitro.install("old", old, kold).status_code == 201
    assert nitro.install("new", new, knew).status_code == 201
    assert nitro.bind("vs", "old").status_code == 201
    r = nitro.bind("vs", "new")
    assert r.status_code == 201
    assert r.json()["errorcode"] == 1546 and r.json()["severity"] == "WARNING"
    rows = items(nitro.get("sslvserver_sslcertkey_binding", "vs"), "sslvserver_sslcertkey_binding")
    assert [r["certkeyname"] for r in rows] == ["new"]
    assert nitro.sim.gaps() == []
    nitro.sim.server_binding_replace = "error"
    assert err(nitro.bind("vs", "old")) == (599, 1546)
    # ?warning=yes turns the warning into HTTP 209 + X-NITRO-WARNING
    nitro.sim.server_binding_replace = "warn"
    r = nitro.call(
        "PUT",
        "sslvserver_sslcertkey_binding",
        query="warning=yes",
        body={"sslvserver_sslcertkey_binding": {"vservername": "vs", "certkeyname": "old"}},
    )
    assert r.status_code == 209 and "1546" in r.headers["X-NITRO-WARNING"]


def test_gap_timeline_catches_unbind_then_bind(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "lb")
    nitro.sim.add_vserver("never_bound", "lb")
    old, kold = pki.leaf()
    new, knew = pki.leaf()
    assert nitro.install("old", old, kold).status_code == 201
    assert nitro.install("new", new, knew).status_code == 201
    assert nitro.bind("vs", "old").status_code == 201
    assert nitro.sim.gaps() == []  # never_bound was never serving: not a gap
    assert nitro.call("DELETE", "sslvserver_sslcertkey_binding", "vs", query="args=certkeyname:old").ok
    assert nitro.bind("vs", "new").status_code == 201
    gaps = nitro.sim.gaps()
    assert len(gaps) == 1
    vserver, request = gaps[0]
    assert vserver == "vs" and request.startswith("DELETE /nitro/v1/config/sslvserver_sslcertkey_binding/vs")
    assert (
        nitro.sim.serving_certificate("vs")
        == items(nitro.get("sslcertkey", "new"), "sslcertkey")[0]["serial"]
    )


def test_state_dump_writes_and_control_api(nitro: Nitro, pki: Pki) -> None:
    sim = nitro.sim
    writes_before = sim.count_writes()
    assert writes_before == 0  # the login is not a write
    nitro.get("nsconfig")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201  # 2 uploads + 1 add
    assert sim.count_writes() == 3
    dump = sim.state()
    assert set(dump) >= {"files", "certkeys", "bindings", "vservers", "saved", "configchanged"}
    assert "/nsconfig/ssl/www.crt" in dump["files"] and dump["certkeys"]["www"]["certkey"] == "www"
    assert dump["saved"] is False
    ctl = f"{sim.url}/_sim"
    r = requests.post(f"{ctl}/vservers", json={"name": "vs", "kind": "lb"}, verify=nitro.verify, timeout=10)
    assert r.status_code == 204
    assert nitro.bind("vs", "www").status_code == 201
    state = requests.get(f"{ctl}/state", verify=nitro.verify, timeout=10).json()
    assert state["bindings"][0]["vserver"] == "vs"
    serving = requests.get(f"{ctl}/serving/vs", verify=nitro.verify, timeout=10).json()
    assert serving["serial"] == dump["certkeys"]["www"]["serial"]
    assert requests.get(f"{ctl}/writes", verify=nitro.verify, timeout=10).json()["count"] == 4
    assert requests.get(f"{ctl}/gaps", verify=nitro.verify, timeout=10).json() == []
    r = requests.post(f"{ctl}/knobs", json={"save_in_progress_times": 1}, verify=nitro.verify, timeout=10)
    assert r.status_code == 204 and sim.save_in_progress_times == 1
    assert requests.post(f"{ctl}/expire_sessions", verify=nitro.verify, timeout=10).status_code == 204
    assert err(nitro.get("nsconfig")) == (401, 444)


def test_unknown_resource_and_bad_json(nitro: Nitro) -> None:
    assert err(nitro.get("nosuchthing")) == (404, 1232)
    r = nitro.http.post(
        f"{nitro.sim.url}/nitro/v1/config/sslcertkey",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        verify=nitro.verify,
        timeout=10,
    )
    assert err(r) == (400, 1233)
    assert err(nitro.call("POST", "sslcertkey", query="action=frobnicate", body={"sslcertkey": {}})) == (
        400,
        1240,
    )


def test_injected_faults_reach_the_client(nitro: Nitro) -> None:
    nitro.sim.add_fault(
        r"/nitro/v1/config/nsconfig$", method="POST", status=503, json_body={"errorcode": 1}, times=1
    )
    assert nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}}).status_code == 503
    assert nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}}).status_code == 200


# ------------------------------------------------------------------------------------------ stage 2: update


def update(nitro: Nitro, certkey: str, cert: str, key: str | None = None, **extra: Any) -> requests.Response:
    obj: dict[str, Any] = {"certkey": certkey, "cert": cert, **extra}
    if key is not None:
        obj["key"] = key
    return nitro.call("POST", "sslcertkey", query="action=update", body={"sslcertkey": obj})


def link(nitro: Nitro, certkey: str, target: str) -> requests.Response:
    return nitro.call(
        "POST",
        "sslcertkey",
        query="action=link",
        body={"sslcertkey": {"certkey": certkey, "linkcertkeyname": target}},
    )


def serial_of(nitro: Nitro, certkey: str) -> str:
    return str(items(nitro.get("sslcertkey", certkey), "sslcertkey")[0]["serial"])


def test_update_in_place_keeps_bindings_and_settings(nitro: Nitro, pki: Pki) -> None:
    for kind in ("lb", "cs", "vpn", "authentication"):
        nitro.sim.add_vserver(f"vs_{kind}", kind, snienable=kind == "cs")
    old, kold = pki.leaf("www.example.com", sans=["www.example.com"])
    assert nitro.install("www", old, kold, expirymonitor="ENABLED", notificationperiod=25).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert link(nitro, "www", "Test-IC").ok
    for kind in ("lb", "vpn", "authentication"):
        assert nitro.bind(f"vs_{kind}", "www").status_code == 201
    assert nitro.bind("vs_cs", "www", snicert=True).status_code == 201
    new, knew = pki.leaf("www.example.com", sans=["www.example.com", "example.com"])
    assert nitro.upload("www-2.crt", cert_pem(new)).status_code == 201
    assert nitro.upload("www-2.key", key_pem(knew)).status_code == 201
    r = update(nitro, "www", "/nsconfig/ssl/www-2.crt", "/nsconfig/ssl/www-2.key")
    assert r.status_code == 200 and r.content == b""  # the real box often answers an update with no body
    (ck,) = items(nitro.get("sslcertkey", "www"), "sslcertkey")
    assert int(ck["serial"], 16) == new.serial_number
    assert ck["cert"] == "/nsconfig/ssl/www-2.crt" and ck["key"] == "/nsconfig/ssl/www-2.key"
    assert ck["expirymonitor"] == "ENABLED" and str(ck["notificationperiod"]) == "25"
    assert ck["linkcertkeyname"] == "Test-IC"  # same issuer: link kept
    rows = items(nitro.get("sslcertkey_sslvserver_binding", "www"), "sslcertkey_sslvserver_binding")
    assert sorted(r["servername"] for r in rows) == ["vs_authentication", "vs_cs", "vs_lb", "vs_vpn"]
    for kind in ("lb", "vpn", "authentication"):
        assert nitro.sim.serving_certificate(f"vs_{kind}") == ck["serial"]
    assert nitro.sim.serving_certificate("vs_cs", servername="www.example.com") == ck["serial"]
    assert nitro.sim.gaps() == []
    assert nitro.get("nsconfig").json()["nsconfig"]["configchanged"] is True


def test_update_with_same_paths_rereads_the_files(nitro: Nitro, pki: Pki) -> None:
    old, kold = pki.leaf()
    assert nitro.install("www", old, kold).status_code == 201
    new, knew = pki.leaf()
    loc = "args=filelocation:%2Fnsconfig%2Fssl"
    assert nitro.call("DELETE", "systemfile", "www.crt", query=loc).ok
    assert nitro.call("DELETE", "systemfile", "www.key", query=loc).ok
    assert nitro.upload("www.crt", cert_pem(new)).status_code == 201
    assert nitro.upload("www.key", key_pem(knew)).status_code == 201
    # the running certkey still holds the facts read at add time
    assert int(serial_of(nitro, "www"), 16) == old.serial_number
    assert update(nitro, "www", "www.crt", "www.key").status_code == 200
    assert int(serial_of(nitro, "www"), 16) == new.serial_number


def test_update_validations(nitro: Nitro, pki: Pki) -> None:
    old, kold = pki.leaf("www.example.com", sans=["www.example.com", "example.com"])
    assert nitro.install("www", old, kold).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    other, kother = pki.leaf("api.example.org", sans=["api.example.org"])
    assert nitro.upload("other.crt", cert_pem(other)).status_code == 201
    assert nitro.upload("other.key", key_pem(kother)).status_code == 201
    assert err(update(nitro, "nope", "other.crt", "other.key")) == (404, 258)
    assert err(update(nitro, "www", "missing.crt", "other.key")) == (599, 1647)
    assert err(update(nitro, "www", "other.crt", "missing.key")) == (599, 1647)
    assert err(update(nitro, "www", "other.crt", "www.key")) == (599, 1538)
    assert err(update(nitro, "www", "other.crt")) == (599, 1538)  # no key given: the old key is re-checked
    assert nitro.install("Root", pki.root).status_code == 201
    assert err(update(nitro, "Root", "Test-IC.crt", nodomaincheck=True)) == (409, 273)  # content is installed
    r = update(nitro, "www", "other.crt", "other.key")
    assert err(r) == (599, 3585) and "no domain check" in r.json()["message"]
    assert int(serial_of(nitro, "www"), 16) == old.serial_number  # refused: nothing changed
    assert update(nitro, "www", "other.crt", "other.key", nodomaincheck=True).status_code == 200
    assert int(serial_of(nitro, "www"), 16) == other.serial_number
    assert err(update(nitro, "www", "other.crt", "other.key", bogus=1)) == (400, 278)


def test_domain_check_modes(nitro: Nitro, pki: Pki) -> None:
    old, kold = pki.leaf("www.example.com", sans=["www.example.com", "example.com"])
    assert nitro.install("www", old, kold).status_code == 201
    overlap, koverlap = pki.leaf("www.example.com", sans=["www.example.com"])  # drops example.com
    assert nitro.upload("n.crt", cert_pem(overlap)).status_code == 201
    assert nitro.upload("n.key", key_pem(koverlap)).status_code == 201
    nitro.sim.domain_check = "equal"
    assert err(update(nitro, "www", "n.crt", "n.key")) == (599, 3585)
    nitro.sim.domain_check = "overlap"
    assert update(nitro, "www", "n.crt", "n.key").status_code == 200


def test_update_drops_a_link_the_new_cert_breaks(nitro: Nitro, pki: Pki) -> None:
    other_pki = Pki("Other")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Test-IC", pki.ic).status_code == 201
    assert link(nitro, "www", "Test-IC").ok
    moved, kmoved = other_pki.leaf()  # same name, different issuer
    assert nitro.upload("moved.crt", cert_pem(moved)).status_code == 201
    assert nitro.upload("moved.key", key_pem(kmoved)).status_code == 201
    nitro.sim.link_break_mode = "error"
    assert err(update(nitro, "www", "moved.crt", "moved.key")) == (599, 1587)
    assert items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]["linkcertkeyname"] == "Test-IC"
    nitro.sim.link_break_mode = "warning"
    r = update(nitro, "www", "moved.crt", "moved.key")
    assert r.status_code == 200
    assert r.json()["errorcode"] == 1587 and r.json()["severity"] == "WARNING"
    assert "linkcertkeyname" not in items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]
    assert nitro.install("Other-IC", other_pki.ic).status_code == 201
    assert link(nitro, "www", "Other-IC").ok


def test_update_of_a_ca_breaks_links_of_its_children(nitro: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("CA", pki.ic).status_code == 201
    assert link(nitro, "www", "CA").ok
    other_pki = Pki("Test")  # same names, new keys: the old leaf no longer chains to it
    assert nitro.upload("ca2.crt", cert_pem(other_pki.ic)).status_code == 201
    r = update(nitro, "CA", "ca2.crt")
    assert r.status_code == 200 and r.json()["errorcode"] == 1587
    assert "linkcertkeyname" not in items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]


def test_update_breaking_sni_bindings(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.add_vserver("vs", "cs", snienable=True)
    a, ka = pki.leaf("a.example.com")
    b, kb = pki.leaf("b.example.com", sans=["b.example.com"])
    c, kc = pki.leaf("c.example.com", sans=["c.example.com"])
    for name, cert, key in (("a", a, ka), ("b", b, kb), ("c", c, kc)):
        assert nitro.install(name, cert, key).status_code == 201
        assert nitro.bind("vs", name, snicert=True).status_code == 201
    dup, kdup = pki.leaf("a.example.com", sans=["b.example.com"])  # b now claims a's CN
    nocn, knocn = pki.leaf(None, sans=["c.example.com"])
    for name, cert, key in (("dup", dup, kdup), ("nocn", nocn, knocn)):
        assert nitro.upload(f"{name}.crt", cert_pem(cert)).status_code == 201
        assert nitro.upload(f"{name}.key", key_pem(key)).status_code == 201
    nitro.sim.sni_break_mode = "error"
    assert err(update(nitro, "b", "dup.crt", "dup.key")) == (599, 3637)
    assert err(update(nitro, "c", "nocn.crt", "nocn.key")) == (599, 3638)
    nitro.sim.sni_break_mode = "warning"
    r = update(nitro, "b", "dup.crt", "dup.key")
    assert r.status_code == 200 and r.json()["errorcode"] == 3637
    r = update(nitro, "c", "nocn.crt", "nocn.key")
    assert r.status_code == 200 and r.json()["errorcode"] == 3638
    rows = items(nitro.get("sslvserver_sslcertkey_binding", "vs"), "sslvserver_sslcertkey_binding")
    assert [r["certkeyname"] for r in rows] == ["a"]


def test_certkey_set(nitro: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201

    def put(**obj: Any) -> requests.Response:
        return nitro.call("PUT", "sslcertkey", body={"sslcertkey": {"certkey": "www", **obj}})

    assert put(expirymonitor="ENABLED", notificationperiod=40).status_code == 200
    (ck,) = items(nitro.get("sslcertkey", "www"), "sslcertkey")
    assert ck["expirymonitor"] == "ENABLED" and str(ck["notificationperiod"]) == "40"
    assert put(notificationperiod="100").status_code == 200
    assert err(put(notificationperiod=9)) == (400, 1097)
    assert err(put(notificationperiod=101)) == (400, 1097)
    assert err(put(expirymonitor="SOMETIMES")) == (400, 1097)
    assert err(put(cert="www.crt")) == (400, 278)
    assert err(
        nitro.call("PUT", "sslcertkey", body={"sslcertkey": {"certkey": "nope", "notificationperiod": 30}})
    ) == (
        404,
        258,
    )
    r = nitro.call("PUT", "sslcertkey", "www", body={"sslcertkey": {"notificationperiod": 50}})
    assert r.status_code == 200
    assert str(items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]["notificationperiod"]) == "50"


# ---------------------------------------------------------------------------------- stage 2: on-box keys


def create_rsa(nitro: Nitro, keyfile: str, bits: Any = 2048, **extra: Any) -> requests.Response:
    return nitro.call(
        "POST",
        "sslrsakey",
        query="action=create",
        body={"sslrsakey": {"keyfile": keyfile, "bits": bits, **extra}},
    )


def create_ec(nitro: Nitro, keyfile: str, curve: str = "P_256", **extra: Any) -> requests.Response:
    return nitro.call(
        "POST",
        "sslecdsakey",
        query="action=create",
        body={"sslecdsakey": {"keyfile": keyfile, "curve": curve, **extra}},
    )


def download(nitro: Nitro, filename: str, location: str = "/nsconfig/ssl") -> bytes:
    query = f"args=filename:{filename},filelocation:{quote(location, safe='')}"
    (entry,) = items(nitro.get("systemfile", query=query), "systemfile")
    return base64.b64decode(entry["filecontent"])


def test_rsa_key_creation(nitro: Nitro) -> None:
    assert create_rsa(nitro, "/nsconfig/ssl/a.key", 2048, exponent="F4", keyform="PEM").status_code == 200
    assert create_rsa(nitro, "b.key", "2048").status_code == 200
    ka = serialization.load_pem_private_key(download(nitro, "a.key"), None)
    kb = serialization.load_pem_private_key(download(nitro, "b.key"), None)
    assert isinstance(ka, rsa.RSAPrivateKey) and ka.key_size == 2048
    assert ka.private_numbers().public_numbers.e == 65537
    assert isinstance(kb, rsa.RSAPrivateKey) and ka.private_numbers() != kb.private_numbers()
    assert create_rsa(nitro, "small.key", 1024, exponent="3").status_code == 200
    small = serialization.load_pem_private_key(download(nitro, "small.key"), None)
    assert isinstance(small, rsa.RSAPrivateKey) and small.key_size == 1024
    assert small.private_numbers().public_numbers.e == 3
    # 512..1023 bits: the appliance makes them, the sandbox (cryptography) does not, and says so
    refused = create_rsa(nitro, "weak.key", 512)
    assert err(refused) == (400, 1097) and "not simulated" in refused.json()["message"]
    assert nitro.sim.get_file("/nsconfig/ssl/weak.key") is None
    assert err(create_rsa(nitro, "a.key")) == (409, 1642)
    assert err(create_rsa(nitro, "big.key", 8192)) == (599, 1654)
    assert err(create_rsa(nitro, "big.key", 4097)) == (599, 1654)
    assert err(create_rsa(nitro, "tiny.key", 256)) == (400, 1097)
    assert err(create_rsa(nitro, "e.key", 2048, exponent="5")) == (599, 1617)
    assert err(
        nitro.call("POST", "sslrsakey", query="action=create", body={"sslrsakey": {"keyfile": "x.key"}})
    ) == (
        400,
        1095,
    )
    assert err(create_rsa(nitro, "k" * 60 + ".key")) == (400, 1106)
    assert create_rsa(nitro, "enc.key", 2048, aes256=True, password="pw12").status_code == 200
    assert b"ENCRYPTED" in download(nitro, "enc.key")
    assert err(create_rsa(nitro, "enc2.key", 2048, aes256=True)) == (400, 1095)


def test_ecdsa_key_creation(nitro: Nitro) -> None:
    assert create_ec(nitro, "p256.key", "P_256").status_code == 200
    assert create_ec(nitro, "p384.key", "P_384").status_code == 200
    k256 = serialization.load_pem_private_key(download(nitro, "p256.key"), None)
    k384 = serialization.load_pem_private_key(download(nitro, "p384.key"), None)
    assert isinstance(k256, ec.EllipticCurvePrivateKey) and k256.curve.name == "secp256r1"
    assert isinstance(k384, ec.EllipticCurvePrivateKey) and k384.curve.name == "secp384r1"
    assert err(create_ec(nitro, "p521.key", "P_521")) == (400, 1097)
    assert err(create_ec(nitro, "p256.key", "P_256")) == (409, 1642)


def csr_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "reqfile": "/nsconfig/ssl/www.csr",
        "keyfile": "/nsconfig/ssl/www.key",
        "keyform": "PEM",
        "countryname": "US",
        "statename": "New York",
        "localityname": "New York",
        "organizationname": "Example Inc",
        "organizationunitname": "IT",
        "commonname": "www.example.com",
        "subjectaltname": "DNS:www.example.com DNS:example.com IP:192.0.2.7",
        "emailaddress": "pki@example.com",
        "digestmethod": "SHA256",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create_csr(nitro: Nitro, **overrides: Any) -> requests.Response:
    return nitro.call("POST", "sslcertreq", query="action=create", body={"sslcertreq": csr_body(**overrides)})


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_on_box_key_and_csr_flow_end_to_end(nitro: Nitro, local_ca: LocalCA, kind: str) -> None:
    nitro.sim.add_vserver("vs", "lb")
    made = create_rsa(nitro, "www.key", 2048) if kind == "rsa" else create_ec(nitro, "www.key", "P_384")
    assert made.status_code == 200
    assert create_csr(nitro).status_code == 200
    csr = x509.load_pem_x509_csr(download(nitro, "www.csr"))
    key = serialization.load_pem_private_key(download(nitro, "www.key"), None)
    assert csr.is_signature_valid
    assert csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com", "example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    # a CA signs it; the certificate goes back next to the on-box key
    leaf = local_ca.issue_from_csr(csr)
    assert nitro.upload("www.crt", cert_pem(leaf)).status_code == 201
    assert nitro.add("www", "www.crt", "www.key").status_code == 201
    assert nitro.bind("vs", "www").status_code == 201
    assert int(nitro.sim.serving_certificate("vs") or "0", 16) == leaf.serial_number


def test_csr_validations(nitro: Nitro) -> None:
    assert err(create_csr(nitro)) == (599, 1647)  # no key file yet
    nitro.sim.legacy_missing_file_codes = True
    assert err(create_csr(nitro)) == (599, 1632)
    nitro.sim.legacy_missing_file_codes = False
    assert create_ec(nitro, "www.key").status_code == 200
    assert err(create_csr(nitro, reqfile=None)) == (400, 1095)
    assert err(create_csr(nitro, countryname=None)) == (400, 1095)
    assert err(create_csr(nitro, statename=None)) == (400, 1095)
    assert err(create_csr(nitro, organizationname=None)) == (400, 1095)
    assert err(create_csr(nitro, keyfile=None)) == (400, 1095)
    assert err(create_csr(nitro, countryname="USA")) == (400, 1097)
    assert err(create_csr(nitro, subjectaltname="DNS:a.example.com,DNS:b.example.com")) == (400, 1097)
    assert err(create_csr(nitro, subjectaltname="FOO:bar")) == (400, 1097)
    assert err(create_csr(nitro, digestmethod="MD5")) == (400, 1097)
    assert err(create_csr(nitro, challengepassword="abc")) == (400, 1097)
    assert (
        create_csr(nitro, commonname="*.example.com", subjectaltname="DNS:*.example.com").status_code == 200
    )
    assert err(create_csr(nitro)) == (409, 1642)  # reqfile exists
    assert nitro.upload("garbage.key", b"nope").status_code == 201
    assert err(create_csr(nitro, reqfile="g.csr", keyfile="garbage.key")) == (599, 1537)


# ------------------------------------------------------------------------------------------ stage 2: HA


def test_hanode_views(nitro: Nitro) -> None:
    nodes = items(nitro.get("hanode"), "hanode")
    assert [n["id"] for n in nodes] == [0] and nodes[0]["state"] == "Primary"
    stat = nitro.call("GET", "hanode", api="stat").json()["hanode"]
    assert stat["hacurstatus"] == "NO"
    nitro.sim.set_ha("Primary", peer_address="127.0.0.11")
    nodes = items(nitro.get("hanode"), "hanode")
    assert [(n["id"], n["state"]) for n in nodes] == [(0, "Primary"), (1, "Secondary")]
    assert nodes[1]["ipaddress"] == "127.0.0.11"
    stat = nitro.call("GET", "hanode", api="stat").json()["hanode"]
    assert (stat["hacurstatus"], stat["hacurmasterstate"]) == ("YES", "Primary")
    assert nitro.get("nsconfig").json()["nsconfig"]["systemtype"] == "HA"
    nitro.sim.set_ha("Secondary", peer="127.0.0.10")  # alias
    (local,) = items(nitro.get("hanode", "0"), "hanode")
    assert local["state"] == "Secondary"
    assert nitro.call("GET", "hanode", api="stat").json()["hanode"]["hacurmasterstate"] == "Secondary"


def test_writes_on_a_secondary(nitro: Nitro, pki: Pki) -> None:
    nitro.sim.set_ha("Secondary", peer_address="127.0.0.11")
    # default: applied locally, with warning 1028
    r = nitro.upload("a.txt", b"a")
    assert r.status_code == 201 and r.json()["errorcode"] == 1028 and r.json()["severity"] == "WARNING"
    # knob: refused
    nitro.sim.secondary_writes = "reject"
    cert, _ = pki.leaf()
    r = nitro.upload("c.crt", cert_pem(cert))
    assert err(r) == (599, 1028)
    assert err(nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}})) == (599, 1028)
    assert nitro.sim.get_file("/nsconfig/ssl/c.crt") is None
    # reads and session calls still work
    assert nitro.get("sslcertkey").status_code == 200
    assert nitro.login().status_code == 201
    nitro.sim.set_ha("Primary", peer_address="127.0.0.11")
    assert nitro.upload("c.crt", cert_pem(cert)).status_code == 201


# ---------------------------------------------------------------------------------- stage 2: partitions


def switch(nitro: Nitro, partition: str) -> requests.Response:
    return nitro.call(
        "POST", "nspartition", query="action=Switch", body={"nspartition": {"partitionname": partition}}
    )


def test_partition_isolation(nitro: Nitro, pki: Pki) -> None:
    sim = nitro.sim
    sim.add_partition("p1")
    sim.add_vserver("vs_default", "lb")
    sim.add_vserver("vs_p1", "cs", partition="p1")
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201  # in default
    assert switch(nitro, "nope").status_code == 599 and switch(nitro, "nope").json()["errorcode"] == 2755
    assert switch(nitro, "p1").status_code == 200
    parts = items(nitro.get("nspartition"), "nspartition")
    assert [(p["partitionname"], p["partitiontype"]) for p in parts] == [("p1", "Current Partition")]
    # nothing of the default partition is visible
    assert items(nitro.get("sslcertkey"), "sslcertkey") == []
    assert err(nitro.get("lbvserver", "vs_default")) == (404, 258)
    assert [v["name"] for v in items(nitro.get("csvserver"), "csvserver")] == ["vs_p1"]
    assert nitro.get("nsconfig").json()["nsconfig"]["configchanged"] is False
    # default-partition paths are refused; the partition's own SSL dir works
    assert err(nitro.upload("www.crt", cert_pem(leaf))) == (599, 1645)
    p1_dir = "/var/partitions/p1/ssl"
    assert nitro.upload("www.crt", cert_pem(leaf), location=p1_dir).status_code == 201
    assert nitro.upload("www.key", key_pem(key), location=p1_dir).status_code == 201
    assert err(nitro.add("www", "/nsconfig/ssl/www.crt", "/nsconfig/ssl/www.key")) == (599, 1647)
    assert nitro.add("www", "www.crt", "www.key").status_code == 201  # same content: other partition, allowed
    assert items(nitro.get("sslcertkey", "www"), "sslcertkey")[0]["cert"] == "www.crt"
    assert err(create_ec(nitro, "/nsconfig/ssl/x.key")) == (599, 1645)
    assert create_ec(nitro, "x.key").status_code == 200
    assert sim.get_file(f"{p1_dir}/x.key", partition="p1") is not None
    assert nitro.bind("vs_p1", "www").status_code == 201
    assert err(nitro.bind("vs_default", "www")) == (599, 461)
    assert nitro.get("nsconfig").json()["nsconfig"]["configchanged"] is True
    assert err(nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {"all": True}})) == (
        599,
        2772,
    )
    assert nitro.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}}).status_code == 200
    assert sim.state("p1")["saved"] is True and sim.state("default")["saved"] is False
    assert sim.serving_certificate("vs_p1", partition="p1") == serial_of(nitro, "www")
    # back to default: its own world again
    assert switch(nitro, "default").status_code == 200
    assert [c["certkey"] for c in items(nitro.get("sslcertkey"), "sslcertkey")] == ["www"]
    assert (
        items(nitro.get("sslvserver_sslcertkey_binding", "vs_default"), "sslvserver_sslcertkey_binding") == []
    )
    assert "/var/partitions/p1/ssl/x.key" not in sim.state()["files"]
    assert err(nitro.upload("y.txt", b"y", location=p1_dir)) == (599, 1645)
    names = {p["partitionname"]: p["partitiontype"] for p in items(nitro.get("nspartition"), "nspartition")}
    assert names == {"default": "Current Partition", "p1": "Admin Partition"}


def test_partition_switch_needs_a_session_and_access(sim: NetScalerSimulator, bundle: str) -> None:
    sim.add_partition("p1")
    sim.add_partition("p2")
    sim.add_user("p1admin", "pw", partitions=["p1"])
    client = Nitro(sim, bundle)
    client.headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD}
    assert err(switch(client, "p1")) == (599, 257)
    sim.switch_without_session = "ignore"
    assert switch(client, "p1").status_code == 200
    assert sim.count_writes() == 0  # partition switches are session calls, not writes
    client = Nitro(sim, bundle)
    assert client.login("p1admin", "pw").status_code == 201
    assert switch(client, "p1").status_code == 200
    assert err(switch(client, "p2")) == (599, 2138)
    # a session keeps its partition; a re-login starts in default again
    assert client.upload("f.txt", b"f", location="/var/partitions/p1/ssl").status_code == 201
    assert client.login("p1admin", "pw").status_code == 201
    assert err(client.upload("g.txt", b"g", location="/var/partitions/p1/ssl")) == (599, 1645)


def test_certificate_chain_view(nitro: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf()
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("IC", pki.ic).status_code == 201
    assert nitro.install("Root", pki.root).status_code == 201
    (chain,) = items(nitro.get("sslcertificatechain", "www"), "sslcertificatechain")
    assert (
        chain["chainlinked"] == [] and chain["chainpossiblelinks"] == ["IC"] and chain["chaincomplete"] == 0
    )
    assert link(nitro, "www", "IC").ok and link(nitro, "IC", "Root").ok
    (chain,) = items(nitro.get("sslcertificatechain", "www"), "sslcertificatechain")
    assert chain["chainlinked"] == ["IC", "Root"] and chain["chaincomplete"] == 1
