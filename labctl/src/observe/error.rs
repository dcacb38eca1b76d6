//! The one error type of the observe stage; every variant says what was
//! being read, so a failing experiment points at the counter or capture.

use std::io;
use std::path::PathBuf;

use crate::sys::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot start a tokio runtime for netlink: {0}")]
    Runtime(io::Error),
    #[error("{what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
    #[error("no interface {ifname:?} in this namespace")]
    NoSuchInterface { ifname: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}:{line}: {msg}")]
    Parse { path: String, line: usize, msg: String },
    #[error("{what}: {source}")]
    Socket { what: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("not a valid pcapng file: {0}")]
    Pcapng(String),
}

pub type Result<T, E = ObserveError> = std::result::Result<T, E>;

impl ObserveError {
    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Self {
        let what = what.into();
        move |source| ObserveError::Netlink { what, source }
    }

    pub(crate) fn socket(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| ObserveError::Socket { what, source }
    }
}
