//! An HTTP client that connects only where the address policy permits:
//! every address DNS returns is filtered, and IP-literal hosts (which skip
//! DNS) are checked by the caller with `literal_ip`, and on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::AddressPolicy;
use crate::error::{Error, Result};

/// Whether the client follows redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Callbacks: a redirect is an answer like any other (not 2xx).
    Refuse,
    /// Pulls: up to this many, each target checked like the first URL.
    Follow(usize),
}

pub fn guarded_client(policy: Arc<AddressPolicy>, redirects: Redirects) -> Result<reqwest::Client> {
    // reqwest is built without a default crypto provider; this process
    // uses ring. Installing twice is harmless (the first one stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redirect = match redirects {
        Redirects::Refuse => reqwest::redirect::Policy::none(),
        Redirects::Follow(max) => {
            let policy = Arc::clone(&policy);
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(format!("more than {max} redirects"));
                }
                match literal_ip(attempt.url()) {
                    // The address is written in the redirect the server
                    // sent, not learnt from DNS, so naming it tells nothing new.
                    Some(ip) if !policy.permits(ip) => attempt.error(format!(
                        "redirect to address {ip}, which is not allowed by the outbound address policy (see --allow-outbound-cidr)"
                    )),
                    _ => attempt.follow(),
                }
            })
        }
    };
    reqwest::Client::builder()
        .redirect(redirect)
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))
}

/// Refuses, when it is saved, a URL the policy would refuse when it is
/// called: an IP literal it refuses, or a host all of whose current
/// addresses it refuses. A host that does not resolve now passes (it may
/// later); the check where the connection is made stays the real guard.
pub async fn check_reachable(policy: &AddressPolicy, field: &str, url: &str) -> Result<()> {
    let parsed = super::validate_url(field, url)?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let refused = || {
        Error::FailedPrecondition(format!(
            "{field}: the outbound address policy refuses the address of {host} (loopback, \
             private and other internal ranges are refused; an operator can allow a range \
             with --allow-outbound-cidr)"
        ))
    };
    if let Some(ip) = literal_ip(&parsed) {
        return if policy.permits(ip) {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), lookup).await {
        Ok(Ok(addrs)) => {
            let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            if !ips.is_empty() && !ips.iter().any(|ip| policy.permits(*ip)) {
                tracing::debug!(%host, ?ips, "notification URL refused by the address policy");
                return Err(refused());
            }
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::info!(%host, "notification URL host does not resolve now: {e}");
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// The host of `url` when it is an IP literal (connected to without DNS).
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The error with its causes, as an operator would want to read it.
pub fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Resolves hosts and keeps only the addresses the policy permits, so a
/// name cannot be pointed at an internal service after it was saved.
struct PolicyResolver(Arc<AddressPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                // The caller learns only that the policy refused: listing
                // what the name resolved to would let a tenant map internal
                // host names. The operator finds the addresses in the log.
                let refused: Vec<String> = found
                    .iter()
                    .map(|a| {
                        let why = policy.refusal(a.ip()).unwrap_or("permitted");
                        format!("{} ({why})", a.ip())
                    })
                    .collect();
                tracing::debug!(
                    %host,
                    addresses = %refused.join(", "),
                    "outbound address policy refused every address of the host"
                );
                return Err(refused_host(&host).into());
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// What the caller is told when none of `host`'s addresses may be reached.
fn refused_host(host: &str) -> String {
    format!(
        "{host} has no address allowed by the outbound address policy (an operator can open ranges with --allow-outbound-cidr)"
    )
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[tokio::test]
    async fn a_refused_name_does_not_disclose_its_addresses() {
        let resolver = PolicyResolver(Arc::new(AddressPolicy::default()));
        let name = Name::from_str("localhost").unwrap();
        let Err(e) = resolver.resolve(name).await else {
            panic!("localhost must be refused");
        };
        let message = e.to_string();
        assert_eq!(message, refused_host("localhost"));
        assert!(message.contains("--allow-outbound-cidr"), "{message}");
        for leaked in ["127.0.0.1", "::1", "127.", "loopback"] {
            assert!(!message.contains(leaked), "{message}");
        }
    }

    #[tokio::test]
    async fn an_allowed_name_resolves_to_its_permitted_addresses() {
        let policy = AddressPolicy::new(vec![AddressPolicy::parse_cidr("127.0.0.0/8").unwrap()]);
        let resolver = PolicyResolver(Arc::new(policy));
        let name = Name::from_str("localhost").unwrap();
        let Ok(addrs) = resolver.resolve(name).await else {
            panic!("127.0.0.0/8 is open");
        };
        let addrs: Vec<SocketAddr> = addrs.collect();
        assert!(!addrs.is_empty());
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addrs:?}"
        );
    }
}
