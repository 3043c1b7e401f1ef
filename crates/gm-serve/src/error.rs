//! The one error type of gm-serve, grouped by phase: configuration, start-up, keys, serving.

use std::net::SocketAddr;

/// Everything that can stop the gateway or one of its administrative commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    // --- configuration ---
    /// The routing file or a flag is not valid; the message names the place and the fix.
    #[error("{0}")]
    Config(String),
    /// An upstream names a credential variable that is not set.
    #[error(
        "upstream `{upstream}` takes its credential from the environment variable {var}, which is not set; \
         export it before starting gm serve"
    )]
    MissingCredential {
        /// The upstream's name in the routing file.
        upstream: String,
        /// The variable's name (never its value).
        var: String,
    },
    /// A non-loopback address without client keys or `--public`.
    #[error(
        "refusing to listen on {addr} with neither client keys nor --public: anyone who can reach it could spend \
         the upstream quota; create a key with `gm serve keys create --name NAME`, pass --public for a showcase \
         with per-visitor limits, or listen on 127.0.0.1"
    )]
    Exposed {
        /// The address asked for.
        addr: SocketAddr,
    },

    // --- start-up ---
    /// The listening socket could not be opened.
    #[error("could not listen on {addr}: {source}; pick another --port or stop what is using it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An upstream's client could not be built (a bad URL, a credential with characters headers cannot carry).
    #[error("upstream `{upstream}`: {source}")]
    Client {
        /// The upstream's name.
        upstream: String,
        /// Why.
        #[source]
        source: gm_http::Error,
    },
    /// The gateway's state (the state file, the Redis server, a limits file) could not be opened.
    #[error(transparent)]
    State(Box<gm_app::Error>),
    /// The key store in the state file or the Redis server failed.
    #[error("{what} failed: {source}; check that the state file is writable (--data-dir) or that --redis answers")]
    Store {
        /// Which store, doing what.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The state file was damaged and moved aside, and the client keys it held could not be read back: the
    /// gateway will not serve without keys it had.
    #[error(
        "the state file {} was damaged and moved to {}, and the client keys it held could not be read back from \
         it; rather than serve without keys, gm serve stops. Make new keys with `gm serve keys create --name NAME` \
         (`--admin` for the dashboard's administrator) and hand them out again; or, if this gateway never had \
         client keys, `gm serve keys accept-lost` lets it serve on loopback without them",
        state_file.display(),
        moved_to.display()
    )]
    KeysLost {
        /// The state file (new, without the keys).
        state_file: std::path::PathBuf,
        /// Where the damaged file is.
        moved_to: std::path::PathBuf,
    },

    // --- keys ---
    /// No key has this id or name.
    #[error("no key has the id or name `{0}`; `gm serve keys list` shows them")]
    UnknownKey(String),

    // --- serving ---
    /// The server stopped with an error.
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl From<gm_app::Error> for ServeError {
    fn from(e: gm_app::Error) -> Self {
        ServeError::State(Box::new(e))
    }
}

impl ServeError {
    /// Whether the caller can fix it by changing what it gave (a flag, the routing file, a key's name, a
    /// variable to export), rather than a failure of the machine or the network.
    pub fn is_usage(&self) -> bool {
        match self {
            ServeError::Config(_)
            | ServeError::MissingCredential { .. }
            | ServeError::Exposed { .. }
            | ServeError::UnknownKey(_) => true,
            ServeError::State(e) => e.is_usage(),
            ServeError::Client { source, .. } => source.is_usage(),
            _ => false,
        }
    }

    pub(crate) fn store(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ServeError::Store { what: what.into(), source: Box::new(e) }
    }
}
