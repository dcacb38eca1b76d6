//! One rtnetlink connection for one job. A netlink socket belongs to the
//! network namespace of the thread that opens it, so the connection is
//! opened on the calling thread and driven there by a current-thread
//! runtime: call [`with_handle`] inside [`run_in`](super::netns::run_in) or
//! [`in_scratch`](super::netns::in_scratch) to talk to that namespace.

use std::future::Future;
use std::io;

use rtnetlink::Handle;

/// Runs `job` with a fresh rtnetlink handle in the calling thread's
/// namespace; the connection closes when the job ends. Fails only if the
/// runtime or the socket cannot be made.
pub fn with_handle<T, Fut>(job: impl FnOnce(Handle) -> Fut) -> io::Result<T>
where
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(job(handle).await)
    })
}
