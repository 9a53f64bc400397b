//! The device's connection to the cloud: a TCP stream that counts every byte it reads and
//! writes (HTTP/2 frames and all, below gRPC), and a switch a test can throw to break the
//! connection as if the network dropped it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::cloud::WINDOW_BYTES;

/// Byte counts shared by every connection of a run, and the break switch.
#[derive(Debug, Default)]
pub struct LinkMeter {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// When set, the next read or write of a connection fails (and clears it).
    pub break_once: AtomicBool,
}

/// A TCP stream counted by a [`LinkMeter`].
pub struct CountedStream {
    inner: TcpStream,
    meter: Arc<LinkMeter>,
}

impl CountedStream {
    fn broken(&self) -> bool {
        self.meter.break_once.swap(false, Ordering::SeqCst)
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection broken (test hook)",
    )
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.broken() {
            return Poll::Ready(Err(reset()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.meter.received.fetch_add(read, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.broken() {
            return Poll::Ready(Err(reset()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.meter
                .sent
                .fetch_add(*written as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A lazily connected channel to `address` (`host:port`) whose connections `meter` counts.
pub fn counted_channel(address: &str, meter: Arc<LinkMeter>) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("`{address}` is not a host:port address: {e}"))?
        .initial_stream_window_size(WINDOW_BYTES)
        .initial_connection_window_size(WINDOW_BYTES);
    let target = address.to_string();
    let connector = tower::service_fn(move |_: Uri| {
        let (target, meter) = (target.clone(), meter.clone());
        async move {
            let inner = TcpStream::connect(&target).await?;
            inner.set_nodelay(true)?;
            Ok::<_, io::Error>(TokioIo::new(CountedStream { inner, meter }))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
