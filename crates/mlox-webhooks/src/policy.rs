//! Where a webhook may point. By default only `https://` URLs whose every resolved address is
//! public; the operator can allow `http://` and private/loopback addresses (local development,
//! tests, an in-cluster receiver). The same rule runs when a webhook is saved and again on
//! every connection, against the address actually connected to, so a DNS answer that changes
//! after validation (rebinding) cannot reach an internal service.

pub use mlox_core::net::is_public;
use mlox_core::{Error, Result};
use std::net::IpAddr;

/// What webhook URLs may target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Allow loopback, private, link-local (cloud metadata) and other non-public addresses.
    pub allow_private_addresses: bool,
    /// Allow plain `http://` URLs.
    pub allow_http: bool,
}

/// A URL that passed the static checks, with the host still to be resolved.
#[derive(Clone, Debug)]
pub struct CheckedUrl {
    pub url: url::Url,
    pub host: String,
    pub port: u16,
}

impl UrlPolicy {
    fn schemes(&self) -> &'static str {
        if self.allow_http {
            "http, https"
        } else {
            "https"
        }
    }

    /// Checks everything that needs no network: scheme, host, credentials, literal addresses.
    pub fn check_static(&self, raw: &str) -> Result<CheckedUrl> {
        if raw.trim().is_empty() {
            return Err(Error::invalid(format!(
                "Webhook URL cannot be empty or just whitespace: '{raw}'"
            )));
        }
        let url = url::Url::parse(raw.trim())
            .map_err(|e| Error::invalid(format!("Invalid webhook URL '{raw}': {e}")))?;
        let scheme = url.scheme();
        if scheme != "https" && !(scheme == "http" && self.allow_http) {
            return Err(Error::invalid(format!(
                "Invalid webhook URL scheme: '{scheme}'. Allowed schemes are: {}.",
                self.schemes()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // The URL is shown back by get/list; the signing secret is the way to authenticate.
            return Err(Error::invalid(format!(
                "Webhook URL must not include embedded credentials: '{raw}'"
            )));
        }
        let (host, literal) = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => (d.to_string(), None),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            _ => {
                return Err(Error::invalid(format!(
                    "Webhook URL must include a hostname: '{raw}'"
                )));
            }
        };
        if let Some(ip) = literal {
            self.check_ip(&host, ip)?;
        }
        let port = url.port_or_known_default().unwrap_or(443);
        Ok(CheckedUrl { url, host, port })
    }

    /// Refuses a non-public address unless private addresses are allowed.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<()> {
        if self.allow_private_addresses || is_public(ip) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "Webhook URL must not resolve to a non-public IP address. '{host}' resolves to {ip}."
        )))
    }

    /// The full check: static rules, then every address the host resolves to.
    pub async fn validate(&self, raw: &str) -> Result<CheckedUrl> {
        let checked = self.check_static(raw)?;
        if self.allow_private_addresses {
            return Ok(checked);
        }
        let lookup = tokio::net::lookup_host((checked.host.as_str(), checked.port));
        let addrs = tokio::time::timeout(std::time::Duration::from_secs(5), lookup)
            .await
            .map_err(|_| {
                Error::invalid(format!(
                    "Timed out resolving Webhook URL hostname '{}'",
                    checked.host
                ))
            })?
            .map_err(|e| {
                Error::invalid(format!(
                    "Cannot resolve Webhook URL hostname '{}': {e}",
                    checked.host
                ))
            })?;
        let mut any = false;
        for addr in addrs {
            any = true;
            self.check_ip(&checked.host, addr.ip())?;
        }
        if !any {
            return Err(Error::invalid(format!(
                "Cannot resolve Webhook URL hostname '{}': no addresses",
                checked.host
            )));
        }
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:0001::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
    }

    #[test]
    fn static_rules() {
        let strict = UrlPolicy::default();
        assert!(strict.check_static("https://example.com/x").is_ok());
        let err = strict.check_static("http://example.com/x").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid webhook URL scheme: 'http'. Allowed schemes are: https."
        );
        assert!(strict.check_static("https://127.0.0.1/x").is_err());
        // Legacy spellings of loopback are normalized before the check.
        assert!(strict.check_static("https://127.1/x").is_err());
        assert!(strict.check_static("https://0x7f.0.0.1/x").is_err());
        assert!(strict.check_static("https://[::ffff:7f00:1]/x").is_err());
        assert!(strict.check_static("https://user:pw@example.com/").is_err());
        assert!(strict.check_static("  ").is_err());
        let lax = UrlPolicy {
            allow_private_addresses: true,
            allow_http: true,
        };
        assert!(lax.check_static("http://127.0.0.1:9/x").is_ok());
        assert!(lax.check_static("ftp://127.0.0.1/x").is_err());
    }

    #[tokio::test]
    async fn resolved_addresses_are_checked() {
        let strict = UrlPolicy::default();
        let err = strict.validate("https://localhost:1/x").await.unwrap_err();
        assert!(err.message.contains("non-public"), "{}", err.message);
        let lax = UrlPolicy {
            allow_private_addresses: true,
            allow_http: false,
        };
        assert!(lax.validate("https://localhost:1/x").await.is_ok());
    }
}
