//! Who is calling, and which hosts they may see and act on.
//!
//! An access token alone is not trusted for authorization: [`resolve`] re-reads the user's
//! role and state and checks that the token's session family is still live, on every call.
//! So disabling a user, changing their role, resetting their MFA or revoking their sessions
//! takes effect at once, not when the 15-minute token expires.
//!
//! Scope rule: an Admin sees every host; an Operator sees exactly the hosts that belong to at
//! least one group assigned to them (membership read live, in the same query as the data).
//! A host outside the caller's scope is answered as "not found", never "forbidden", so its
//! existence does not leak.

use sqlx::Row;

use super::db::Conn;
use super::error::{BackendError, Result};
use super::sessions::Principal;
use super::users;
use crate::api::dto::Role;

/// The verified caller of a request: principal plus their role as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
}

/// Hosts a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Hosts in the groups assigned to this user.
    GroupsOf(String),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(BackendError::Forbidden)
        }
    }

    pub fn scope(&self) -> Scope {
        if self.is_admin() {
            Scope::All
        } else {
            Scope::GroupsOf(self.principal.user_id.clone())
        }
    }

    pub fn actor(&self) -> super::audit::Actor {
        self.principal.actor()
    }
}

const SESSION_GONE: BackendError = BackendError::Unauthorized("session_revoked");

