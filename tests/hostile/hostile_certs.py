"""Certificates for the hostile servers of tests/hostile/, minted with python3-cryptography.

A throw-away CA (`Pki.ca_file`), and server certificates that chain to it: a plain leaf
for any names (`Pki.leaf`), or a leaf behind a chain of N intermediates
(`Pki.long_chain`), so that a hostile MX can present a 100-certificate chain that a
verifier must refuse (OpenSSL's default depth limit is 100; ours may be smaller) and
that costs bounded time and memory to refuse.
"""
import datetime
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca, names=()):
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(_NOW - datetime.timedelta(days=1))
         .not_valid_after(_NOW + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


class Pki:
    """A CA named `name` in `directory`; its certificate is `ca_file`. Two Pki of one
    name are two CAs a verifier can mistake for each other (same subject, other key)."""

    def __init__(self, directory, name="ststest hostile CA"):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = _cert(name, self.key, name, self.key, True)
        self.ca_file = self.dir / "ca.pem"
        self.ca_file.write_bytes(_pem_cert(self.cert))

    def _write(self, stem, certs, key):
        chain, keyfile = self.dir / f"{stem}.pem", self.dir / f"{stem}.key"
        chain.write_bytes(b"".join(_pem_cert(c) for c in certs))
        keyfile.write_bytes(_pem_key(key))
        return str(chain), str(keyfile)

    def leaf(self, stem, names):
        """(chain file, key file) of a leaf for `names`, signed by the CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self._write(stem, [_cert(names[0], key, self.name, self.key, False, names)],
                           key)

    def long_chain(self, stem, names, intermediates):
        """(chain file, key file): leaf, then `intermediates` CA certificates, each signed
        by the next, the last by the CA; all of them in the file the server sends."""
        issuer_name, issuer_key = self.name, self.key
        cas = []
        for i in range(intermediates):
            k = ec.generate_private_key(ec.SECP256R1())
            subject = f"intermediate {intermediates - i}"
            cas.append(_cert(subject, k, issuer_name, issuer_key, True))
            issuer_name, issuer_key = subject, k
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = _cert(names[0], key, issuer_name, issuer_key, False, names)
        return self._write(stem, [leaf, *reversed(cas)], key)
