"""The JWS algorithms idp signs with. A module with no imports, so that the command line
(`idp keys rotate --alg`) can offer them without loading the key service."""

ALGORITHMS = ("ES256", "EdDSA")
DEFAULT_ALGORITHM = "ES256"
