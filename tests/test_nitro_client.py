"""NitroClient against the NetScaler simulator over HTTPS (no mocked requests)."""

from __future__ import annotations

import base64
import logging
import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from urllib3.exceptions import MaxRetryError

from citrix_connector.crypto import (
    KeySpec,
    Subject,
    build_csr,
    cert_to_pem,
    csr_names,
    csr_to_pem,
    generate_private_key,
    load_csr,
    normalize_serial,
    private_key_to_pem,
)
from citrix_connector.errors import NitroAuthError, NitroError
from citrix_connector.http import RetryPolicy, _is_connect_error
from citrix_connector.nitro.client import Binding, NitroClient, encode_args, encode_name
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.netscaler import NetScalerSimulator

USER = "nsroot"
PASSWORD = "sandbox-nsroot"
SSL = "/nsconfig/ssl"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tls_ca() -> LocalCA:
    return LocalCA.create("Nitro Client Test TLS")


@pytest.fixture(scope="module")
def tls_material(tls_ca: LocalCA) -> tuple[bytes, bytes]:
    return tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))


@pytest.fixture(scope="module")
def bundle(tls_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nitro-tls") / "ca.pem"
    path.write_bytes(tls_ca.bundle_pem())
    return path


@pytest.fixture
def sim(tls_material: tuple[bytes, bytes]):
    cert, key = tls_material
    ns = NetScalerSimulator(cert, key, username=USER, password=PASSWORD)
    ns.add_vserver("vs_lb", "lb")
    ns.add_vserver("vs_sni", "lb", snienable=True)
    ns.add_vserver("vs_cs", "cs")
    ns.add_vserver("vs_http", "lb", servicetype="HTTP")
    ns.start()
    try:
        yield ns
    finally:
        ns.stop()


def make_client(sim: NetScalerSimulator, bundle: Path, **kw) -> NitroClient:
    kw.setdefault("username", USER)
    kw.setdefault("password", PASSWORD)
    kw.setdefault("retry", RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01))
    return NitroClient(sim.url, verify=bundle, timeout=10, sleep=lambda s: None, **kw)


@pytest.fixture
def nitro(sim: NetScalerSimulator, bundle: Path):
    with make_client(sim, bundle) as client:
        yield client


@pytest.fixture(scope="module")
def leaf_ca() -> LocalCA:
    return LocalCA.create("Nitro Client Test Issuing")


def issue(ca: LocalCA, cn: str, sans: tuple[str, ...] = (), spec: KeySpec | None = None):
    key = generate_private_key(spec or KeySpec("ECDSA", curve="P-256"))
    cert = ca.issue_from_csr(build_csr(key, cn, [cn, *sans]))
    return cert, private_key_to_pem(key)


def nitro_requests(sim: NetScalerSimulator, path_part: str, method: str | None = None):
    return [r for r in sim.requests if path_part in r.path and (method is None or r.method == method)]


def install_leaf(nitro: NitroClient, ca: LocalCA, name: str, cn: str, sans: tuple[str, ...] = ()):
    cert, key = issue(ca, cn, sans)
    nitro.upload_file(f"{name}.crt", cert_to_pem(cert).encode())
    nitro.upload_file(f"{name}.key", key)
    nitro.add_certkey(name, f"{SSL}/{name}.crt", f"{SSL}/{name}.key")
    return cert


def install_ca(nitro: NitroClient, ca: LocalCA, name: str):
    nitro.upload_file(f"{name}.crt", cert_to_pem(ca.intermediate).encode())
    nitro.add_certkey(name, f"{SSL}/{name}.crt")


# ------------------------------------------------------------------------------------------ helpers


def test_encoders():
    assert encode_args({"filename": "a b.csr", "filelocation": "/nsconfig/ssl"}) == (
        "filename:a%20b.csr,filelocation:%2Fnsconfig%2Fssl"
    )
    assert encode_args({"snicert": True, "ca": False}) == "snicert:true,ca:false"
    assert encode_name("my cert") == "my%2520cert"
    assert encode_name("www_example-1.com") == "www_example-1.com"


