//! Where load may go: this machine only.
//!
//! A load test sends traffic at a rate nothing else should receive, so the
//! driver refuses every address that is not loopback (127.0.0.0/8, ::1 or
//! the name `localhost`) before it opens a connection.

use std::net::{IpAddr, SocketAddr};

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not host:port (for example 127.0.0.1:50051)")]
    Malformed(String),
    #[error("{0:?} is not a loopback address: the load driver only targets 127.0.0.0/8, ::1 or localhost")]
    NotLoopback(String),
}

/// A checked loopback target: the socket address and the `http://` URI tonic dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
}

impl Target {
    /// Accepts `127.0.0.1:50051`, `[::1]:50051`, `localhost:50051`, each
    /// optionally prefixed with `http://`; refuses everything else.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let bare = text.trim().strip_prefix("http://").unwrap_or(text.trim()).trim_end_matches('/');
        if let Ok(addr) = bare.parse::<SocketAddr>() {
            return if is_loopback(addr.ip()) {
                Ok(Target { addr })
            } else {
                Err(TargetError::NotLoopback(text.to_owned()))
            };
        }
        // A name: only `localhost`, and it is taken as 127.0.0.1 without asking a resolver.
        let (host, port) = bare.rsplit_once(':').ok_or_else(|| TargetError::Malformed(text.to_owned()))?;
        let port: u16 = port.parse().map_err(|_| TargetError::Malformed(text.to_owned()))?;
        if host.eq_ignore_ascii_case("localhost") {
            Ok(Target { addr: SocketAddr::from(([127, 0, 0, 1], port)) })
        } else if host.is_empty() || host.contains(['/', ' ']) {
            Err(TargetError::Malformed(text.to_owned()))
        } else {
            Err(TargetError::NotLoopback(text.to_owned()))
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_accepted() {
        for ok in ["127.0.0.1:50051", "http://127.0.0.1:50051", "127.8.9.10:1", "[::1]:50052", "localhost:50051"] {
            assert!(Target::parse(ok).is_ok(), "{ok} should be accepted");
        }
        assert_eq!(Target::parse("localhost:7").unwrap().uri(), "http://127.0.0.1:7");
        assert_eq!(Target::parse("[::ffff:127.0.0.1]:9").unwrap().addr.port(), 9);
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in ["10.0.0.1:50051", "192.168.1.2:80", "0.0.0.0:50051", "8.8.8.8:53", "[::]:1", "example.com:443"] {
            assert!(matches!(Target::parse(bad), Err(TargetError::NotLoopback(_))), "{bad} should be refused");
        }
        for bad in ["127.0.0.1", "localhost", "http://:80", "localhost:port"] {
            assert!(matches!(Target::parse(bad), Err(TargetError::Malformed(_))), "{bad} should be malformed");
        }
    }
}
