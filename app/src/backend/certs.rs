//! Registry of issued host certificates: who owns which serial, and which are revoked.
//!
//! Two checks guard the agent listener: the TLS client-certificate verifier calls the
//! in-memory [`CertRegistry::check`] at handshake (it must be sync and cheap), and every
//! request re-checks the database with [`authorize_serial`], so a revocation takes effect on
//! the next request even on a replica whose registry has not been refreshed yet.
//!
//! Serial format (one canonical form everywhere): lowercase hex, no separators, of the DER
//! INTEGER content bytes of the serial, exactly as x509-parser's `raw_serial()` returns them
//! ([`serial_hex_of_der`]). The CA issues 16-byte serials whose first byte is in 0x01..=0x7f,
//! so they are always 32 hex digits without a leading zero.

use std::collections::HashMap;
use std::sync::RwLock;

use sqlx::Row;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::audit::{self, Actor, Event};
use super::ca::IssuedCert;
use super::db::{Conn, Db};
use super::error::{BackendError, Result};

/// Canonical serial string of a DER certificate (see the module doc).
pub fn serial_hex_of_der(cert_der: &[u8]) -> Result<String> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| BackendError::Crypto(format!("certificate: {e}")))?;
    Ok(hex::encode(cert.raw_serial()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CertStatus {
    host_id: String,
    not_after: i64,
    revoked: bool,
}

/// In-memory view of the `certificates` table, read by the TLS verifier.
#[derive(Debug, Default)]
pub struct CertRegistry {
    certs: RwLock<HashMap<String, CertStatus>>,
}

async fn load_map(db: &Db) -> Result<HashMap<String, CertStatus>> {
    // Certificates of deleted hosts are gone with the host (ON DELETE CASCADE).
    let rows =
        sqlx::query("SELECT serial, host_id, not_after, revoked_at FROM certificates").fetch_all(&db.pool).await?;
    let mut map = HashMap::with_capacity(rows.len());
    for r in rows {
        let revoked_at: Option<i64> = r.try_get("revoked_at")?;
        map.insert(
            r.try_get::<String, _>("serial")?,
            CertStatus {
                host_id: r.try_get("host_id")?,
                not_after: r.try_get("not_after")?,
                revoked: revoked_at.is_some(),
            },
        );
    }
    Ok(map)
}

impl CertRegistry {
    pub async fn load(db: &Db) -> Result<CertRegistry> {
        Ok(CertRegistry { certs: RwLock::new(load_map(db).await?) })
    }

    /// Replaces the whole view with the database's (other replicas may have issued or
    /// revoked certificates).
    pub async fn refresh(&self, db: &Db) -> Result<()> {
        let map = load_map(db).await?;
        *self.certs.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// `Some(host_id)` when the serial is known, not revoked and not expired at `now`.
    pub fn check(&self, serial_hex: &str, now: i64) -> Option<String> {
        let certs = self.certs.read().unwrap_or_else(|p| p.into_inner());
        certs.get(serial_hex).filter(|c| !c.revoked && c.not_after > now).map(|c| c.host_id.clone())
    }

    pub fn insert(&self, serial_hex: &str, host_id: &str, not_after: i64) {
        self.certs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(serial_hex.to_string(), CertStatus { host_id: host_id.to_string(), not_after, revoked: false });
    }

    pub fn mark_revoked(&self, serial_hex: &str) {
        if let Some(c) = self.certs.write().unwrap_or_else(|p| p.into_inner()).get_mut(serial_hex) {
            c.revoked = true;
        }
    }
}

/// Stores a freshly issued certificate (caller's transaction; the host row must exist).
pub async fn record_issued(conn: &mut Conn, cert: &IssuedCert, host_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO certificates (serial, host_id, not_before, not_after, issued_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&cert.serial_hex)
    .bind(host_id)
    .bind(cert.not_before)
    .bind(cert.not_after)
    // Issue time is the signing time: not_before is back-dated by the CA.
    .bind(cert.not_before + super::ca::BACKDATE_SECS)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Per-request re-check of the presented certificate: `Ok(host_id)` when the serial is known,
/// not revoked, inside its validity and its host still exists; `Unauthorized` otherwise.
pub async fn authorize_serial(db: &Db, serial_hex: &str, now: i64) -> Result<String> {
    let row = sqlx::query(
        "SELECT c.host_id FROM certificates c JOIN hosts h ON h.id = c.host_id \
         WHERE c.serial = $1 AND c.revoked_at IS NULL AND c.not_before <= $2 AND c.not_after > $2",
    )
    .bind(serial_hex)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(r) => Ok(r.try_get("host_id")?),
        None => Err(BackendError::Unauthorized("certificate_invalid")),
    }
}

/// Revokes a certificate (audited `cert.revoke`) and updates the in-memory registry after
/// the commit. `NotFound` for an unknown serial, `Conflict("already_revoked")` if revoked.
#[tracing::instrument(skip_all, fields(serial = %serial_hex))]
pub async fn revoke(db: &Db, registry: &CertRegistry, actor: &Actor, serial_hex: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let row = sqlx::query("SELECT host_id FROM certificates WHERE serial = $1")
        .bind(serial_hex)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(BackendError::NotFound)?;
    let host_id: String = row.try_get("host_id")?;
    revoke_in(&mut tx, actor, serial_hex, &host_id, now).await?;
    tx.commit().await?;
    registry.mark_revoked(serial_hex);
    Ok(())
}

/// Marks one certificate revoked and writes its `cert.revoke` audit row (caller's
/// transaction). `Conflict("already_revoked")` when it was revoked already.
async fn revoke_in(conn: &mut Conn, actor: &Actor, serial_hex: &str, host_id: &str, now: i64) -> Result<()> {
    let updated =
        sqlx::query("UPDATE certificates SET revoked_at = $1, revoked_by = $2 WHERE serial = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(actor.label())
            .bind(serial_hex)
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() != 1 {
        return Err(BackendError::Conflict("already_revoked"));
    }
    let target = format!("cert:{serial_hex}");
    let event = Event {
        actor,
        action: "cert.revoke",
        target: &target,
        source_ip: None,
        details: serde_json::json!({ "host_id": host_id }),
    };
    audit::append(conn, event, now).await?;
    Ok(())
}

/// Revokes every certificate of a host the caller may see (`scope`): the host can no longer
/// check in until it is enrolled again with a new token. One audited `cert.revoke` row per
/// certificate, all in one transaction; the registry learns after the commit. `NotFound` for
/// a host outside the scope (as for a missing one), `Conflict("already_revoked")` when it
/// has no valid certificate left. Returns the revoked serials.
#[tracing::instrument(skip_all, fields(host_id = %host_id))]
pub async fn revoke_host(
    db: &Db,
    registry: &CertRegistry,
    actor: &Actor,
    scope: &super::access::Scope,
    host_id: &str,
    now: i64,
) -> Result<Vec<String>> {
    let mut tx = db.begin().await?;
    scope.check_host(&mut tx, host_id).await?;
    let rows = sqlx::query("SELECT serial FROM certificates WHERE host_id = $1 AND revoked_at IS NULL ORDER BY serial")
        .bind(host_id)
        .fetch_all(&mut *tx)
        .await?;
    let serials = rows.iter().map(|r| r.try_get::<String, _>("serial")).collect::<std::result::Result<Vec<_>, _>>()?;
    if serials.is_empty() {
        return Err(BackendError::Conflict("already_revoked"));
    }
    for serial in &serials {
        revoke_in(&mut tx, actor, serial, host_id, now).await?;
    }
    tx.commit().await?;
    for serial in &serials {
        registry.mark_revoked(serial);
    }
    Ok(serials)
}

/// Latest certificate of a host that is not revoked: `(serial, not_after)`.
pub async fn current_for_host(db: &Db, host_id: &str) -> Result<Option<(String, i64)>> {
    let row = sqlx::query(
        "SELECT serial, not_after FROM certificates WHERE host_id = $1 AND revoked_at IS NULL \
         ORDER BY issued_at DESC, not_after DESC LIMIT 1",
    )
    .bind(host_id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("serial")?, r.try_get("not_after")?))).transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::backend::testkit;

    #[tokio::test]
    async fn registry_authorize_and_revoke() {
        let t = testkit::test_db().await;
        let db = &t.db;
        let now = 1_800_000_000;
        sqlx::query("INSERT INTO hosts (id, hostname, enrolled_at) VALUES ('h1', 'one', $1)")
            .bind(now)
            .execute(&db.pool)
            .await
            .unwrap();
        let cert = IssuedCert {
            cert_pem: String::new(),
            serial_hex: "7a01".into(),
            not_before: now - 300,
            not_after: now + 1000,
        };
        let mut tx = db.begin().await.unwrap();
        record_issued(&mut tx, &cert, "h1").await.unwrap();
        tx.commit().await.unwrap();

        let reg = CertRegistry::load(db).await.unwrap();
        assert_eq!(reg.check("7a01", now).as_deref(), Some("h1"));
        assert_eq!(reg.check("7a01", now + 1000), None, "expired");
        assert_eq!(reg.check("7a02", now), None, "unknown");
        assert_eq!(authorize_serial(db, "7a01", now).await.unwrap(), "h1");
        assert!(matches!(authorize_serial(db, "7a01", now + 2000).await, Err(BackendError::Unauthorized(_))));
        assert!(matches!(authorize_serial(db, "nope", now).await, Err(BackendError::Unauthorized(_))));
        assert_eq!(current_for_host(db, "h1").await.unwrap(), Some(("7a01".to_string(), now + 1000)));

        let admin = Actor::User { id: "u1".into(), username: "admin".into() };
        revoke(db, &reg, &admin, "7a01", now + 10).await.unwrap();
        assert_eq!(reg.check("7a01", now), None);
        assert!(matches!(authorize_serial(db, "7a01", now).await, Err(BackendError::Unauthorized(_))));
        assert!(matches!(revoke(db, &reg, &admin, "7a01", now).await, Err(BackendError::Conflict("already_revoked"))));
        assert!(matches!(revoke(db, &reg, &admin, "beef", now).await, Err(BackendError::NotFound)));

        // A second registry (another replica) sees the revocation after refresh.
        let other = CertRegistry::default();
        other.insert("7a01", "h1", now + 1000);
        assert!(other.check("7a01", now).is_some());
        other.refresh(db).await.unwrap();
        assert_eq!(other.check("7a01", now), None);

        let rows = audit::list_by_action(db, "cert.revoke").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].target, "cert:7a01");
        assert_eq!(rows[0].actor, "user:admin");
        assert_eq!(audit::verify(db).await.unwrap().first_bad_seq, None);

        // Deleting the host removes its certificates.
        sqlx::query("DELETE FROM hosts WHERE id = 'h1'").execute(&db.pool).await.unwrap();
        reg.refresh(db).await.unwrap();
        assert_eq!(current_for_host(db, "h1").await.unwrap(), None);
        t.cleanup().await;
    }
}