/// Checks the principal of a verified access token against the database: the user exists
/// and is enabled, and the session family has a token that is neither revoked nor past its
/// absolute end. The role is taken from the database, not from the token.
pub async fn resolve(conn: &mut Conn, principal: Principal, now: i64) -> Result<Caller> {
    let row = sqlx::query(
        "SELECT u.username, u.role, u.disabled FROM users u WHERE u.id = $1 AND EXISTS (\
         SELECT 1 FROM sessions s WHERE s.family_id = $2 AND s.user_id = u.id \
         AND s.revoked_at IS NULL AND s.expires_at > $3)",
    )
    .bind(&principal.user_id)
    .bind(&principal.session_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(SESSION_GONE)?;
    let disabled: i64 = row.try_get("disabled")?;
    if disabled != 0 {
        return Err(SESSION_GONE);
    }
    let role: String = row.try_get("role")?;
    Ok(Caller {
        principal: Principal {
            role: users::parse_role(&role)?,
            username: row.try_get("username")?,
            ..principal
        },
    })
}

impl Scope {
    /// SQL condition restricting `host_col` (e.g. `hosts.id`) to this scope, using
    /// placeholder `$n`, and the value to bind there; `None` for an unrestricted scope.
    pub fn host_condition(&self, host_col: &str, n: usize) -> Option<(String, String)> {
        match self {
            Scope::All => None,
            Scope::GroupsOf(user_id) => Some((
                format!(
                    "EXISTS (SELECT 1 FROM host_group_members m JOIN user_groups ug ON ug.group_id = m.group_id \
                     WHERE m.host_id = {host_col} AND ug.user_id = ${n})"
                ),
                user_id.clone(),
            )),
        }
    }

    /// `Ok` when the host exists and is in scope; `NotFound` otherwise (both cases alike).
    pub async fn check_host(&self, conn: &mut Conn, host_id: &str) -> Result<()> {
        let (cond, bind) = match self.host_condition("h.id", 2) {
            Some((c, b)) => (format!(" AND {c}"), Some(b)),
            None => (String::new(), None),
        };
        let sql = format!("SELECT 1 AS ok FROM hosts h WHERE h.id = $1{cond}");
        let mut q = sqlx::query(&sql).bind(host_id);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        q.fetch_optional(&mut *conn).await?.map(|_| ()).ok_or(BackendError::NotFound)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::audit::Actor;
    use crate::backend::{groups, hosts};
    use crate::backend::hosts::tests::add_host;
    use crate::backend::sessions::{self, testenv::TestEnv};
    use crate::backend::users::{self, User};

    const NOW: i64 = 1_700_000_000;

    async fn operator(env: &TestEnv, name: &str) -> User {
        let mut tx = env.state.db.begin().await.unwrap();
        let u = users::insert_user(&mut tx, &Actor::Cli, name, "!", Role::Operator, None, NOW).await.unwrap();
        tx.commit().await.unwrap();
        u
    }

    #[tokio::test]
    async fn operators_see_only_their_groups_hosts_and_revocation_is_immediate() {
        let env = TestEnv::new().await;
        let st = &env.state;
        add_host(&st.db, "h-a", "alpha").await;
        add_host(&st.db, "h-b", "beta").await;
        add_host(&st.db, "h-none", "loner").await;
        let ga = groups::create(&st.db, &Actor::Cli, "group A", NOW).await.unwrap();
        let gb = groups::create(&st.db, &Actor::Cli, "group B", NOW).await.unwrap();
        groups::set_host_groups(&st.db, &Actor::Cli, "h-a", std::slice::from_ref(&ga.id), NOW).await.unwrap();
        groups::set_host_groups(&st.db, &Actor::Cli, "h-b", std::slice::from_ref(&gb.id), NOW).await.unwrap();
        let alice = operator(&env, "alice").await;
        let mut tx = st.db.begin().await.unwrap();
        groups::set_user_groups(&mut tx, &Actor::Cli, &alice.id, std::slice::from_ref(&ga.id), NOW).await.unwrap();
        tx.commit().await.unwrap();

        let tokens = sessions::start(st, &alice, None, NOW).await.unwrap();
        let principal = sessions::verify_access(&st.keys, &tokens.access, NOW).unwrap();
        let mut conn = st.db.pool.acquire().await.unwrap();
        let caller = resolve(&mut conn, principal.clone(), NOW).await.unwrap();
        assert!(!caller.is_admin());
        let scope = caller.scope();
        scope.check_host(&mut conn, "h-a").await.unwrap();
        assert!(matches!(scope.check_host(&mut conn, "h-b").await, Err(BackendError::NotFound)));
        assert!(matches!(scope.check_host(&mut conn, "h-none").await, Err(BackendError::NotFound)));
        assert!(matches!(scope.check_host(&mut conn, "nope").await, Err(BackendError::NotFound)));
        assert!(Scope::All.check_host(&mut conn, "h-none").await.is_ok());
        drop(conn);
        // Lists, counts and searches are cut to the scope too.
        let q = crate::api::dto::HostQuery::default();
        let page = hosts::list(&st.db, &scope, &q, 300, NOW).await.unwrap();
        assert_eq!((page.total, page.items.len()), (1, 1));
        assert_eq!(page.items[0].id, "h-a");
        let q = crate::api::dto::HostQuery { search: "beta".into(), ..Default::default() };
        assert_eq!(hosts::list(&st.db, &scope, &q, 300, NOW).await.unwrap().total, 0);
        assert_eq!(hosts::list(&st.db, &Scope::All, &q, 300, NOW).await.unwrap().total, 1);
        assert!(matches!(hosts::get(&st.db, &scope, "h-b", 300, NOW).await, Err(BackendError::NotFound)));
        assert_eq!(hosts::get(&st.db, &scope, "h-a", 300, NOW).await.unwrap().groups.len(), 1);

        // The role is read from the database, not from the token.
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1").bind(&alice.id).execute(&st.db.pool).await.unwrap();
        let mut conn = st.db.pool.acquire().await.unwrap();
        assert!(resolve(&mut conn, principal.clone(), NOW).await.unwrap().is_admin());
        drop(conn);

        // Revoking the user's sessions kills the still-unexpired access token at once.
        let mut tx = st.db.begin().await.unwrap();
        assert!(sessions::revoke_user(&mut tx, &alice.id, NOW).await.unwrap() >= 1);
        tx.commit().await.unwrap();
        let mut conn = st.db.pool.acquire().await.unwrap();
        let e = resolve(&mut conn, principal, NOW).await.unwrap_err();
        assert_eq!(e.code(), "session_revoked");
        drop(conn);
        env.finish().await;
    }
}
