//! Runs rtnetlink queries inside a namespace: on a [`run_in`] thread, over a
//! connection opened there ([`rtnl::with_handle`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::Handle;

use super::error::{ObserveError, Result};
use crate::sys::netns::run_in;
use crate::sys::rtnl;

/// Calls `query` with a fresh rtnetlink handle inside the namespace behind `netns`.
pub(crate) fn query<T, F, Fut>(netns: &File, query: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    run_in(netns, || rtnl::with_handle(query).map_err(ObserveError::Runtime)?)?
}

/// Interface names by index, to print tables with names rather than numbers.
pub(crate) async fn link_names(handle: &Handle) -> Result<BTreeMap<u32, String>> {
    let mut links = handle.link().get().execute();
    let mut names = BTreeMap::new();
    while let Some(msg) = links.try_next().await.map_err(ObserveError::netlink("dump links"))? {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        names.insert(msg.header.index, name.unwrap_or_else(|| format!("if{}", msg.header.index)));
    }
    Ok(names)
}

/// True if a netlink error says "no such device" (how the kernel answers a
/// lookup by a name it does not know).
pub(crate) fn is_no_such_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::ENODEV)
}
