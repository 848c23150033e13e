//! A socket read at a pace: after a read that drained what was there, the next one waits a
//! window, and meanwhile the socket is out of the runtime's epoll set, so what the engine
//! writes in that time wakes no one; the next read takes it all at once.
//!
//! Why: the engine writes (and flushes) each event on its own, so a reader that waits in epoll
//! wakes once per event, and on a VM a wake-up costs more than everything we do with the event
//! (measured here: `curl` alone, reading the same storm, spent 44 µs an event). Read at most
//! once a window while events keep coming, a burst costs one wake-up; an idle stream still
//! waits in epoll and costs nothing. What it costs is up to a window of delay before an event
//! is counted: nothing next to a scrape interval.
//!
//! The engine must never have to wait for us (it drops events for a subscriber that stalls):
//! the wait is shortened so that what piles up in it stays about [`BACKLOG_BYTES`], a third of
//! a unix socket's default buffer, and a read that fills its buffer is followed at once by the
//! next.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Sleep;

/// What may pile up in the socket during a wait, at the rate of the last window: the wait is
/// shortened to keep to it.
pub const BACKLOG_BYTES: usize = 64 * 1024;

/// A tokio socket that can leave the runtime's epoll set (as its std self) and come back.
pub trait Socket: Sized {
    type Std: Read + Write;
    /// Into the epoll set. Adding a socket that is readable already reports it, so nothing
    /// that arrived while it was out is missed.
    fn watch(socket: Self::Std) -> io::Result<Self>;
    /// Out of the epoll set.
    fn unwatch(self) -> io::Result<Self::Std>;
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

macro_rules! socket {
    ($tokio:ty, $std:ty) => {
        impl Socket for $tokio {
            type Std = $std;
            fn watch(socket: $std) -> io::Result<Self> {
                <$tokio>::from_std(socket)
            }
            fn unwatch(self) -> io::Result<$std> {
                self.into_std()
            }
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$tokio>::poll_read_ready(self, cx)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$tokio>::try_read(self, buf)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$tokio>::poll_write_ready(self, cx)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$tokio>::try_write(self, buf)
            }
        }
    };
}

socket!(UnixStream, std::os::unix::net::UnixStream);
socket!(TcpStream, std::net::TcpStream);

/// A socket in the runtime's epoll set only while it waits for data.
pub struct Paced<S: Socket> {
    /// Out of the epoll set: read directly (non-blocking).
    idle: Option<S::Std>,
    /// In the epoll set, waiting to be readable (or writable).
    watched: Option<S>,
    /// The longest wait between reads, in nanoseconds: zero (read as data comes) until the
    /// owner turns it on, once the connection's set-up (TLS, the response head) is through.
    window: Arc<AtomicU64>,
    /// The wait under way.
    quiet: Option<Pin<Box<Sleep>>>,
    /// Bytes read since the last wait ended.
    drained: usize,
}

impl<S: Socket> Paced<S> {
    /// `window`: the longest wait between reads, in nanoseconds; zero reads as data comes.
    pub fn new(socket: S, window: Arc<AtomicU64>) -> Self {
        Self {
            idle: None,
            watched: Some(socket),
            window,
            quiet: None,
            drained: 0,
        }
    }

    fn watched(&mut self) -> io::Result<&S> {
        if let Some(socket) = self.idle.take() {
            self.watched = Some(S::watch(socket)?);
        }
        self.watched
            .as_ref()
            .ok_or_else(|| io::Error::other("paced socket lost"))
    }

    fn unwatch(&mut self) -> io::Result<()> {
        if let Some(socket) = self.watched.take() {
            self.idle = Some(socket.unwatch()?);
        }
        Ok(())
    }

    /// After a read of `n` bytes into room for `room`: out of the epoll set, and a wait
    /// before the next read, unless it ended the stream or filled the room (more is queued).
    /// The wait is the window, shortened when the last one let more than [`BACKLOG_BYTES`]
    /// pile up.
    fn pace(&mut self, n: usize, room: usize) -> io::Result<()> {
        self.drained += n;
        let window = Duration::from_nanos(self.window.load(Ordering::Relaxed));
        if n == 0 || n == room || window.is_zero() {
            return Ok(());
        }
        let wait = wait_after(window, self.drained);
        self.drained = 0;
        if wait >= Duration::from_millis(1) {
            self.unwatch()?;
            self.quiet = Some(Box::pin(tokio::time::sleep(wait)));
        }
        Ok(())
    }
}

