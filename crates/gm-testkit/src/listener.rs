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
