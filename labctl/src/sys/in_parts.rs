//! A slice's work split over a few scoped threads, for work that mostly
//! waits on the kernel (netlink round trips in many namespaces, unmounts that
//! each end in an RCU grace period): waits from several threads overlap.

/// Runs `work` on `threads` parts of `items` at once, one thread per part,
/// and returns each part's result in order. A panic in a part is the caller's.
pub fn in_parts<I: Sync, T: Send>(items: &[I], threads: usize, work: impl Fn(&[I]) -> T + Sync) -> Vec<T> {
    let size = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = items.chunks(size).map(|part| scope.spawn(|| work(part))).collect();
        parts.into_iter().map(|p| p.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::in_parts;

    #[test]
    fn every_item_is_worked_once_in_at_most_the_threads_asked() {
        let items: Vec<u32> = (1..=20).collect();
        let parts = in_parts(&items, 8, |part| part.to_vec());
        assert_eq!(parts.len(), 7, "20 items in parts of 3");
        assert_eq!(parts.concat(), items);
        assert!(in_parts(&[] as &[u32], 8, |part| part.len()).is_empty());
        assert_eq!(in_parts(&items, 0, |part| part.len()), vec![20]);
    }
}
