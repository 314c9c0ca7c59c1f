#!/usr/bin/env python3
"""Makes the JWKS and the tokens for the load test, with the Python standard library only.

Usage: tokens.py WORKDIR ISSUER AUDIENCE COUNT

Reads WORKDIR/privkey.pem (RSA, made by `openssl genpkey`) through `openssl rsa -text` and
writes into WORKDIR:
  jwks.json              the public key as a JWKS (kid "load-1", alg RS256) for authgate
  signing-input.txt      header.payload of the main token, for `openssl dgst -sha256 -sign`
  token-noscope.txt      a valid token without the orders:read scope (-> 403)
  token-badsig.txt       the main token's signature on a changed payload (-> 401)
  tokens.txt             COUNT valid tokens, distinct `sub` and `jti`, one per line
The main token itself is signed by run.sh with `openssl dgst -sha256 -sign`. The other tokens
are signed here, through the system's libcrypto via ctypes (10,000 `openssl` processes would
take minutes), or in pure Python when libcrypto cannot be loaded. RSASSA-PKCS1-v1_5 with SHA-256
is deterministic, so run.sh checks that this signer's signature over signing-input.txt is byte
for byte the one `openssl dgst` made, and verifies a sample of tokens.txt with
`openssl dgst -verify`.
"""

import base64
import ctypes
import ctypes.util
import hashlib
import json
import re
import subprocess
import sys
import time

# DER prefix of DigestInfo for SHA-256 (RFC 8017 9.2, note 1).
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def int_to_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rsa_numbers(pem_path: str) -> dict:
    """The private key's integers, parsed from `openssl rsa -noout -text`."""
    text = subprocess.run(
        ["openssl", "rsa", "-in", pem_path, "-noout", "-text"],
        check=True, capture_output=True, text=True,
    ).stdout
    numbers = {}
    current = None
    hex_digits = ""
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s*(.*)$", line)
        if match:
            if current:
                numbers[current] = int(hex_digits.replace(":", ""), 16)
            name, rest = match.groups()
            current, hex_digits = None, ""
            if name == "publicExponent":
                numbers["e"] = int(rest.split()[0])
            elif name in ("modulus", "privateExponent", "prime1", "prime2",
                          "exponent1", "exponent2", "coefficient"):
                current = name
        elif current:
            hex_digits += line.strip()
    if current:
        numbers[current] = int(hex_digits.replace(":", ""), 16)
    return numbers


class LibcryptoSigner:
    """RS256 through libcrypto's EVP_DigestSign (OpenSSL 1.1.1 or 3), via ctypes."""

    def __init__(self, pem: bytes):
        name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
        lib = ctypes.CDLL(name)
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.BIO_new_mem_buf.restype = vp
        lib.BIO_new_mem_buf.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.BIO_free.argtypes = [vp]
        lib.PEM_read_bio_PrivateKey.restype = vp
        lib.PEM_read_bio_PrivateKey.argtypes = [vp, vp, vp, vp]
        lib.EVP_MD_CTX_new.restype = vp
        lib.EVP_MD_CTX_free.argtypes = [vp]
        lib.EVP_MD_CTX_reset.argtypes = [vp]
        lib.EVP_sha256.restype = vp
        lib.EVP_DigestSignInit.argtypes = [vp, vp, vp, vp, vp]
        lib.EVP_DigestSign.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(sz),
                                       ctypes.c_char_p, sz]
        bio = lib.BIO_new_mem_buf(pem, len(pem))
        self.key = lib.PEM_read_bio_PrivateKey(bio, None, None, None)
        lib.BIO_free(bio)
        if not self.key:
            raise OSError("libcrypto could not read the private key")
        self.lib, self.ctx, self.md = lib, lib.EVP_MD_CTX_new(), lib.EVP_sha256()

    def sign(self, message: bytes) -> bytes:
        lib = self.lib
        lib.EVP_MD_CTX_reset(self.ctx)
        if lib.EVP_DigestSignInit(self.ctx, None, self.md, None, self.key) != 1:
            raise OSError("EVP_DigestSignInit failed")
        signature = ctypes.create_string_buffer(1024)
        length = ctypes.c_size_t(len(signature))
        if lib.EVP_DigestSign(self.ctx, signature, ctypes.byref(length),
                              message, len(message)) != 1:
            raise OSError("EVP_DigestSign failed")
        return signature.raw[:length.value]


class PythonSigner:
    """RS256 with the CRT in pure CPython: a few ms per token, the fallback."""

    def __init__(self, numbers: dict):
        self.n = numbers["modulus"]
        self.p, self.q = numbers["prime1"], numbers["prime2"]
        self.dp, self.dq = numbers["exponent1"], numbers["exponent2"]
        self.qinv = numbers["coefficient"]
        self.k = (self.n.bit_length() + 7) // 8

    def sign(self, message: bytes) -> bytes:
        t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        em = b"\x00\x01" + b"\xff" * (self.k - len(t) - 3) + b"\x00" + t
        m = int.from_bytes(em, "big")
        s1 = pow(m, self.dp, self.p)
        s2 = pow(m, self.dq, self.q)
        h = (self.qinv * (s1 - s2)) % self.p
        return (s2 + h * self.q).to_bytes(self.k, "big")


def signing_input(claims: dict, kid: str) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    compact = lambda value: json.dumps(value, separators=(",", ":")).encode()
    return b64url(compact(header)) + "." + b64url(compact(claims))


def main() -> None:
    work, issuer, audience, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    numbers = rsa_numbers(f"{work}/privkey.pem")
    try:
        with open(f"{work}/privkey.pem", "rb") as f:
            signer = LibcryptoSigner(f.read())
    except (OSError, AttributeError) as error:
        print(f"tokens.py: libcrypto unusable ({error}); signing in pure Python (slow)",
              file=sys.stderr)
        signer = PythonSigner(numbers)
    modulus = numbers["modulus"]
    kid = "load-1"
    now = int(time.time())
    # Long enough for any run; iat a minute back so a skewed clock does not matter.
    base = {
        "iss": issuer,
        "aud": audience,
        "client_id": "load-client",
        "iat": now - 60,
        "exp": now + 6 * 3600,
    }

    jwks = {"keys": [{
        "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
        "n": int_to_b64url(modulus), "e": int_to_b64url(numbers["e"]),
    }]}
    with open(f"{work}/jwks.json", "w") as f:
        json.dump(jwks, f)

    def token(claims: dict) -> str:
        data = signing_input(claims, kid)
        return data + "." + b64url(signer.sign(data.encode()))

    main_claims = dict(base, sub="svc-load", jti="load-main", scope="orders:read orders:write")
    main_input = signing_input(main_claims, kid)
    with open(f"{work}/signing-input.txt", "w") as f:
        f.write(main_input)
    with open(f"{work}/python-signature.bin", "wb") as f:
        f.write(signer.sign(main_input.encode()))

    with open(f"{work}/token-noscope.txt", "w") as f:
        f.write(token(dict(base, sub="svc-load", jti="load-noscope", scope="profile")) + "\n")

    # A valid signature over other claims: the payload says another subject.
    forged_input = signing_input(dict(main_claims, sub="admin"), kid)
    good_signature = b64url(signer.sign(main_input.encode()))
    with open(f"{work}/token-badsig.txt", "w") as f:
        f.write(forged_input + "." + good_signature + "\n")

    with open(f"{work}/tokens.txt", "w") as f:
        for i in range(count):
            claims = dict(base, sub=f"svc-{i:05d}", jti=f"load-{i:08d}",
                          scope="orders:read orders:write")
            f.write(token(claims) + "\n")


if __name__ == "__main__":
    main()
