//! One-time enrollment tokens and host enrollment (CSR in, client certificate out).
//!
//! Tokens are `pmet_` + 32 random bytes (base64url, no padding); only their SHA-256 (hex) is
//! stored. A token is consumed by one conditional `UPDATE ... WHERE used_at IS NULL AND
//! expires_at > now RETURNING id` inside the enrollment transaction, so of several concurrent
//! uses exactly one wins (PostgreSQL re-checks the predicate after the row lock; SQLite
//! serialises writers).
//!
//! Ordering in [`enroll`]: validate the input and sign the CSR first (a malformed CSR never
//! touches the token), then in ONE transaction consume the token, create the host, record the
//! certificate and write the audit rows; the registry learns the serial after the commit.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use agent::proto::{EnrollRequest, EnrollResponse};

use super::audit::{self, Actor, Event};
use super::certs;
use super::groups;
use super::db::{new_id, Db};
use super::error::{BackendError, Result};
use super::state::AppState;
use crate::api::dto::{EnrollTokenInfo, NewEnrollToken};

pub const TOKEN_PREFIX: &str = "pmet_";
const MAX_TOKEN_CHARS: usize = 200;
const MAX_CSR_BYTES: usize = 16 * 1024;
const MAX_HOSTNAME_CHARS: usize = 253;
const MAX_NOTE_CHARS: usize = 200;

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates a one-time token (audited `enroll_token.create`; the token itself is never logged).
/// `ttl_secs` defaults to the configured default and must not exceed the configured maximum.
#[tracing::instrument(skip_all, fields(actor = %actor.label()))]
pub async fn create_token(
    state: &AppState,
    actor: &Actor,
    note: &str,
    ttl_secs: Option<i64>,
    group_id: Option<&str>,
    now: i64,
) -> Result<NewEnrollToken> {
    let max = state.settings.enroll_token_max_ttl_secs;
    let ttl = ttl_secs.unwrap_or(state.settings.enroll_token_default_ttl_secs);
    if ttl < 60 || ttl > max {
        return Err(BackendError::Invalid(format!("ttl must be between 60 and {max} seconds")));
    }
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(BackendError::Invalid(format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    if note.chars().any(char::is_control) {
        return Err(BackendError::Invalid("note must not contain control characters".into()));
    }
    let mut tx = state.db.begin().await?;
    let group_name = match group_id {
        Some(g) => {
            let row = sqlx::query("SELECT name FROM host_groups WHERE id = $1").bind(g).fetch_optional(&mut *tx).await?;
            Some(row.ok_or_else(|| BackendError::Invalid("unknown group".into()))?.try_get::<String, _>("name")?)
        }
        None => None,
    };
    let token = new_token();
    let info = EnrollTokenInfo {
        id: new_id(),
        note: note.to_string(),
        created_by: actor.label(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
        used_by_host: None,
        group_name,
    };
    sqlx::query(
        "INSERT INTO enroll_tokens (id, token_hash, note, created_by, created_at, expires_at, group_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&info.id)
    .bind(hash_token(&token))
    .bind(&info.note)
    .bind(&info.created_by)
    .bind(info.created_at)
    .bind(info.expires_at)
    .bind(group_id)
    .execute(&mut *tx)
    .await?;
    let target = format!("enroll_token:{}", info.id);
    audit::append(
        &mut tx,
        Event {
            actor,
            action: "enroll_token.create",
            target: &target,
            source_ip: None,
            details: serde_json::json!({ "note": info.note, "expires_at": info.expires_at, "group": group_id }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let ca_fingerprint = state.ca.fingerprint();
    let agent_command = format!(
        "pm-agent enroll --server {} --token {token} --ca-fingerprint {ca_fingerprint}",
        state.settings.public_url
    );
    Ok(NewEnrollToken { info, token, ca_fingerprint, agent_command })
}

/// Newest first (at most 500).
pub async fn list_tokens(db: &Db, _now: i64) -> Result<Vec<EnrollTokenInfo>> {
    let rows = sqlx::query(
        "SELECT t.id, t.note, t.created_by, t.created_at, t.expires_at, t.used_at, t.used_by_host, g.name AS group_name \
         FROM enroll_tokens t LEFT JOIN host_groups g ON g.id = t.group_id ORDER BY t.created_at DESC, t.id LIMIT 500",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EnrollTokenInfo {
                id: r.try_get("id")?,
                note: r.try_get("note")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                used_by_host: r.try_get("used_by_host")?,
                group_name: r.try_get("group_name")?,
            })
        })
        .collect()
}

fn validate(req: &EnrollRequest) -> Result<()> {
    if req.token.is_empty() || req.token.len() > MAX_TOKEN_CHARS {
        return Err(BackendError::Invalid(format!("token must be 1 to {MAX_TOKEN_CHARS} characters")));
    }
    if req.csr_pem.len() > MAX_CSR_BYTES {
        return Err(BackendError::Invalid("CSR is too large (at most 16 KiB)".into()));
    }
    let h = &req.hostname;
    if h.is_empty() || h.len() > MAX_HOSTNAME_CHARS {
        return Err(BackendError::Invalid(format!("hostname must be 1 to {MAX_HOSTNAME_CHARS} characters")));
    }
    if !h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) || h.starts_with(['.', '-']) {
        return Err(BackendError::Invalid(
            "hostname may contain only letters, digits, '.', '-' and '_' and must not start with '.' or '-'".into(),
        ));
    }
    Ok(())
}

/// Why a token did not work, for the audit row only (the client always gets `token_invalid`).
async fn failure_reason(db: &Db, token_hash: &str, now: i64) -> Result<&'static str> {
    let row = sqlx::query("SELECT used_at, expires_at FROM enroll_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        None => "unknown",
        Some(r) if r.try_get::<Option<i64>, _>("used_at")?.is_some() => "used",
        Some(r) if r.try_get::<i64, _>("expires_at")? <= now => "expired",
        // Consumed by a concurrent enrollment that had not committed when we looked.
        Some(_) => "used",
    })
}

/// Enrolls a host with a one-time token (see the module doc for the ordering).
/// Errors: `Invalid` for bad input or a malformed CSR (token untouched),
/// `Unauthorized("token_invalid")` for an unknown, used or expired token (audited).
#[tracing::instrument(skip_all, fields(hostname = %req.hostname.chars().take(64).collect::<String>(), ip = source_ip.unwrap_or("")))]
pub async fn enroll(
    state: &AppState,
    req: &EnrollRequest,
    source_ip: Option<&str>,
    now: i64,
) -> Result<EnrollResponse> {
    validate(req)?;
    let token_hash = hash_token(&req.token);
    let host_id = new_id();
    let issued = state.ca.sign_host_csr(&req.csr_pem, &host_id, state.settings.host_cert_validity_days, now)?;

    let mut tx = state.db.begin().await?;
    let consumed = sqlx::query(
        "UPDATE enroll_tokens SET used_at = $1, used_by_host = $2 \
         WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING id, group_id",
    )
    .bind(now)
    .bind(&host_id)
    .bind(&token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(consumed) = consumed else {
        // Release the transaction (and SQLite's only connection) before auditing.
        tx.rollback().await?;
        let reason = failure_reason(&state.db, &token_hash, now).await?;
        audit::append_alone(
            &state.db,
            Event {
                actor: &Actor::Anonymous,
                action: "enroll.failure",
                target: "enroll_token",
                source_ip,
                details: serde_json::json!({ "reason": reason, "hostname": req.hostname }),
            },
            now,
        )
        .await?;
        tracing::warn!(target: "security", reason, "enrollment refused");
        return Err(BackendError::Unauthorized("token_invalid"));
    };
    let token_id: String = consumed.try_get("id")?;
    let group_id: Option<String> = consumed.try_get("group_id")?;

    sqlx::query("INSERT INTO hosts (id, hostname, enrolled_at) VALUES ($1, $2, $3)")
        .bind(&host_id)
        .bind(&req.hostname)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    certs::record_issued(&mut tx, &issued, &host_id).await?;
    if let Some(g) = &group_id {
        groups::add_host(&mut tx, g, &host_id).await?;
    }
    let target = format!("host:{host_id}");
    audit::append(
        &mut tx,
        Event {
            actor: &Actor::Anonymous,
            action: "enroll.success",
            target: &target,
            source_ip,
            details: serde_json::json!({ "token_id": token_id, "hostname": req.hostname, "group": group_id }),
        },
        now,
    )
    .await?;
    audit::append(
        &mut tx,
        Event {
            actor: &Actor::Anonymous,
            action: "cert.issue",
            target: &target,
            source_ip,
            details: serde_json::json!({ "serial": issued.serial_hex, "not_after": issued.not_after }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.certs.insert(&issued.serial_hex, &host_id, issued.not_after);
    tracing::info!(target: "security", host_id = %host_id, serial = %issued.serial_hex, "host enrolled");
    Ok(EnrollResponse {
        host_id,
        cert_pem: issued.cert_pem,
        ca_pem: state.ca.cert_pem().to_string(),
        agent_url: state.settings.agent_url.clone(),
        job_signing_key: state.job_signer.public_key_b64(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::testkit;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    const NOW: i64 = 1_800_000_000;

    fn admin() -> Actor {
        Actor::User { id: "u1".into(), username: "admin".into() }
    }

    fn csr() -> String {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        CertificateParams::new(vec![]).unwrap().serialize_request(&key).unwrap().pem().unwrap()
    }

    fn req(token: &str, csr_pem: String) -> EnrollRequest {
        EnrollRequest { token: token.to_string(), csr_pem, hostname: "web-01.example".into() }
    }

    #[tokio::test]
    async fn token_create_list_and_single_use_enrollment() {
        let t = testkit::test_db().await;
        let state = t.state(NOW).await;
        let new = create_token(&state, &admin(), "rack 3", None, None, NOW).await.unwrap();
        assert!(new.token.starts_with(TOKEN_PREFIX));
        assert_eq!(new.token.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(new.info.expires_at, NOW + state.settings.enroll_token_default_ttl_secs);
        assert_eq!(new.ca_fingerprint, state.ca.fingerprint());
        assert_eq!(
            new.agent_command,
            format!(
                "pm-agent enroll --server {} --token {} --ca-fingerprint {}",
                state.settings.public_url, new.token, new.ca_fingerprint
            )
        );
        // Only the hash is stored.
        let stored: String =
            sqlx::query("SELECT token_hash FROM enroll_tokens").fetch_one(&t.db.pool).await.unwrap().get(0);
        assert_eq!(stored, hash_token(&new.token));
        assert!(!stored.contains(&new.token));

        let resp = enroll(&state, &req(&new.token, csr()), Some("192.0.2.7"), NOW + 5).await.unwrap();
        assert_eq!(resp.ca_pem, state.ca.cert_pem());
        assert_eq!(resp.agent_url, state.settings.agent_url);
        let serial = {
            let (_, pem) = x509_parser::pem::parse_x509_pem(resp.cert_pem.as_bytes()).unwrap();
            certs::serial_hex_of_der(&pem.contents).unwrap()
        };
        assert_eq!(state.certs.check(&serial, NOW + 10).as_deref(), Some(resp.host_id.as_str()));
        assert_eq!(certs::authorize_serial(&t.db, &serial, NOW + 10).await.unwrap(), resp.host_id);

        let tokens = list_tokens(&t.db, NOW).await.unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].used_at, Some(NOW + 5));
        assert_eq!(tokens[0].used_by_host.as_deref(), Some(resp.host_id.as_str()));
        assert_eq!(tokens[0].created_by, "user:admin");
        assert_eq!(tokens[0].note, "rack 3");

        // Second use refused and audited with the ip.
        let err = enroll(&state, &req(&new.token, csr()), Some("192.0.2.8"), NOW + 6).await.unwrap_err();
        assert!(matches!(err, BackendError::Unauthorized("token_invalid")));
        let fails = audit::list_by_action(&t.db, "enroll.failure").await.unwrap();
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].source_ip.as_deref(), Some("192.0.2.8"));
        assert!(fails[0].details.contains("\"used\""));
        let ok = audit::list_by_action(&t.db, "enroll.success").await.unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].target, format!("host:{}", resp.host_id));
        assert_eq!(ok[0].actor, "anonymous");
        let issue = audit::list_by_action(&t.db, "cert.issue").await.unwrap();
        assert_eq!(issue.len(), 1);
        assert!(issue[0].details.contains(&serial));
        let created = audit::list_by_action(&t.db, "enroll_token.create").await.unwrap();
        assert_eq!(created.len(), 1);
        // The token never appears in the audit log.
        for row in audit::list(&t.db, 100, 0).await.unwrap() {
            assert!(!row.details.contains(&new.token) && !row.target.contains(&new.token));
        }
        assert_eq!(audit::verify(&t.db).await.unwrap().first_bad_seq, None);
        t.cleanup().await;
    }

    #[tokio::test]
    async fn malformed_csr_keeps_token_and_bad_input_is_invalid() {
        let t = testkit::test_db().await;
        let state = t.state(NOW).await;
        let new = create_token(&state, &admin(), "", Some(600), None, NOW).await.unwrap();
        let err = enroll(
            &state,
            &req(&new.token, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into()),
            None,
            NOW,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BackendError::Invalid(ref m) if m == "malformed CSR"), "{err:?}");
        let hosts: i64 = sqlx::query("SELECT COUNT(*) FROM hosts").fetch_one(&t.db.pool).await.unwrap().get(0);
        assert_eq!(hosts, 0);

        let mut r = req(&new.token, csr());
        r.hostname = "bad host;rm".into();
        assert!(matches!(enroll(&state, &r, None, NOW).await, Err(BackendError::Invalid(_))));
        r.hostname = "h".repeat(254);
        assert!(matches!(enroll(&state, &r, None, NOW).await, Err(BackendError::Invalid(_))));
        r.hostname = "ok".into();
        r.csr_pem = "x".repeat(16 * 1024 + 1);
        assert!(matches!(enroll(&state, &r, None, NOW).await, Err(BackendError::Invalid(_))));
        let long = req(&"t".repeat(201), csr());
        assert!(matches!(enroll(&state, &long, None, NOW).await, Err(BackendError::Invalid(_))));

        // The token is still good.
        enroll(&state, &req(&new.token, csr()), None, NOW + 1).await.unwrap();
        t.cleanup().await;
    }

    #[tokio::test]
    async fn expired_and_unknown_tokens_are_refused() {
        let t = testkit::test_db().await;
        let state = t.state(NOW).await;
        let new = create_token(&state, &admin(), "short", Some(60), None, NOW).await.unwrap();
        let err = enroll(&state, &req(&new.token, csr()), Some("198.51.100.1"), NOW + 60).await.unwrap_err();
        assert!(matches!(err, BackendError::Unauthorized("token_invalid")));
        let err = enroll(&state, &req("pmet_nope", csr()), None, NOW).await.unwrap_err();
        assert!(matches!(err, BackendError::Unauthorized("token_invalid")));
        let fails = audit::list_by_action(&t.db, "enroll.failure").await.unwrap();
        assert_eq!(fails.len(), 2);
        assert!(fails[0].details.contains("\"expired\""));
        assert!(fails[1].details.contains("\"unknown\""));
        // Out-of-range TTLs are refused.
        let max = state.settings.enroll_token_max_ttl_secs;
        assert!(matches!(create_token(&state, &admin(), "", Some(max + 1), None, NOW).await, Err(BackendError::Invalid(_))));
        assert!(matches!(create_token(&state, &admin(), "", Some(0), None, NOW).await, Err(BackendError::Invalid(_))));
        assert!(matches!(create_token(&state, &admin(), "a\nb", None, None, NOW).await, Err(BackendError::Invalid(_))));
        assert_eq!(audit::verify(&t.db).await.unwrap().first_bad_seq, None);
        t.cleanup().await;
    }

    #[tokio::test]
    async fn evil_csr_gets_a_plain_client_cert() {
        let t = testkit::test_db().await;
        let state = t.state(NOW).await;
        let new = create_token(&state, &admin(), "", None, None, NOW).await.unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "evil");
        p.custom_extensions = vec![crate::backend::ca::tests::ca_true_extension()];
        let evil = p.serialize_request(&key).unwrap().pem().unwrap();
        let resp = enroll(&state, &req(&new.token, evil), None, NOW).await.unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(resp.cert_pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
        assert_eq!(cn, resp.host_id);
        assert!(!cert.is_ca());
        assert!(cert.subject_alternative_name().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        t.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_use_of_one_token_enrolls_exactly_one_host() {
        let t = testkit::test_db().await;
        let state = t.state(NOW).await;
        let new = create_token(&state, &admin(), "race", None, None, NOW).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let state = state.clone();
            let mut r = req(&new.token, csr());
            r.hostname = format!("racer-{i}");
            tasks.push(tokio::spawn(async move { enroll(&state, &r, Some("203.0.113.9"), NOW + 1).await }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(BackendError::Unauthorized("token_invalid")) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(ok, 1);
        let hosts: i64 = sqlx::query("SELECT COUNT(*) FROM hosts").fetch_one(&t.db.pool).await.unwrap().get(0);
        assert_eq!(hosts, 1);
        let certs_n: i64 = sqlx::query("SELECT COUNT(*) FROM certificates").fetch_one(&t.db.pool).await.unwrap().get(0);
        assert_eq!(certs_n, 1);
        assert_eq!(audit::list_by_action(&t.db, "enroll.failure").await.unwrap().len(), 7);
        assert_eq!(audit::list_by_action(&t.db, "enroll.success").await.unwrap().len(), 1);
        assert_eq!(audit::verify(&t.db).await.unwrap().first_bad_seq, None);
        t.cleanup().await;
    }
}
