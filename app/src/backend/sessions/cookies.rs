//! Session cookies: `pm_access` (JWT), `pm_refresh` (refresh token), `pm_pending` (second
//! factor pending JWT), `pm_webauthn` (binds a passwordless WebAuthn ceremony to the browser
//! that started it; random, stored only hashed). All are `Secure; HttpOnly; SameSite=Strict; Path=/`: never readable by
//! scripts, never sent cross-site, never over plain HTTP.

pub const ACCESS_COOKIE: &str = "pm_access";
pub const REFRESH_COOKIE: &str = "pm_refresh";
pub const PENDING_COOKIE: &str = "pm_pending";
pub const WEBAUTHN_COOKIE: &str = "pm_webauthn";

const ATTRS: &str = "Path=/; Secure; HttpOnly; SameSite=Strict";

/// A `Set-Cookie` value. `value` is one of our tokens (base64url/JWT characters only).
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Max-Age={}; {ATTRS}", max_age.max(0))
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; {ATTRS}")
}

/// The first cookie called `name` in the request's `Cookie` header(s).
pub fn read_cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::header::{HeaderValue, COOKIE};

    #[test]
    fn set_and_clear() {
        let c = set_cookie(ACCESS_COOKIE, "abc.def.ghi", 900);
        assert_eq!(c, "pm_access=abc.def.ghi; Max-Age=900; Path=/; Secure; HttpOnly; SameSite=Strict");
        let d = clear_cookie(REFRESH_COOKIE);
        assert!(d.starts_with("pm_refresh=; Max-Age=0;"));
        assert!(d.contains("Secure") && d.contains("HttpOnly") && d.contains("SameSite=Strict") && d.contains("Path=/"));
    }

    #[test]
    fn read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(read_cookie(&h, ACCESS_COOKIE), None);
        h.append(COOKIE, HeaderValue::from_static("theme=dark; pm_access_x=no; pm_access=tok1"));
        h.append(COOKIE, HeaderValue::from_static("pm_refresh=pmrt_abc-_; pm_pending="));
        assert_eq!(read_cookie(&h, ACCESS_COOKIE), Some("tok1"));
        assert_eq!(read_cookie(&h, REFRESH_COOKIE), Some("pmrt_abc-_"));
        assert_eq!(read_cookie(&h, PENDING_COOKIE), None);
        assert_eq!(read_cookie(&h, "theme"), Some("dark"));
    }
}
