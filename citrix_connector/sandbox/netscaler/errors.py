"""NITRO error answers: the appliance's error texts and the exception a handler raises."""

from __future__ import annotations

MESSAGES: dict[int, str] = {
    257: "Operation not permitted",
    258: "No such resource",
    273: "Resource already exists",
    278: "Invalid argument",
    293: "Operation already in progress",
    354: "Invalid username or password",
    444: "Session expired or killed. Please login again",
    461: "No such Vserver",
    1027: "Not logged in or connection timed out",
    1028: (
        "You are connected to a secondary node; configuration changes made in this session will not be "
        "propagated to, or saved on, other nodes"
    ),
    1090: "No such argument",
    1091: "Required argument value missing",
    1092: "Arguments cannot both be specified",
    1093: "Argument pre-requisite missing",
    1095: "Required argument missing",
    1097: "Invalid argument value",
    1106: "String length exceeds maximum",
    1232: "Invalid object name",
    1233: "Invalid JSON input",
    1234: "Invalid JSON data type",
    1237: "Invalid method name. It should be either post, put, get, stat or delete",
    1240: "Invalid nitro action or operation",
    1244: "Authentication Failed: Use of Basic Authentication is Disabled.",
    1536: "Invalid certificate",
    1537: "Invalid private key, or PEM pass phrase required for this private key",
    1538: "Certificate and private key do not match",
    1540: "Certificate does not exist",
    1541: (
        "Certificate is referenced by a CRL, OCSP responder, vserver, service, monitor, SSL profile, another "
        "certificate, or a policy expression using XML_ENCRYPT() or XML_DECRYPT()"
    ),
    1542: "Certificate binding does not exist",
    1543: "Certificate cant be linked to the same certificate",
    1544: "Objects protocol type is not SSL",
    1545: "Certificate does not have any CA link",
    1546: "Current certificate replaces the previous binding",
    1547: "Certificate is not a server certificate",
    1548: "Issuer certificate mismatch",
    1562: "Certificate with key size greater than RSA4096 or DSA2048 bits not supported",
    1587: "All incompatible CA links/Cert bindings were broken during the update operation",
    1613: "Password required for private key",
    1614: "Invalid password",
    1617: "Invalid public exponent value",
    1631: "No such certificate file exists",
    1632: "No such key file exists",
    1642: "Cannot create output file. File already exists",
    1645: "Output filepath should be under the partitions default SSL directory",
    1647: "Input file(s) not present or not accessible in current partition",
    1654: "Maximum allowed key size is 4096",
    2138: "Not authorized to execute this command",
    2755: "Partition does not exist",
    2772: "This configuration is allowed only from the default partition.",
    3441: "File not found",
    3585: (
        "Certificate is registered to a different domain; use the no domain checkoption to force the "
        "operation"
    ),
    3627: "SNI feature not enabled on the vserver/service",
    3628: "CommonName not present in certificate, it is must for a certificate to use for SNI",
    3629: "Trying to bind SNI certificate with duplicate CommonName, operation failed",
    3637: (
        "Some of the existing SNI cert bindings are broken due to presence of certificate with duplicate "
        "Common Name."
    ),
    3638: "All exitsing SNI Cert bindings are broken during update operation due to missing Common Name.",
}


class Fail(Exception):
    """A NITRO error answer: HTTP status + errorcode + message."""

    def __init__(self, status: int, code: int, detail: str | None = None, message: str | None = None) -> None:
        text = message if message is not None else MESSAGES.get(code, "Error")
        if detail:
            text = f"{text} [{detail}]"
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = text