# ------------------------------------------------------------------------------------------ sessions


def test_login_uses_session_cookie_and_logs_out(sim, bundle):
    with make_client(sim, bundle) as client:
        assert client.logged_in
        assert client.ha_info().state == "Standalone"
    logins = nitro_requests(sim, "/config/login", "POST")
    assert len(logins) == 1 and logins[0].status == 201
    gets = nitro_requests(sim, "/config/hanode", "GET")
    assert "NITRO_AUTH_TOKEN=" in gets[0].headers.get("cookie", "")
    assert "x-nitro-pass" not in gets[0].headers
    assert nitro_requests(sim, "/config/logout", "POST")
    assert not client.logged_in


def test_bad_password_names_host_and_user_not_password(sim, bundle):
    client = make_client(sim, bundle, password="Wr0ng-Secret!")
    with pytest.raises(NitroAuthError) as info:
        client.__enter__()
    err = info.value
    assert err.errorcode == 354 and err.status == 401
    text = str(err)
    assert "127.0.0.1" in text and USER in text and "354" in text
    assert "Wr0ng-Secret!" not in text and PASSWORD not in text


def test_relogin_once_on_444(sim, bundle, nitro):
    sim.add_fault(
        r"/config/hanode$",
        method="GET",
        status=401,
        json_body={
            "errorcode": 444,
            "message": "Session expired or killed. Please login again",
            "severity": "ERROR",
        },
    )
    assert nitro.ha_info().state == "Standalone"
    assert len(nitro_requests(sim, "/config/login", "POST")) == 2


def test_relogin_on_1027_then_gives_up_when_it_repeats(sim, bundle, nitro):
    body = {"errorcode": 1027, "message": "Not logged in or connection timed out", "severity": "ERROR"}
    sim.add_fault(r"/config/hanode$", method="GET", status=401, json_body=body, times=2)
    with pytest.raises(NitroAuthError) as info:
        nitro.ha_info()
    assert info.value.errorcode == 1027
    assert len(nitro_requests(sim, "/config/login", "POST")) == 2  # one re-login, not a loop


def test_relogin_switches_partition_again(sim, bundle):
    sim.add_partition("p1")
    with make_client(sim, bundle, partition="p1") as client:
        client.upload_file("inp1.txt", b"hello")
        sim.add_fault(
            r"/config/systemfile$",
            method="GET",
            status=401,
            json_body={"errorcode": 444, "message": "Session expired", "severity": "ERROR"},
        )
        assert "inp1.txt" in client.list_files()
    switches = [r for r in nitro_requests(sim, "/config/nspartition", "POST") if "Switch" in r.query]
    assert len(switches) == 2
    with make_client(sim, bundle) as default:
        assert "inp1.txt" not in default.list_files()


def test_a_relogin_whose_partition_switch_is_refused_fails_once_without_recursing(sim, bundle):
    sim.add_partition("p1")
    expired = {"errorcode": 444, "message": "Session expired", "severity": "ERROR"}
    with make_client(sim, bundle, partition="p1") as client:
        sim.add_fault(r"/config/systemfile$", method="GET", status=401, json_body=expired)
        sim.add_fault(r"/config/nspartition$", method="POST", status=401, json_body=expired, times=None)
        with pytest.raises(NitroAuthError) as info:
            client.list_files()
        assert "logging in again failed" in str(info.value)
        sim.clear_faults()
    assert len(nitro_requests(sim, "/config/login", "POST")) == 2  # the first login and one re-login


def test_unknown_partition(sim, bundle):
    with pytest.raises(NitroError) as info, make_client(sim, bundle, partition="nope"):
        pass
    assert info.value.errorcode == 2755


# ------------------------------------------------------------------------------------------ errors


def test_error_carries_nitro_fields(nitro):
    with pytest.raises(NitroError) as info:
        nitro.update_certkey("does-not-exist", f"{SSL}/x.crt", f"{SSL}/x.key", no_domain_check=False)
    err = info.value
    assert err.errorcode == 258 and err.status == 404
    assert "sslcertkey" in err.endpoint
    assert "258" in str(err) and "127.0.0.1" in str(err)


