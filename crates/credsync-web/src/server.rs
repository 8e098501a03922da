//! The HTTP side: connections accepted up to `max_connections` (one more is
//! closed at once), at most `PER_ADDRESS` of them from one client address,
//! each for at most `LIFETIME` (a client that stops reading its replies
//! cannot hold one for ever); HTTP/1.1 only, a request's headers within
//! `request_timeout_secs` (idle keep-alives too) and at most 16 KiB of them;
//! optional TLS (rustls); the same security headers on every response the
//! page makes (hyper's own bare refusals, 400 and 431, have no body).
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::pages::Client;
use axum::Router;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
/// A TLS handshake must be done within this.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// hyper's smallest read buffer; the request line and headers must fit.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections one client address may hold at once.
const PER_ADDRESS: usize = 32;
/// The longest a connection is served, however busy.
const LIFETIME: Duration = Duration::from_secs(300);

pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    trusted_proxies: Vec<IpAddr>,
    max_connections: usize,
    request_timeout: Duration,
}

impl Server {
    pub async fn bind(config: &Config) -> Result<Server, String> {
        let tls = match (&config.tls_certificate, &config.tls_key) {
            (Some(certificate), Some(key)) => Some(tls_acceptor(certificate, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        Ok(Server {
            listener,
            tls,
            trusted_proxies: config.trusted_proxies.clone(),
            max_connections: config.max_connections,
            request_timeout: config.request_timeout(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the process is told to stop.
    pub async fn serve(self, router: Router) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let hsts = self.tls.is_some();
        let trusted = Arc::new(self.trusted_proxies);
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of descriptors, most likely: let some close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
            let Some(held) = AddressSlot::take(&per_address, peer.ip()) else {
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let tls = self.tls.clone();
            let trusted = Arc::clone(&trusted);
            let timeout = self.request_timeout;
            tokio::spawn(async move {
                let _slots = (slot, held);
                let served = async {
                    match tls {
                        None => {
                            serve_connection(stream, peer, router, &trusted, timeout, hsts).await;
                        }
                        Some(acceptor) => {
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                            {
                                serve_connection(stream, peer, router, &trusted, timeout, hsts)
                                    .await;
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(LIFETIME, served).await;
            });
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    trusted: &[IpAddr],
    timeout: Duration,
    hsts: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let trusted = trusted.to_vec();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let client = client_address(peer.ip(), &trusted, &request);
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(Client(client));
        let router = router.clone();
        async move {
            let mut response = router.oneshot(request).await?;
            secure_headers(&mut response, hsts);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let _ = http.serve_connection(TokioIo::new(stream), service).await;
}

/// One of a client address's connections, given back when dropped.
struct AddressSlot {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    fn take(held: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr) -> Option<AddressSlot> {
        let mut map = held.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(address).or_insert(0);
        if *count >= PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            held: Arc::clone(held),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// An IPv4 address as itself, not as the IPv6 address a dual-stack
/// listener sees it as.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The peer, or the rightmost `X-Forwarded-For` address when the peer is a
/// trusted proxy (the address the proxy itself saw).
fn client_address<B>(peer: IpAddr, trusted: &[IpAddr], request: &Request<B>) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|last| {
            let last = last.trim();
            last.parse()
                .ok()
                .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
        })
        .map(canonical)
        .unwrap_or(peer)
}

fn secure_headers<B>(response: &mut Response<B>, hsts: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the certificate and key don't go together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let request = Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .body(())
            .unwrap();
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_address(proxy, &[proxy], &request),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(stranger, &[proxy], &request), stranger);
        let with_port = Request::builder()
            .header("x-forwarded-for", "[2001:db8::7]:5000")
            .body(())
            .unwrap();
        assert_eq!(
            client_address(proxy, &[proxy], &with_port),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical("::ffff:127.0.0.1".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn one_address_holds_a_bounded_number_of_connections() {
        let held = Arc::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..PER_ADDRESS)
            .map(|_| AddressSlot::take(&held, a).unwrap())
            .collect();
        assert!(AddressSlot::take(&held, a).is_none());
        assert!(AddressSlot::take(&held, "192.0.2.2".parse().unwrap()).is_some());
        drop(slots);
        assert!(AddressSlot::take(&held, a).is_some(), "the slots came back");
    }

    #[test]
    fn every_response_gets_the_headers() {
        let mut response = Response::new(());
        secure_headers(&mut response, true);
        let headers = response.headers();
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    }
}
