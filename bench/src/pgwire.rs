//! A counting proxy for PostgreSQL: the requests of the scale section.
//!
//! PostgreSQL's own counters (`pg_stat_database.xact_commit`,
//! `pg_stat_user_functions`) are flushed by each server process at most once a
//! second, and up to 10 s late, so they cannot say what a window of a few
//! seconds cost; `pg_stat_statements` needs `shared_preload_libraries`. So the
//! bench counts on the wire instead: every client of the measurement connects to
//! this proxy on loopback, which forwards the bytes both ways and counts the
//! statements the clients send: a simple-protocol `Query` ('Q') is one, and an
//! extended-protocol statement (Parse/Bind/Describe/Execute) ends with one
//! `Sync` ('S'). Session renewals (`renew(...)` in the Parse text) are counted
//! apart: they are the steady background, one per client every TTL/3, all in
//! phase when the clients connected together, so a window of a few seconds
//! would catch all of them or none. The proxy declines TLS (answers 'N' to an `SSLRequest`), so the
//! URL must allow a plain connection (`sslmode=disable` or the default `prefer`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `SSLRequest` and `GSSENCRequest` codes of a startup packet.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// What the proxy counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// Every statement.
    pub statements: AtomicU64,
    /// Of those, session renewals.
    pub renewals: AtomicU64,
}

/// Starts the proxy in front of the server that `url` names; returns the same
/// URL pointed at the proxy, and the counts.
pub async fn start(url: &str) -> Result<(String, Arc<Counts>), String> {
    let (before, upstream, after) = split_host(url)?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("proxy bind: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let count = Arc::new(Counts::default());
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (up, c) = (upstream.clone(), c.clone());
            tokio::spawn(async move {
                let _ = serve(client, &up, &c).await;
            });
        }
    });
    Ok((format!("{before}{local}{after}"), count))
}

/// `postgres://USER:PW@HOST:PORT/DB?X` -> (`postgres://USER:PW@`, `HOST:PORT`, `/DB?X`).
fn split_host(url: &str) -> Result<(String, String, String), String> {
    let scheme_end = url.find("://").ok_or("proxy: not a URL")? + 3;
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..auth_end].rfind('@').map(|i| i + 1).unwrap_or(0);
    let host = &rest[host_start..auth_end];
    if host.is_empty() || host.contains(',') {
        return Err(format!("proxy: one HOST:PORT expected in the URL, not {host:?}"));
    }
    Ok((url[..scheme_end + host_start].to_string(), host.to_string(), rest[auth_end..].to_string()))
}

/// Walks the frontend messages of a byte stream, counting statements.
#[derive(Default)]
struct Scan {
    hdr: [u8; 5],
    have: usize,
    skip: usize,
    /// The start of the current Parse message's text.
    parse: Option<Vec<u8>>,
    /// Whether the statement before the next Sync is a renewal.
    renewal: bool,
}

impl Scan {
    fn feed(&mut self, mut b: &[u8], count: &Counts) {
        while !b.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(b.len());
                if let Some(p) = self.parse.as_mut() {
                    p.extend_from_slice(&b[..n.min(256usize.saturating_sub(p.len()))]);
                }
                self.skip -= n;
                b = &b[n..];
                if self.skip == 0 {
                    if let Some(p) = self.parse.take() {
                        self.renewal = p.windows(7).any(|w| w == b".renew(");
                    }
                }
                continue;
            }
            let n = (5 - self.have).min(b.len());
            self.hdr[self.have..self.have + n].copy_from_slice(&b[..n]);
            self.have += n;
            b = &b[n..];
            if self.have == 5 {
                match self.hdr[0] {
                    b'Q' => {
                        count.statements.fetch_add(1, Ordering::Relaxed);
                    }
                    b'S' => {
                        count.statements.fetch_add(1, Ordering::Relaxed);
                        if std::mem::take(&mut self.renewal) {
                            count.renewals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
                let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]) as usize;
                self.skip = len.saturating_sub(4);
                self.parse = (self.hdr[0] == b'P' && self.skip > 0).then(Vec::new);
                self.have = 0;
            }
        }
    }
}

async fn serve(mut client: TcpStream, upstream: &str, count: &Counts) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    // The startup packets: no type byte. Decline TLS and GSS encryption.
    let startup = loop {
        let mut head = [0u8; 8];
        client.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        if !(8..=10_000).contains(&len) {
            return Err(std::io::Error::other("bad startup packet"));
        }
        let mut body = vec![0u8; len];
        body[..8].copy_from_slice(&head);
        client.read_exact(&mut body[8..]).await?;
        break body;
    };
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    sw.write_all(&startup).await?;
    let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let mut scan = Scan::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = cr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        scan.feed(&buf[..n], count);
        sw.write_all(&buf[..n]).await?;
    }
    let _ = sw.shutdown().await;
    down.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_host() {
        let (a, h, b) = split_host("postgres://u:p@127.0.0.1:5432/db?sslmode=disable").unwrap();
        assert_eq!((a.as_str(), h.as_str(), b.as_str()), ("postgres://u:p@", "127.0.0.1:5432", "/db?sslmode=disable"));
        let (a, h, b) = split_host("postgres://127.0.0.1:5/db").unwrap();
        assert_eq!((a.as_str(), h.as_str(), b.as_str()), ("postgres://", "127.0.0.1:5", "/db"));
    }

    #[test]
    fn counts_queries_and_syncs_across_chunks() {
        let mut wire = Vec::new();
        let msg = |t: u8, body: &[u8], w: &mut Vec<u8>| {
            w.push(t);
            w.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            w.extend_from_slice(body);
        };
        msg(b'P', b"\0SELECT 1\0\0\0", &mut wire);
        msg(b'B', b"\0\0\0\0\0\0\0\0", &mut wire);
        msg(b'E', b"\0\0\0\0\0", &mut wire);
        msg(b'S', b"", &mut wire);
        msg(b'Q', b"LISTEN x\0", &mut wire);
        msg(b'P', b"\0SELECT \"ballot\".renew($1)\0\0\0", &mut wire);
        msg(b'B', b"\0\0\0\0\0\0\0\0", &mut wire);
        msg(b'E', b"\0\0\0\0\0", &mut wire);
        msg(b'S', b"", &mut wire);
        let c = Counts::default();
        let mut s = Scan::default();
        for chunk in wire.chunks(3) {
            s.feed(chunk, &c);
        }
        assert_eq!(c.statements.load(Ordering::Relaxed), 3);
        assert_eq!(c.renewals.load(Ordering::Relaxed), 1);
    }
}