def test_empty_error_body_is_tolerated(sim, nitro):
    sim.add_fault(r"/config/hanode$", method="GET", status=500, body=b"", times=None)
    with pytest.raises(NitroError) as info:
        nitro.ha_info()
    assert info.value.status == 500 and info.value.errorcode is None
    assert "empty answer" in str(info.value)


def test_non_json_answer_is_an_error(sim, nitro):
    sim.add_fault(r"/config/hanode$", method="GET", status=200, body=b"<html>login</html>")
    with pytest.raises(NitroError, match="non-JSON"):
        nitro.ha_info()


def test_503_is_retried(sim, nitro):
    sim.add_fault(r"/config/hanode$", method="GET", status=503, body=b"")
    assert nitro.ha_info().state == "Standalone"
    assert len(nitro_requests(sim, "/config/hanode")) == 2


def test_599_is_not_retried(sim, nitro):
    sim.add_fault(
        r"/config/sslcertkey$",
        method="POST",
        status=599,
        json_body={"errorcode": 1536, "message": "Invalid certificate", "severity": "ERROR"},
    )
    with pytest.raises(NitroError) as info:
        nitro.add_certkey("x", f"{SSL}/x.crt")
    assert info.value.errorcode == 1536 and info.value.status == 599
    assert len(nitro_requests(sim, "/config/sslcertkey", "POST")) == 1


def test_connection_refused_is_a_nitro_error(bundle):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = NitroClient(
        f"https://127.0.0.1:{port}",
        username=USER,
        password=PASSWORD,
        verify=bundle,
        timeout=2,
        sleep=lambda s: None,
    )
    with pytest.raises(NitroError, match="cannot connect") as info:
        client.login()
    assert info.value.status is None


def test_a_refused_login_is_retried_since_nothing_was_sent(bundle):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    slept: list[float] = []
    client = NitroClient(
        f"https://127.0.0.1:{port}",
        username=USER,
        password=PASSWORD,
        verify=bundle,
        timeout=2,
        sleep=slept.append,
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01),
    )
    with pytest.raises(NitroError, match="cannot connect"):
        client.login()  # a POST: resent only because the connection was never made
    assert len(slept) == 2


def test_connect_errors_are_recognised_by_type_not_by_text():
    def wrapped(reason: BaseException) -> requests.exceptions.ConnectionError:
        return requests.exceptions.ConnectionError(MaxRetryError(None, "/nitro", reason))  # type: ignore[arg-type]

    # a refused connection in another locale's words, bare or inside urllib3's wrapper
    refused = ConnectionRefusedError(111, "Verbindung verweigert")
    assert _is_connect_error(requests.exceptions.ConnectionError(refused))
    assert _is_connect_error(wrapped(ConnectionRefusedError(111, "refus")))
    assert _is_connect_error(wrapped(socket.gaierror(-2, "Nom inconnu")))
    # the connection was made and then lost: the server may have acted
    assert not _is_connect_error(wrapped(ConnectionResetError(104, "Connection refused by peer")))
    assert not _is_connect_error(requests.exceptions.ConnectionError("Connection refused"))
    assert not _is_connect_error(requests.exceptions.ReadTimeout("NewConnectionError"))


