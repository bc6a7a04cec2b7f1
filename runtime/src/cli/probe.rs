//! `sluice probe URL`: a container health check without a shell or curl in
//! the image. GETs a plain-HTTP URL (`http://127.0.0.1:9090/healthz`) and
//! exits 0 on a 2xx answer, 1 otherwise.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{EXIT_INVALID, EXIT_OK};

/// Arguments of `sluice probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    /// Time limit of the whole request.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The status code of `GET url`.
pub fn get(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{host}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())
}

/// Runs `sluice probe`.
pub fn main(a: &Args) -> i32 {
    match get(&a.url, a.timeout) {
        Ok(code) if (200..300).contains(&code) => EXIT_OK,
        Ok(code) => {
            crate::errln!("{}: HTTP {code}", a.url);
            EXIT_INVALID
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_INVALID
        }
    }
}
