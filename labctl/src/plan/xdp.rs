//! The XDP steps of a plan: one [`Step::AttachXdp`] per `xdp(...)`
//! declaration, after routes (a program may look them up with
//! `bpf_fib_lookup`) and after interface tuning (GRO gives a veth the NAPI
//! it needs to receive XDP_TX and XDP_REDIRECT frames).
//!
//! Each step names the bpffs folder its pins go to; the journal holds the
//! step before the program is attached, so `down` can always unpin it.

use std::collections::HashMap;
use std::fmt;

use super::{Device, Step};
use crate::model::layout::pin_dir;
use crate::model::{Lab, XdpMode, XdpObject};

pub(super) fn steps(lab: &Lab, ifindex_of: &HashMap<(String, String), u32>) -> Vec<Step> {
    lab.xdp
        .iter()
        .map(|x| Step::AttachXdp {
            device: Device {
                node: x.node.clone(),
                ifname: x.ifname.clone(),
                ifindex: ifindex_of[&(x.node.clone(), x.ifname.clone())],
            },
            object: x.object.clone(),
            program: x.program.clone(),
            mode: x.mode,
            pins: pin_dir(&lab.name, &x.node, &x.ifname),
            compile: x.compile.clone(),
            share_maps: x.share_maps.clone(),
        })
        .collect()
}

pub(super) fn describe(
    f: &mut fmt::Formatter<'_>,
    device: &Device,
    object: &XdpObject,
    program: &Option<String>,
    mode: XdpMode,
    pins: &std::path::Path,
    share_maps: &[String],
) -> fmt::Result {
    let from = match object {
        XdpObject::Source(p) => format!("compiled from {}", p.display()),
        XdpObject::Object(p) => format!("from {}", p.display()),
    };
    let name = program.as_deref().unwrap_or("(the object's XDP program)");
    write!(f, "{device}: xdp attach {name} {from} ({mode}), pinned in {}", pins.display())?;
    if !share_maps.is_empty() {
        write!(f, ", sharing {}", share_maps.join(", "))?;
    }
    Ok(())
}