def test_untrusted_tls_is_a_nitro_error(sim, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(LocalCA.create("Someone Else").bundle_pem())
    client = NitroClient(sim.url, username=USER, password=PASSWORD, verify=other, sleep=lambda s: None)
    with pytest.raises(NitroError, match="TLS verification failed"):
        client.login()


def test_save_retries_293_then_succeeds(sim, nitro):
    busy = {"errorcode": 293, "message": "Operation already in progress", "severity": "ERROR"}
    sim.add_fault(r"/config/nsconfig$", method="POST", status=599, json_body=busy, times=2)
    nitro.save_config()
    assert len(nitro_requests(sim, "/config/nsconfig", "POST")) == 3
    assert nitro.config_changed() is False


def test_save_293_is_bounded(sim, nitro):
    busy = {"errorcode": 293, "message": "Operation already in progress", "severity": "ERROR"}
    sim.add_fault(r"/config/nsconfig$", method="POST", status=599, json_body=busy, times=None)
    with pytest.raises(NitroError) as info:
        nitro.save_config()
    assert info.value.errorcode == 293
    assert len(nitro_requests(sim, "/config/nsconfig", "POST")) == 3


def test_trace_redacts_file_content_and_password(sim, bundle, caplog):
    key_pem = private_key_to_pem(generate_private_key(KeySpec("ECDSA", curve="P-256")))
    caplog.set_level(logging.DEBUG)
    with make_client(sim, bundle) as client:
        client.upload_file("secret.key", key_pem)
    text = caplog.text
    assert "systemfile" in text
    assert base64.b64encode(key_pem).decode()[:40] not in text
    assert PASSWORD not in text
    assert "NITRO_AUTH_TOKEN=##" not in text


# ------------------------------------------------------------------------------------------ system


def test_ha_and_config_changed(sim, nitro, leaf_ca):
    assert nitro.ha_info().state == "Standalone"
    nitro.save_config()
    assert nitro.config_changed() is False
    install_ca(nitro, leaf_ca, "issuer")
    assert nitro.config_changed() is True
    nitro.save_config()
    assert nitro.config_changed() is False


def test_ha_roles(sim, nitro):
    sim.set_ha("Primary", peer="127.0.0.2")
    info = nitro.ha_info()
    assert (info.state, info.peer_address) == ("Primary", "127.0.0.2")
    sim.set_ha("Secondary", peer="127.0.0.3")
    assert nitro.ha_info().state == "Secondary"


def test_local_secondary_without_a_peer_row_is_still_secondary(sim, nitro):
    # hanode lists only node 0, but that node says it is the Secondary: never treat it as standalone
    sim.set_ha("Secondary")
    info = nitro.ha_info()
    assert (info.state, info.raw_state) == ("Secondary", "Secondary")


# ------------------------------------------------------------------------------------------ files


def test_files_roundtrip(nitro):
    path = nitro.upload_file("a b.txt", b"\x00binary\xff")
    assert path == f"{SSL}/a b.txt"
    assert "a b.txt" in nitro.list_files()
    assert nitro.download_file("a b.txt") == b"\x00binary\xff"
    with pytest.raises(NitroError) as info:
        nitro.upload_file("a b.txt", b"again")
    assert info.value.errorcode == 1642 and info.value.status == 409
    nitro.delete_file("a b.txt")
    assert "a b.txt" not in nitro.list_files()
    with pytest.raises(NitroError):
        nitro.download_file("a b.txt")


def test_args_are_url_encoded(sim, nitro):
    nitro.upload_file("enc.txt", b"x")
    nitro.download_file("enc.txt", SSL)
    get = nitro_requests(sim, "/config/systemfile", "GET")[-1]
    assert "filelocation:%2Fnsconfig%2Fssl" in get.query
    assert "filename:enc.txt" in get.query


# ------------------------------------------------------------------------------------------ keys, CSRs


@pytest.mark.parametrize(
    "spec", [KeySpec("RSA", size=2048), KeySpec("ECDSA", curve="P-256"), KeySpec("ECDSA", curve="P-384")]
)
def test_key_and_csr_on_appliance(nitro, spec):
    keyfile = f"{SSL}/k-{spec.describe().replace(' ', '')}.key"
    if spec.algorithm == "RSA":
        nitro.create_rsa_key(keyfile, spec.size)
    else:
        nitro.create_ecdsa_key(keyfile, spec.curve)
    reqfile = keyfile.replace(".key", ".csr")
    subject = Subject(organization="Example Ltd", state="London", country="GB", locality="London")
    nitro.create_csr(
        reqfile,
        keyfile,
        common_name="www.example.com",
        sans=["www.example.com", "example.com"],
        subject=subject,
    )
    csr = load_csr(nitro.download_file(reqfile.rsplit("/", 1)[1]))
    cn, sans = csr_names(csr)
    assert cn == "www.example.com"
    assert sorted(sans) == ["example.com", "www.example.com"]
    pub = csr.public_key()
    assert getattr(pub, "key_size", None) in (2048, 256, 384)
    with pytest.raises(NitroError) as info:
        nitro.create_ecdsa_key(keyfile, "P-256")
    assert info.value.errorcode == 1642


# ------------------------------------------------------------------------------------------ certkeys


def test_certkey_lifecycle(sim, nitro, leaf_ca):
    install_ca(nitro, leaf_ca, "issuer")
    cert = install_leaf(nitro, leaf_ca, "www", "www.example.com", ("example.com",))
    ck = nitro.get_certkey("www")
    assert ck is not None
    assert ck.serial == normalize_serial(cert.serial_number)
    assert ck.cert == f"{SSL}/www.crt" and ck.key == f"{SSL}/www.key"
    assert ck.linkcertkeyname is None
    assert ck.not_after is not None
    assert abs((ck.not_after - cert.not_valid_after_utc).total_seconds()) < 2
    assert ck.status == "Valid"
    assert ck.days_to_expiration is not None and ck.days_to_expiration > 300
    assert "www.example.com" in ck.sandns and "example.com" in ck.sandns
    assert "www.example.com" in ck.subject
    assert nitro.get_certkey("missing") is None

    found = nitro.find_certkeys_by_serial(cert.serial_number)
    assert [c.name for c in found] == ["www"]
    ca_serial = leaf_ca.intermediate.serial_number
    assert [c.name for c in nitro.find_certkeys_by_serial(f"00{ca_serial:X}")] == ["issuer"]
    assert nitro.find_certkeys_by_serial(12345) == []
    assert {c.name for c in nitro.list_certkeys()} >= {"www", "issuer"}

    nitro.link_certkey("www", "issuer")
    assert nitro.get_certkey("www").linkcertkeyname == "issuer"
    assert sim.state()["links"] == {"www": "issuer"}
    nitro.unlink_certkey("www")
    assert nitro.get_certkey("www").linkcertkeyname is None
    with pytest.raises(NitroError) as info:
        nitro.unlink_certkey("www")
    assert info.value.errorcode == 1545

    # update in place with a new cert + key
    new_cert, new_key = issue(leaf_ca, "www.example.com", ("example.com",))
    nitro.upload_file("www-2.crt", cert_to_pem(new_cert).encode())
    nitro.upload_file("www-2.key", new_key)
    nitro.update_certkey("www", f"{SSL}/www-2.crt", f"{SSL}/www-2.key", no_domain_check=False)
    assert nitro.get_certkey("www").serial == normalize_serial(new_cert.serial_number)
    body = nitro_requests(sim, "/config/sslcertkey", "POST")[-1]
    assert "action=update" in body.query and "nodomaincheck" not in body.json()["sslcertkey"]

    # a domain change needs nodomaincheck
    other_cert, other_key = issue(leaf_ca, "other.example.net")
    nitro.upload_file("www-3.crt", cert_to_pem(other_cert).encode())
    nitro.upload_file("www-3.key", other_key)
    with pytest.raises(NitroError) as info:
        nitro.update_certkey("www", f"{SSL}/www-3.crt", f"{SSL}/www-3.key", no_domain_check=False)
    assert info.value.errorcode == 3585
    nitro.update_certkey("www", f"{SSL}/www-3.crt", f"{SSL}/www-3.key", no_domain_check=True)
    assert nitro.get_certkey("www").serial == normalize_serial(other_cert.serial_number)
    assert nitro_requests(sim, "/config/sslcertkey", "POST")[-1].json()["sslcertkey"]["nodomaincheck"] is True
    assert sim.state()["certkeys"]["www"]["cert"] == f"{SSL}/www-3.crt"


def test_duplicate_content_is_273(nitro, leaf_ca):
    install_ca(nitro, leaf_ca, "issuer")
    nitro.upload_file("issuer-copy.crt", cert_to_pem(leaf_ca.intermediate).encode())
    with pytest.raises(NitroError) as info:
        nitro.add_certkey("issuer2", f"{SSL}/issuer-copy.crt")
    assert info.value.errorcode == 273
    assert "issuer" in info.value.nitro_message


def test_certkey_name_with_space(sim, nitro, leaf_ca):
    install_leaf(nitro, leaf_ca, "my cert", "space.example.com")
    assert nitro.get_certkey("my cert") is not None
    nitro.bind_certkey("vs_lb", "my cert")
    assert nitro.certkey_vservers("my cert") == ["vs_lb"]
    assert nitro.certkey_bindings("my cert") == [Binding("vs_lb", "my cert")]
    gets = [r.path for r in sim.requests if r.method == "GET"]  # decoded once: the name went encoded twice
    assert "/nitro/v1/config/sslcertkey/my%20cert" in gets
    assert "/nitro/v1/config/sslcertkey_sslvserver_binding/my%20cert" in gets


# ------------------------------------------------------------------------------------------ vservers


def test_a_ca_binding_is_not_counted_as_serving(sim, nitro, leaf_ca):
    install_leaf(nitro, leaf_ca, "a", "a.example.com")
    sim.bind_certkey("vs_cs", "a", ca=True)  # bound for client authentication only
    nitro.bind_certkey("vs_lb", "a")
    assert nitro.certkey_vservers("a") == ["vs_lb"]


def test_vservers_and_bindings(sim, nitro, leaf_ca):
    vs = nitro.get_vserver("lb", "vs_lb")
    assert vs is not None and vs.kind == "lb" and vs.servicetype == "SSL" and vs.is_ssl
    assert vs.curstate == "DOWN"  # no certificate bound yet
    assert nitro.get_vserver("cs", "vs_cs").kind == "cs"
    assert nitro.get_vserver("lbvserver", "vs_cs") is None
    assert nitro.get_vserver("lb", "nope") is None
    assert not nitro.get_vserver("lb", "vs_http").is_ssl
    assert nitro.ssl_vserver_sni_enabled("vs_sni") is True
    assert nitro.ssl_vserver_sni_enabled("vs_lb") is False

    install_leaf(nitro, leaf_ca, "a", "a.example.com")
    install_leaf(nitro, leaf_ca, "b", "b.example.com")
    nitro.bind_certkey("vs_lb", "a")
    assert nitro.vserver_bindings("vs_lb") == [Binding("vs_lb", "a", sni=False, ca=False)]
    assert nitro.get_vserver("lb", "vs_lb").curstate == "UP"
    assert nitro.certkey_vservers("a") == ["vs_lb"]

    nitro.bind_certkey("vs_sni", "a", sni=True)
    nitro.bind_certkey("vs_sni", "b", sni=True)
    assert {(b.certkey, b.sni) for b in nitro.vserver_bindings("vs_sni")} == {("a", True), ("b", True)}
    binds = [r.json() for r in nitro_requests(sim, "/config/sslvserver_sslcertkey_binding", "PUT")]
    assert binds[-1] == {
        "sslvserver_sslcertkey_binding": {"vservername": "vs_sni", "certkeyname": "b", "snicert": True}
    }

    with pytest.raises(NitroError) as info:
        nitro.bind_certkey("vs_lb", "a", sni=True)  # SNI not enabled
    assert info.value.errorcode == 3627
    with pytest.raises(NitroError):
        nitro.bind_certkey("vs_http", "a")
    assert nitro.vserver_bindings("vs_cs") == []


def test_not_after_is_timezone_aware(nitro, leaf_ca):
    install_leaf(nitro, leaf_ca, "tz", "tz.example.com")
    ck = nitro.get_certkey("tz")
    assert ck.not_after is not None and ck.not_after.tzinfo is not None
    assert ck.not_after > datetime.now(timezone.utc)


def test_csr_helper_roundtrip_is_valid_pem(leaf_ca):
    # sanity for the helpers used above: the CA issues from our CSR
    key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    csr = build_csr(key, "x.example.com", ["x.example.com"])
    assert "BEGIN CERTIFICATE REQUEST" in csr_to_pem(csr)
    assert leaf_ca.issue_from_csr(csr).serial_number > 0
