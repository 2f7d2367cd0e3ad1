//! Who may ask what: the `Host` check on every request, and the token and `Origin` check on
//! requests that train or change the registry.
//!
//! Invariants:
//! - Without a token (loopback only, see [`crate::Server::start`]) every request must name
//!   a loopback host: `localhost`, `127.0.0.1`, `[::1]` or the bound address, any port.
//!   Anything else gets 421 before routing. A page on another site whose name an attacker
//!   points at 127.0.0.1 (DNS rebinding) sends its own name as `Host`, so it is refused.
//!   A request without `Host` is accepted only in HTTP/1.0 (browsers always send one).
//! - With a token the `Host` is not checked (a reverse proxy or a LAN name may be in front);
//!   the token guards what changes things instead.
//! - [`authorize`]: a browser `Origin` must be the server itself (same `Host`), and with a
//!   token the request must carry `Authorization: Bearer TOKEN`; the scheme is matched
//!   without regard to case (RFC 7235), the token exactly and in constant time.

use std::net::{IpAddr, SocketAddr};

use crate::reply::ApiError;
use crate::request::Request;

/// Checks the `Host` of a request to a server without a token bound at `bound` (see the
/// module doc). `http10`: the request is HTTP/1.0.
pub(crate) fn check_host(
    host: Option<&str>,
    http10: bool,
    bound: SocketAddr,
    token: Option<&str>,
) -> Result<(), ApiError> {
    if token.is_some() {
        return Ok(());
    }
    let Some(host) = host else {
        return if http10 {
            Ok(())
        } else {
            Err(ApiError::bad("an HTTP/1.1 request needs a Host header"))
        };
    };
    if is_loopback_name(host, bound.ip()) {
        Ok(())
    } else {
        Err(ApiError::new(
            421,
            format!(
                "this server answers only to localhost, 127.0.0.1, [::1] or {bound} \
                 (Host {host:?} refused: start pismo serve with --token to serve other names)"
            ),
        ))
    }
}

/// `host` (`NAME[:PORT]`) names the loopback interface or the address `bound`.
fn is_loopback_name(host: &str, bound: IpAddr) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]:8501`, `name:8501`; a bare IPv6 without brackets is not a valid Host.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    let bound = match bound {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") || name == bound
}

/// A request that trains or changes the registry: a browser must send it from pismo's own
/// page (an `Origin` of another site is refused), and with a token configured it must carry
/// `Authorization: Bearer TOKEN`.
pub(crate) fn authorize(token: Option<&str>, request: &Request) -> Result<(), ApiError> {
    if let Some(origin) = request.header("Origin") {
        let origin_host = origin.split_once("://").map_or("", |(_, host)| host);
        if request.header("Host") != Some(origin_host) {
            return Err(ApiError::new(
                403,
                format!("cross-origin request from {origin} refused: use pismo's own page or a non-browser client"),
            ));
        }
    }
    let Some(token) = token else {
        return Ok(());
    };
    let Some(given) = request.header("Authorization") else {
        return Err(ApiError::new(
            401,
            "this server needs a token to train or change the registry: send `Authorization: Bearer TOKEN` (the token `pismo serve` printed)",
        )
        .with_header("WWW-Authenticate", "Bearer"));
    };
    if same_secret(bearer(given).unwrap_or("").as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(403, "wrong token").with_header("WWW-Authenticate", "Bearer"))
    }
}

/// The credentials of an `Authorization` value of the `Bearer` scheme (in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

/// Equality whose time does not depend on where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_or_without_port() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        for ok in [
            "localhost",
            "LOCALHOST:8501",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:80",
        ] {
            assert!(is_loopback_name(ok, v4), "{ok}");
        }
        for bad in [
            "evil.example:8501",
            "127.0.0.2",
            "localhost.evil",
            "",
            ":80",
        ] {
            assert!(!is_loopback_name(bad, v4), "{bad}");
        }
        assert!(is_loopback_name(
            "127.0.0.2:9",
            "127.0.0.2".parse().unwrap()
        ));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
