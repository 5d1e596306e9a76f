-- JWT signing keys, shared by every replica on this database (see sessions/keys.rs).
-- pkcs8: base64 of the Ed25519 PKCS#8 document. A key signs from activates_at until the next
-- key activates (its retired_at) and still verifies for 24 h after that.
CREATE TABLE jwt_keys (
    kid TEXT PRIMARY KEY,
    pkcs8 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activates_at BIGINT NOT NULL,
    retired_at BIGINT
);