/// The wait after a drain of `drained` bytes: the window, shortened in proportion when more
/// than [`BACKLOG_BYTES`] piled up in the last one.
fn wait_after(window: Duration, drained: usize) -> Duration {
    window.mul_f64((BACKLOG_BYTES as f64 / drained.max(1) as f64).min(1.0))
}

impl<S: Socket + Unpin> AsyncRead for Paced<S>
where
    S::Std: Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(quiet) = &mut this.quiet {
            ready!(quiet.as_mut().poll(cx));
            this.quiet = None;
        }
        let room = buf.remaining();
        if let Some(socket) = &mut this.idle {
            match socket.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    this.pace(n, room)?;
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        loop {
            let socket = this.watched()?;
            ready!(socket.poll_read_ready(cx))?;
            match socket.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    this.pace(n, room)?;
                    return Poll::Ready(Ok(()));
                }
                // Not readable after all: the readiness was cleared; wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: Socket + Unpin> AsyncWrite for Paced<S>
where
    S::Std: Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(socket) = &mut this.idle {
            match socket.write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        loop {
            let socket = this.watched()?;
            ready!(socket.poll_write_ready(cx))?;
            match socket.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const WINDOW: Duration = Duration::from_millis(50);

    fn pair() -> (Paced<UnixStream>, std::os::unix::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        a.set_nonblocking(true).expect("non-blocking");
        let a = UnixStream::from_std(a).expect("registered");
        let window = Arc::new(AtomicU64::new(WINDOW.as_nanos() as u64));
        (Paced::new(a, window), b)
    }

    /// Writes made while the reader waits are read after the wait; writing, and the end of
    /// the stream, work as on any socket.
    #[tokio::test]
    async fn a_burst_is_one_read_and_an_idle_stream_answers_at_once() {
        let (mut paced, mut peer) = pair();
        let mut buf = [0u8; 1024];
        // The window starts after the first read, so it has passed since before that read.
        let start = Instant::now();
        peer.write_all(b"one\n").expect("write");
        let n = paced.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"one\n", "an idle stream's first line at once");
        for line in [b"two\n", b"six\n"] {
            peer.write_all(line).expect("write");
        }
        let n = paced.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"two\nsix\n", "the burst in one read");
        assert!(start.elapsed() >= WINDOW, "the second read waited");
        peer.write_all(b"ten\n").expect("write");
        let n = paced.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"ten\n");
        paced.write_all(b"back").await.expect("write");
        let mut back = [0u8; 4];
        peer.read_exact(&mut back).expect("read back");
        assert_eq!(&back, b"back");
        drop(peer);
        // The wait after "ten", then the end of the stream.
        assert_eq!(paced.read(&mut buf).await.expect("read"), 0);
    }

    /// A window that let more than the backlog pile up is followed by a shorter one, in
    /// proportion; one that filled the room is followed by no wait at all.
    #[tokio::test]
    async fn the_wait_shrinks_as_the_backlog_grows() {
        assert_eq!(wait_after(WINDOW, 500), WINDOW);
        assert_eq!(wait_after(WINDOW, BACKLOG_BYTES), WINDOW);
        assert_eq!(wait_after(WINDOW, 2 * BACKLOG_BYTES), WINDOW / 2);
        assert_eq!(wait_after(WINDOW, 4 * BACKLOG_BYTES), WINDOW / 4);
        let (mut paced, _peer) = pair();
        paced.pace(100, 1000).expect("paced");
        assert!(paced.quiet.take().is_some(), "a small read waits");
        paced.pace(1000, 1000).expect("paced");
        assert!(paced.quiet.is_none(), "a full read is followed at once");
        assert_eq!(paced.drained, 1000, "and counts toward the next wait");
        paced.window.store(0, Ordering::Relaxed);
        paced.pace(10, 1000).expect("paced");
        assert!(paced.quiet.is_none(), "a zero window never waits");
    }
}
