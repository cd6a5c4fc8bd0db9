#!/bin/sh
# Regenerates the test PKI used by proxy/tests/tls_*.rs. Run from this directory:
#   cd proxy/tests/data/tls && ./generate.sh
# Needs openssl 3. Keys are ECDSA P-256 in PKCS#8; leaves carry only a SPIFFE URI SAN, as
# Istio's workload certificates do. Validity is 100 years so the files never expire in CI.
set -eu

DAYS=36500
TD=cluster.local

ca() { # name subject
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1-key.pem" -out "$1.pem" -days "$DAYS" -subj "/O=weft-test/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

leaf() { # dir ca spiffe-id
  mkdir -p "$1"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1/key.tmp" -out "$1/csr.pem" -subj "/O=weft-test" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$1/key.tmp" -out "$1/key.pem"
  cat > "$1/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=critical,URI:$3
EXT
  openssl x509 -req -in "$1/csr.pem" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial \
    -days "$DAYS" -extfile "$1/ext.cnf" -out "$1/cert-chain.pem" 2>/dev/null
  cp "$2.pem" "$1/root-cert.pem"
  rm -f "$1/key.tmp" "$1/csr.pem" "$1/ext.cnf"
}

ca root-a "Weft test root A"
ca root-b "Weft test root B (untrusted)"
leaf server root-a "spiffe://$TD/ns/default/sa/server"
leaf server-rotated root-a "spiffe://$TD/ns/default/sa/server"
leaf client root-a "spiffe://$TD/ns/default/sa/client"
leaf rogue root-b "spiffe://$TD/ns/default/sa/server"
rm -f root-a-key.pem root-b-key.pem ./*.srl
