//! A local server speaking the GitHub Models wire protocol.
