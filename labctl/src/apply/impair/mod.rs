//! Link impairments and static neighbours in the kernel (model/impair.rs,
//! model/neighbour.rs):
//!
//! - qdisc.rs: the tbf / netem / pfifo messages of an end's egress, sized
//!   from rate and delay; sent by the executor's Routes phase.
//! - loss.rs (+ loss.bpf.c): the seeded loss program at the receiving
//!   end's ingress, pinned so it outlives labctl; [`unpin_journaled`] for
//!   teardown.
//! - probe.rs: what the kernel cannot do, refused before `up` creates anything.
//! - [`change`]: what `x:impair` does during an experiment, and undoes after.

pub mod loss;
pub mod probe;
pub mod qdisc;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::model::ImpairSettings;
use crate::plan::Step;
use crate::sys::netns::NetnsError;

#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    #[error("loss program for {device}: {source}")]
    Bpf { device: String, source: crate::bpf::BpfError },
    #[error("{device}: cannot attach the loss program at ingress: {message}")]
    Attach { device: String, message: String },
    #[error("cannot pin {path}: {message}")]
    Pin { path: PathBuf, message: String },
    #[error("the BPF filesystem: {0}")]
    Bpffs(String),
    #[error("{device}: {message}")]
    Qdisc { device: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Teardown: detaches and unpins every loss program the journal names.
pub fn unpin_journaled(journal: &[Step]) -> Result<usize, NetnsError> {
    let mut removed = 0;
    for step in journal {
        if let Step::AttachLoss { pins, .. } = step {
            let gone = super::xdp::detach(pins).map_err(|source| NetnsError::Io {
                what: "cannot remove loss program pins",
                path: pins.clone(),
                source,
            })?;
            removed += usize::from(gone);
            // loss/, the lab's folder and labctl's, once empty.
            for dir in pins.ancestors().skip(1).take(3) {
                if std::fs::remove_dir(dir).is_err() && dir.exists() {
                    break;
                }
            }
        }
    }
    Ok(removed)
}

/// One end as `x:impair` changes it.
pub struct End<'a> {
    /// `h1:eth0`, for messages.
    pub name: String,
    pub netns: &'a File,
    pub ifindex: u32,
    pub mtu: u32,
    /// The loss program's pins at the peer, when the lab declared loss here.
    pub loss_pins: Option<&'a Path>,
}

/// Sets an end's impairments to `settings`, whole: the egress qdiscs are
/// replaced (or removed) and the loss program's state rewritten (its
/// packet count restarts). Refuses netem settings this kernel lacks, and
/// loss on an end without the program, before changing anything.
pub fn change(end: &End<'_>, settings: &ImpairSettings) -> Result<(), ImpairError> {
    if settings.loss.is_some() && end.loss_pins.is_none() {
        return Err(ImpairError::Refused(format!(
            "{}: the lab declared no loss on this end, so no loss program is attached; declare one in the lab (loss = \"0%\" attaches it and drops nothing)",
            end.name
        )));
    }
    if settings.needs_netem() {
        if let Some(why) = probe::netem_missing() {
            return Err(ImpairError::Refused(format!(
                "{}: delay, jitter and corrupt need sch_netem (or sch_fq for delay), absent from this kernel ({why}); rate, limit and loss work without it",
                end.name
            )));
        }
    }
    let messages = qdisc::messages(end.ifindex, settings, end.mtu);
    let qdisc_error =
        |e: super::netlink::Error| ImpairError::Qdisc { device: end.name.clone(), message: e.to_string() };
    crate::sys::netns::run_in(end.netns, || {
        crate::sys::rtnl::with_handle(|handle| async move {
            let netlink = super::netlink::Netlink::over(handle);
            netlink.delete_root_qdisc(end.ifindex).await.map_err(qdisc_error)?;
            for msg in messages {
                netlink.add_qdisc(msg, false).await.map_err(qdisc_error)?;
            }
            Ok::<(), ImpairError>(())
        })
        .map_err(|e| ImpairError::Qdisc { device: end.name.clone(), message: e.to_string() })?
    })??;
    if let Some(pins) = end.loss_pins {
        loss::set(pins, settings.loss_ppm().unwrap_or(0), settings.seed.unwrap_or(crate::model::impair::DEFAULT_SEED))?;
    }
    Ok(())
}
