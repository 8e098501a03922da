//! The HTTP side: connections accepted up to `max_connections` (one more is
//! closed at once), HTTP/1.1 only, a request's headers within
//! `request_timeout_secs` and at most 16 KiB of them, optional TLS
//! (rustls), and the same security headers on every response.
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::pages::Client;
use axum::Router;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let tls = self.tls.clone();
            let trusted = Arc::clone(&trusted);
            let timeout = self.request_timeout;
            tokio::spawn(async move {
                let _slot = slot;
                match tls {
                    None => serve_connection(stream, peer, router, &trusted, timeout, hsts).await,
                    Some(acceptor) => {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                        {
                            serve_connection(stream, peer, router, &trusted, timeout, hsts).await;
                        }
                    }
                }
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
        .and_then(|last| last.trim().parse().ok())
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
