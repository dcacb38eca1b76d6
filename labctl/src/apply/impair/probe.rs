//! Can this kernel do what a lab's impairments ask? Asked before `up`
//! creates anything: netem is tried on `lo` of a scratch namespace (gone
//! with its thread), and the loss program is compiled.

use crate::diag::Diagnostic;
use crate::model::Lab;
use crate::sys::{netns, rtnl};

/// The kernel's answer to creating a netem qdisc: `None` if it took it.
pub fn netem_missing() -> Option<String> {
    let tried = netns::in_scratch(|| {
        rtnl::with_handle(|handle| async move {
            let netlink = super::super::netlink::Netlink::over(handle);
            netlink.add_qdisc(super::qdisc::netem_probe(1), false).await.map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())?
    });
    match tried {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) => Some(e.to_string()),
    }
}

/// One diagnostic per impairment the kernel cannot do, at its line.
pub fn check(lab: &Lab) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let wants_netem: Vec<_> = lab.impairments.iter().filter(|i| i.settings.needs_netem()).collect();
    if !wants_netem.is_empty() {
        if let Some(why) = netem_missing() {
            for i in wants_netem {
                let s = &i.settings;
                let what: Vec<&str> =
                    [("delay", s.delay.is_some()), ("jitter", s.jitter.is_some()), ("corrupt", s.corrupt.is_some())]
                        .into_iter()
                        .filter_map(|(name, set)| set.then_some(name))
                        .collect();
                found.push(
                    Diagnostic::new(
                        i.origin.clone(),
                        format!(
                            "impair(\"{}:{}\"): {} needs sch_netem (or sch_fq for delay), absent from this kernel (creating a netem qdisc failed: {why})",
                            i.node,
                            i.ifname,
                            what.join(", ")
                        ),
                    )
                    .help("run the lab on a kernel with sch_netem (the VM lane, .ci/vm-lane, has one), or leave delay, jitter and corrupt out; rate, limit and loss work without it"),
                );
            }
        }
    }
    if let Some(first) = lab.impairments.iter().find(|i| i.settings.loss.is_some()) {
        if let Err(e) = super::loss::compile() {
            found.push(
                Diagnostic::new(
                    first.origin.clone(),
                    format!("loss needs labctl's BPF loss program, which did not compile: {e}"),
                )
                .help("install clang and libbpf-dev (.ci/packages.txt), or leave loss out"),
            );
        }
    }
    found
}
