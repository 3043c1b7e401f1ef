//! A throwaway `redis-server`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::skip;

/// A `redis-server` of the test's own on a free loopback port, without persistence, stopped when dropped.
///
/// ```no_run
/// # fn test() {
/// let Some(redis) = gm_testkit::RedisServer::start() else { return };
/// let url = redis.url(); // redis://127.0.0.1:PORT
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server; `None` where `redis-server` is not installed, after the skip policy has had its
    /// say (see [`crate::skip`]).
    #[track_caller]
    pub fn start() -> Option<RedisServer> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    skip::missing_service("redis-server", "apt-get install redis-server");
                    return None;
                }
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            // The server logs this line once it accepts connections: waiting for it needs no sleep.
            let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
            if lines.by_ref().map_while(Result::ok).any(|l| l.contains("Ready to accept connections")) {
                // Keep reading its log, so a full pipe never blocks the server.
                std::thread::spawn(move || lines.for_each(drop));
                return Some(RedisServer { child, port });
            }
            // Most likely another process took the port in between; try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start on any of five ports");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
