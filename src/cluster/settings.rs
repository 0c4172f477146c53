//! `[cluster]`: this gateway's node name and how long its lease runs.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Shortest lease: a heartbeat every fifth of it must reach the database.
const MIN_LEASE_MS: u64 = 1_000;
/// Longest lease: a dead node's messages wait this long for a taker.
const MAX_LEASE_MS: u64 = 60_000;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// This gateway's name among those sharing the state database; empty:
    /// the host's name. Lower-case letters, digits, `.`, `_`, `-`.
    pub node: String,
    /// How long a node's lease runs without a heartbeat before another node
    /// takes over its waiting messages, in milliseconds (1,000–60,000).
    pub lease_ms: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node: String::new(),
            lease_ms: 5_000,
        }
    }
}

/// Why a cluster setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    /// The node name is not one.
    #[error("key `cluster.node`: `{given}` is not a node name: {reason}")]
    Invalid {
        /// What was given.
        given: String,
        /// Why not.
        reason: &'static str,
    },
    /// The lease is out of range.
    #[error("key `cluster.lease_ms`: {0} is outside {MIN_LEASE_MS}–{MAX_LEASE_MS}")]
    Lease(u64),
}

impl ClusterSettings {
    /// The node's name (the host's when empty) and the lease's length.
    pub fn validate(&self) -> Result<(NodeName, Duration), NodeNameError> {
        if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&self.lease_ms) {
            return Err(NodeNameError::Lease(self.lease_ms));
        }
        let node = if self.node.is_empty() {
            NodeName::parse(&host_name()).or_else(|_| NodeName::parse("gateway"))?
        } else {
            NodeName::parse(&self.node)?
        };
        Ok((node, Duration::from_millis(self.lease_ms)))
    }
}

/// This host's name, lower-cased, or `gateway` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "gateway".to_owned())
}

/// A node's name: 1–63 of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Validates a node name.
    pub fn parse(given: &str) -> Result<NodeName, NodeNameError> {
        let invalid = |reason| NodeNameError::Invalid {
            given: given.to_owned(),
            reason,
        };
        if given.is_empty() || given.len() > 63 {
            return Err(invalid("it must be 1 to 63 characters long"));
        }
        if !given
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(invalid(
                "only lower-case letters, digits, `.`, `_` and `-` are allowed",
            ));
        }
        Ok(NodeName(given.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_checked() {
        assert_eq!(
            NodeName::parse("gw-1.hanoi").unwrap().as_str(),
            "gw-1.hanoi"
        );
        assert!(NodeName::parse("").is_err());
        assert!(NodeName::parse("GW1").is_err());
        assert!(NodeName::parse("gw 1").is_err());
        assert!(NodeName::parse(&"a".repeat(64)).is_err());
        let error = NodeName::parse("Gw/1").unwrap_err().to_string();
        assert!(error.contains("cluster.node"), "{error}");
    }

    #[test]
    fn an_empty_name_is_the_host_name_and_the_lease_is_bounded() {
        let (node, lease) = ClusterSettings::default().validate().unwrap();
        assert!(!node.as_str().is_empty());
        assert_eq!(lease, Duration::from_secs(5));
        let short = ClusterSettings {
            node: "a".into(),
            lease_ms: 999,
        };
        assert_eq!(short.validate().unwrap_err(), NodeNameError::Lease(999));
    }
}
