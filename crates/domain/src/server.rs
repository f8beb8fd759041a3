//! VPN servers (panel nodes) customers connect to.

use serde::Serialize;

use crate::{CountryCode, DomainError, ServerId, macros::string_enum};

string_enum! {
    /// A server's health as last seen.
    pub enum ServerStatus (field = "status") {
        /// Serving traffic.
        Online => "online",
        /// Not reachable.
        Offline => "offline",
        /// Reachable but degraded.
        Warning => "warning",
        /// Taken out on purpose.
        Maintenance => "maintenance",
    }
}

/// A VPN server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    /// The server's id.
    pub id: ServerId,
    /// Display name, 1 to 64 characters.
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    /// Port customers connect to.
    pub port: u16,
    /// Where the server stands.
    pub country: CountryCode,
    /// Health as last seen.
    pub status: ServerStatus,
    /// Whether the panel currently reaches the node.
    pub is_connected: bool,
    /// Whether staff switched it off.
    pub is_disabled: bool,
    /// Customers connected right now.
    pub users_online: u32,
}

impl Server {
    /// Longest display name, in characters.
    pub const MAX_NAME_LEN: usize = 64;
    /// Longest address (a DNS name's limit), in characters.
    pub const MAX_ADDRESS_LEN: usize = 253;

    /// A new server with a fresh id, offline and idle until the panel reports on it.
    ///
    /// The name is trimmed and must then be 1 to 64 characters; the address must be 1 to 253
    /// characters without whitespace; the port must not be 0.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        port: u16,
        country: CountryCode,
    ) -> Result<Self, DomainError> {
        let name = name.into();
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "must not be blank"));
        }
        if name.chars().count() > Self::MAX_NAME_LEN {
            return Err(DomainError::invalid(
                "name",
                "must be at most 64 characters",
            ));
        }
        let address = address.into();
        if address.is_empty() {
            return Err(DomainError::invalid("address", "must not be empty"));
        }
        if address.chars().any(char::is_whitespace) {
            return Err(DomainError::invalid(
                "address",
                "must not contain whitespace",
            ));
        }
        if address.chars().count() > Self::MAX_ADDRESS_LEN {
            return Err(DomainError::invalid(
                "address",
                "must be at most 253 characters",
            ));
        }
        if port == 0 {
            return Err(DomainError::invalid("port", "must not be 0"));
        }
        Ok(Self {
            id: ServerId::new(),
            name: name.to_owned(),
            address,
            port,
            country,
            status: ServerStatus::Offline,
            is_connected: false,
            is_disabled: false,
            users_online: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nl() -> CountryCode {
        CountryCode::parse("nl").unwrap()
    }

    #[track_caller]
    fn assert_invalid(result: Result<Server, DomainError>, expected: &str) {
        match result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected),
            other => panic!("expected Invalid {{ field: {expected:?} }}, got {other:?}"),
        }
    }

    #[test]
    fn new_server_starts_offline_and_idle() {
        let server = Server::new("  Amsterdam 1 ", "nl1.example.com", 443, nl()).unwrap();
        assert_eq!(server.name, "Amsterdam 1");
        assert_eq!(server.address, "nl1.example.com");
        assert_eq!(server.port, 443);
        assert_eq!(server.country.as_str(), "NL");
        assert_eq!(server.status, ServerStatus::Offline);
        assert!(!server.is_connected && !server.is_disabled);
        assert_eq!(server.users_online, 0);
        assert_ne!(server.id, Server::new("b", "10.0.0.1", 1, nl()).unwrap().id);
    }

    #[test]
    fn new_checks_every_field() {
        assert_invalid(Server::new("", "a.example", 443, nl()), "name");
        assert_invalid(Server::new(" \t ", "a.example", 443, nl()), "name");
        assert_invalid(Server::new("n".repeat(65), "a.example", 443, nl()), "name");
        assert!(Server::new("n".repeat(64), "a.example", 443, nl()).is_ok());
        assert_invalid(Server::new("a", "", 443, nl()), "address");
        assert_invalid(Server::new("a", "a .example", 443, nl()), "address");
        assert_invalid(Server::new("a", "a".repeat(254), 443, nl()), "address");
        assert!(Server::new("a", "a".repeat(253), 443, nl()).is_ok());
        assert_invalid(Server::new("a", "a.example", 0, nl()), "port");
        assert!(Server::new("a", "2001:db8::1", 65535, nl()).is_ok());
    }

    #[test]
    fn status_strings() {
        assert_eq!(ServerStatus::Maintenance.to_string(), "maintenance");
        assert_eq!(
            serde_json::to_string(&ServerStatus::Online).unwrap(),
            "\"online\""
        );
        let err = "up".parse::<ServerStatus>().unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "status",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
