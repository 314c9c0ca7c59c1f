#!/usr/bin/env bash
# Makes development TLS material for authgate (never for production):
#
#   ca.pem, ca-key.pem                 server CA (what clients trust: curl --cacert)
#   server.pem, server-key.pem         localhost server certificate signed by the server CA
#                                      (SAN DNS:localhost, IP:127.0.0.1, IP:::1)
#   client-ca.pem, client-ca-key.pem   client CA ([server.tls] client_ca_file)
#   client.pem, client-key.pem         client certificate CN=demo-client,O=authgate-dev
#
# Usage: certs/make-dev-certs.sh [--force] [OUT_DIR]   (OUT_DIR defaults to certs/dev)
#
# Idempotent: files that exist and stay valid for 30 more days are kept; a missing or
# expiring CA is remade together with the certificates it signs. --force remakes everything.
# Keys are EC P-256 in PKCS#8 PEM, readable by their owner only.
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then
    force=1
    shift
fi
script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$script_dir/dev}"

command -v openssl >/dev/null || {
    echo "make-dev-certs: openssl is required" >&2
    exit 1
}

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ca_days=3650
leaf_days=825
# Remake anything that expires within this many seconds.
min_validity=$((30 * 24 * 3600))

made=()
kept=()

# usable CERT KEY: both exist, the certificate stays valid long enough, and they belong together.
usable() {
    local cert="$1" key="$2"
    [[ $force -eq 0 && -s "$cert" && -s "$key" ]] || return 1
    openssl x509 -in "$cert" -noout -checkend "$min_validity" >/dev/null 2>&1 || return 1
    [[ "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" == \
        "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]]
}

# signed_by CERT CA: CERT verifies under CA alone.
signed_by() {
    openssl verify -CAfile "$2" "$1" >/dev/null 2>&1
}

new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}

serial() {
    echo "0x$(openssl rand -hex 16)"
}

# make_ca NAME SUBJECT
make_ca() {
    local name="$1" subject="$2"
    new_key "$out/$name-key.pem"
    openssl req -x509 -new -sha256 -days "$ca_days" -set_serial "$(serial)" \
        -key "$out/$name-key.pem" -subj "$subject" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$out/$name.pem"
    made+=("$name.pem ($subject)")
}

# make_leaf NAME SUBJECT CA EXTENSIONS
make_leaf() {
    local name="$1" subject="$2" ca="$3" extensions="$4"
    new_key "$out/$name-key.pem"
    openssl req -new -sha256 -key "$out/$name-key.pem" -subj "$subject" -out "$work/$name.csr"
    printf '%s\n' "$extensions" >"$work/$name.ext"
    openssl x509 -req -sha256 -days "$leaf_days" -set_serial "$(serial)" \
        -in "$work/$name.csr" -CA "$out/$ca.pem" -CAkey "$out/$ca-key.pem" \
        -extfile "$work/$name.ext" -out "$out/$name.pem" 2>/dev/null
    made+=("$name.pem ($subject, signed by $ca.pem)")
}

server_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

client_ext='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

# Subjects are written least specific first, so the RFC 4514 form authgate forwards in
# X-Client-Cert-Subject reads most specific first: CN=demo-client,O=authgate-dev.
if usable "$out/ca.pem" "$out/ca-key.pem"; then
    kept+=(ca.pem)
else
    make_ca ca "/O=authgate-dev/CN=authgate dev server CA"
fi
if usable "$out/server.pem" "$out/server-key.pem" && signed_by "$out/server.pem" "$out/ca.pem"; then
    kept+=(server.pem)
else
    make_leaf server "/O=authgate-dev/CN=localhost" ca "$server_ext"
fi

if usable "$out/client-ca.pem" "$out/client-ca-key.pem"; then
    kept+=(client-ca.pem)
else
    make_ca client-ca "/O=authgate-dev/CN=authgate dev client CA"
fi
if usable "$out/client.pem" "$out/client-key.pem" &&
    signed_by "$out/client.pem" "$out/client-ca.pem"; then
    kept+=(client.pem)
else
    make_leaf client "/O=authgate-dev/CN=demo-client" client-ca "$client_ext"
fi

# Final check: every certificate verifies for its purpose.
openssl verify -CAfile "$out/ca.pem" -purpose sslserver "$out/server.pem" >/dev/null
openssl verify -CAfile "$out/client-ca.pem" -purpose sslclient "$out/client.pem" >/dev/null

thumbprint="$(openssl x509 -in "$out/client.pem" -outform DER |
    openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')"
sha256_hex="$(openssl x509 -in "$out/client.pem" -outform DER |
    openssl dgst -sha256 -r | cut -d' ' -f1)"

echo "authgate development certificates in $out"
for line in "${made[@]+"${made[@]}"}"; do
    echo "  made  $line"
done
for line in "${kept[@]+"${kept[@]}"}"; do
    echo "  kept  $line"
done
echo "client certificate:"
echo "  X-Client-Cert-Subject  $(openssl x509 -in "$out/client.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
echo "  X-Client-Cert-Sha256   $sha256_hex"
echo "  cnf.x5t#S256           $thumbprint"
