//! Where the maps of an XDP program are pinned, libbpf-style but inside the
//! lab: a map declared `__uint(pinning, LIBBPF_PIN_BY_NAME)` goes to the
//! attachment's own folder (`<lab>/<node>-<ifname>/maps/<name>`), so every
//! interface has its own copy, unless the lab shares it
//! (`xdp(..., { share_maps = { "tx_port" } })`): then to the lab's
//! `<lab>/shared/<name>`, and every attachment that shares it opens the
//! same map. Never anywhere else: nothing outside `/sys/fs/bpf/labctl/<lab>/`.
//!
//! The verifier's pass before `up` loads objects too, and aya pins by-name
//! maps as it creates them: [`in_scratch_bpffs`] gives that pass a bpffs of
//! its own, in a mount namespace that ends with the pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::model::layout::BPFFS;

/// The folder of the maps a lab shares between attachments, beside the
/// attachments' own folders (`<node>-<ifname>` names always have a dash).
pub fn shared_dir(pins: &Path) -> PathBuf {
    pins.parent().unwrap_or(pins).join("shared")
}

/// The pin path of every map aya must pin as it creates it: the by-name
/// maps and the shared ones. Other maps are pinned after loading.
pub fn map_paths(pins: &Path, by_name: &[String], share: &[String]) -> Vec<(String, PathBuf)> {
    let shared: BTreeSet<&String> = share.iter().collect();
    let mut all: Vec<(String, PathBuf)> = share.iter().map(|m| (m.clone(), shared_dir(pins).join(m))).collect();
    all.extend(by_name.iter().filter(|m| !shared.contains(m)).map(|m| (m.clone(), pins.join("maps").join(m))));
    all
}

/// A step of making the scratch bpffs that failed, with the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ScratchBpffsError {
    what: &'static str,
    source: nix::Error,
}

/// Runs `f` on a thread with a mount namespace of its own and a fresh bpffs
/// at /sys/fs/bpf there: what `f` pins is gone when the thread ends.
pub fn in_scratch_bpffs<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, ScratchBpffsError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let fail = |what: &'static str| move |source| ScratchBpffsError { what, source };
                // A thread may unshare its mount namespace (with its fs info) alone.
                unshare(CloneFlags::CLONE_NEWNS).map_err(fail("unshare(CLONE_NEWNS)"))?;
                mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .map_err(fail("make / private"))?;
                mount(Some("bpf"), BPFFS, Some("bpf"), MsFlags::empty(), Some("mode=0700"))
                    .map_err(fail("mount a scratch bpffs"))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_maps_go_to_the_attachment_shared_ones_to_the_lab() {
        let pins = Path::new("/sys/fs/bpf/labctl/l/h2-eth0");
        let by_name = vec!["stats".to_string(), "tx_port".to_string()];
        let paths = map_paths(pins, &by_name, &["tx_port".to_string()]);
        assert_eq!(
            paths,
            vec![
                ("tx_port".to_string(), PathBuf::from("/sys/fs/bpf/labctl/l/shared/tx_port")),
                ("stats".to_string(), PathBuf::from("/sys/fs/bpf/labctl/l/h2-eth0/maps/stats")),
            ]
        );
    }
}
