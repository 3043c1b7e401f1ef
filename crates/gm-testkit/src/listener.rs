//! A loopback port that counts the connections made to it and answers none: proof that a run sent nothing.

use std::net::TcpListener;

/// A listener on a free loopback port that never answers; [`CountingListener::connections`] says how many
/// connections reached it.
///
/// The kernel completes a connection's handshake before anyone accepts it, so a connection made to the port
/// waits in the backlog; counting drains the backlog, and the count is exact once the client is done.
///
/// ```
/// let listener = gm_testkit::CountingListener::bind();
/// assert_eq!(listener.connections(), 0);
/// std::net::TcpStream::connect(listener.addr()).unwrap();
/// assert_eq!(listener.connections(), 1);
/// ```
#[derive(Debug)]
pub struct CountingListener {
    listener: TcpListener,
    counted: std::cell::Cell<usize>,
}

impl CountingListener {
    /// Binds a free port on 127.0.0.1.
    pub fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        Self { listener, counted: std::cell::Cell::new(0) }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().expect("the listener's address")
    }

    /// `http://127.0.0.1:PORT/v1`: a base URL for OpenAI-style providers.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// The connections made to the port so far.
    pub fn connections(&self) -> usize {
        while let Ok((stream, _)) = self.listener.accept() {
            drop(stream);
            self.counted.set(self.counted.get() + 1);
        }
        self.counted.get()
    }
}

/// A loopback port that forwards every connection to `upstream` and counts them: a run through it can be
/// recorded, and its replay shown to connect nowhere.
///
/// ```
/// use std::io::{Read, Write};
/// let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let proxy = gm_testkit::CountingProxy::start(upstream.local_addr().unwrap());
/// let mut client = std::net::TcpStream::connect(proxy.addr()).unwrap();
/// let (mut server, _) = upstream.accept().unwrap();
/// client.write_all(b"ping").unwrap();
/// let mut got = [0u8; 4];
/// server.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"ping");
/// assert_eq!(proxy.connections(), 1);
/// ```
#[derive(Debug)]
pub struct CountingProxy {
    addr: std::net::SocketAddr,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream`, on threads of its own.
    pub fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let addr = listener.local_addr().expect("the proxy's address");
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, stopped) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(upstream) else { continue };
                for (mut from, mut to) in [
                    (client.try_clone().expect("a socket handle"), server.try_clone().expect("a socket handle")),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { addr, count, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: a base URL for OpenAI-style providers.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The connections made to the proxy so far.
    pub fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}
