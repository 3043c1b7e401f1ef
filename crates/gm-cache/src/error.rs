use std::path::PathBuf;

/// A boxed error from a dependency (SQLite, Redis), kept out of the public variants.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a cache store. The memory tier never fails; these come from the persistent tiers.
///
/// Grouped by phase: opening a store (the file or server is unusable, so the cache cannot start), and
/// using it (one operation failed; the caller may treat it as a miss and carry on without the cache).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Opening a store.
    /// The file could not be opened or created (a missing directory, no permission, a read-only disk).
    #[error("cannot open the cache file {path}: {source}; check that its directory exists and is writable")]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The file exists but is not a SQLite database (it holds something else, or its header is destroyed).
    #[error(
        "the cache file {path} is not a SQLite database; move it away or choose another path (it is never deleted, \
         since the same file may hold other gm data)"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The file is a SQLite database that fails its integrity check.
    #[error(
        "the cache file {path} is damaged ({detail}); move it away or choose another path, or recover it with \
         `sqlite3 FILE .recover` (it may hold run history too)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the integrity check or SQLite reported.
        detail: String,
    },
    /// The cache tables were written by a newer version of gm, whose layout this version does not know.
    #[error(
        "the cache tables in {path} have schema version {found}, newer than the {supported} this gm understands; \
         upgrade gm or choose another path"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build understands.
        supported: i64,
    },
    /// The Redis server could not be reached or refused the connection.
    #[error("cannot connect to redis at {url}: {source}; check that the server runs and the url is right")]
    Connect {
        /// The server's URL with any password removed.
        url: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    // Reading or writing a recorded answers file.
    /// A recorded answers file could not be read or written.
    #[error("could not {action} {}: {source}", path.display())]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a recorded answers file is not a recorded answer.
    #[error("{}:{line}: {message}; each line is one recorded answer, as --record and `gm cache export` write it", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },

    // Using a store.
    /// One operation on a store failed (the database stayed locked past the busy timeout, the disk is full,
    /// the connection dropped). The cache is unchanged; retry, or go on without the cache.
    #[error("the {store} cache failed: {source}; the request can go on without the cache")]
    Store {
        /// `sqlite` or `redis`.
        store: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}
