"""Regenerates jwks.json from the test keys in this directory (run: python3 make_jwks.py)."""
import base64, json, re, subprocess

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def rsa_jwk(path: str, kid: str) -> dict:
    text = subprocess.run(["openssl", "rsa", "-in", path, "-noout", "-modulus"], capture_output=True, text=True, check=True).stdout
    modulus = bytes.fromhex(text.strip().split("=", 1)[1])
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(modulus), "e": b64((65537).to_bytes(3, "big"))}

def ec_jwk(path: str, kid: str) -> dict:
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"], capture_output=True, check=True).stdout
    point = der[-65:]
    assert point[0] == 4
    return {"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(point[1:33]), "y": b64(point[33:])}

jwks = {"keys": [rsa_jwk("rsa.pem", "rsa-1"), ec_jwk("ec.pem", "ec-1")]}
with open("jwks.json", "w") as out:
    json.dump(jwks, out, indent=2)
    out.write("\n")
