//! How a transfer agent reaches executors (issue 12, item 11; `docs/spec/inference.md` §9). Executor
//! URLs are whatever hosts registered on chain, so the TA would otherwise fetch any address an
//! attacker names — its own loopback admin ports, the cloud metadata service, the operator's private
//! network. Outside the devnet profile the TA connects to public addresses only, checked on the
//! literal IP of the URL and on every address its name resolves to (at connect time, so a name that
//! re-resolves to a private address later is refused too), follows no redirects, and bounds what it
//! relays.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Most bytes of one executor answer the TA relays (streamed or not): far above what the largest
/// completion with logprobs takes, far below what would exhaust the TA.
pub(crate) const RELAY_BYTES_MAX: usize = 16 << 20;

/// Whether `ip` is an address on the public internet: not loopback, private, link-local, shared
/// (CGNAT), multicast, broadcast, documentation, benchmarking, reserved or unspecified.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4))) // IPv4-compatible
}

/// Refuses an executor URL the TA must not call: not `http(s)`, or naming a non-public IP literal
/// (names are checked when they resolve, [`PublicOnly`]).
pub(crate) fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("executor URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("executor URL {url:?} is not http(s)"));
    }
    if allow_private {
        return Ok(());
    }
    let host = parsed.host_str().ok_or_else(|| format!("executor URL {url:?} has no host"))?;
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if !is_public(ip) => Err(format!("executor URL {url:?} is not a public address")),
        _ => Ok(()),
    }
}

/// A resolver that only ever hands out public addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The TA's client to executors: short connect timeout, `read_timeout` between reads, no redirects,
/// and unless `allow_private` public addresses only.
pub(crate) fn client(read_timeout: Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn executor_urls_must_be_public_outside_the_devnet() {
        for refused in [
            "http://127.0.0.1:9000",
            "http://[::1]:80",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.7",
            "file:///etc/passwd",
            "gopher://8.8.8.8",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9000", true).is_ok(), "the devnet profile");
        assert!(check_url("https://8.8.8.8", false).is_ok());
        assert!(check_url("https://host.example", false).is_ok(), "names are checked as they resolve");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let redirect =
                    "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n";
                let _ = socket.write_all(redirect.as_bytes()).await;
            }
        });
        let client = client(Duration::from_secs(2), true).unwrap();
        let response = client.get(format!("http://{address}/")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "the redirect is returned, not followed");
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_not_reached() {
        let client = client(Duration::from_secs(2), false).unwrap();
        let error = client.get("http://localhost:9/").send().await.unwrap_err();
        let chain = format!("{error:?}");
        assert!(chain.contains("no public address"), "{chain}");
    }
}
