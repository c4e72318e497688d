#!/usr/bin/env bash
# Generate the TLS test PKI into DIR (created if missing) with the openssl CLI:
#   ca.crt/.key            test CA (EC P-256)
#   server.crt/.key        RSA 2048 server cert for localhost and 127.0.0.1
#                          (RSA so that a misconfigured server could still
#                          agree on RSA key exchange: the cipher tests need it)
#   server2.crt/.key       a second server cert (CN localhost-2) for reload tests
#   client.crt/.key        SAN URI spiffe://test.example/agent/a, by ca
#   dns-client.crt/.key    SAN DNS agent-b.test.example only, by ca
#   cn-client.crt/.key     subject CN cn-only-agent, no SAN, by ca
#   cnuri-client.crt/.key  subject CN spiffe:agent-x (a name shaped like a
#                          URI), no SAN, by ca
#   other-ca.crt/.key      a second, unrelated CA
#   other-client.crt/.key  SAN URI spiffe://test.example/agent/a, by other-ca
# All keys are mode 0600. Validity: CERT_DAYS (default 30; tests generate
# fresh ones). Server certs name a CRL distribution point in a reserved
# domain (never fetched): a scanner rates a certificate without any
# revocation pointer as a finding, and that is about the certificate, not
# about the TLS settings under test.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
OPENSSL=${OPENSSL:-openssl}
DAYS=${CERT_DAYS:-30}

ec_key() { "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { "$OPENSSL" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# make_ca NAME CN
make_ca() {
	ec_key "$1.key"
	"$OPENSSL" req -x509 -new -key "$1.key" -sha256 -days "$DAYS" \
		-subj "/O=Portcullis Test/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:1" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$1.crt" 2>/dev/null
}

# make_leaf NAME KEYTYPE CA CN EXTENSIONS...
make_leaf() {
	local name=$1 kt=$2 ca=$3 cn=$4
	shift 4
	"${kt}_key" "$name.key"
	local ext
	ext=$(mktemp)
	printf '%s\n' "$@" >"$ext"
	"$OPENSSL" req -new -key "$name.key" -subj "/O=Portcullis Test/CN=$cn" \
		-out "$name.csr" 2>/dev/null
	"$OPENSSL" x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" \
		-CAcreateserial -CAserial "$ca.srl" -sha256 -days "$DAYS" \
		-extfile "$ext" -out "$name.crt" 2>/dev/null
	rm -f "$name.csr" "$ext"
}

SERVER_EXT=("basicConstraints=critical,CA:FALSE"
	"keyUsage=critical,digitalSignature,keyEncipherment"
	"extendedKeyUsage=serverAuth"
	"subjectAltName=DNS:localhost,IP:127.0.0.1"
	"crlDistributionPoints=URI:http://crl.test.example/portcullis-test-ca.crl")
CLIENT_BASE=("basicConstraints=critical,CA:FALSE"
	"keyUsage=critical,digitalSignature"
	"extendedKeyUsage=clientAuth")

make_ca ca "Portcullis Test CA"
make_ca other-ca "Unrelated Test CA"
make_leaf server rsa ca localhost "${SERVER_EXT[@]}"
make_leaf server2 rsa ca localhost-2 "${SERVER_EXT[@]}"
make_leaf client ec ca agent-a "${CLIENT_BASE[@]}" \
	"subjectAltName=URI:spiffe://test.example/agent/a,DNS:agent-a.test.example"
make_leaf dns-client ec ca agent-b "${CLIENT_BASE[@]}" \
	"subjectAltName=DNS:agent-b.test.example"
make_leaf cn-client ec ca cn-only-agent "${CLIENT_BASE[@]}"
make_leaf cnuri-client ec ca spiffe:agent-x "${CLIENT_BASE[@]}"
make_leaf other-client ec other-ca agent-a "${CLIENT_BASE[@]}" \
	"subjectAltName=URI:spiffe://test.example/agent/a"
chmod 600 ./*.key
chmod 644 ./*.crt
