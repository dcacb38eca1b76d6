//! Kernel access shared by every stage that touches a running lab: entering
//! and creating network namespaces ([`netns`]), socket options socket2 has no
//! method for ([`sockopt`]), and the BPF filesystem ([`bpffs`]). No lab
//! vocabulary here: these take names, paths and file descriptors.

pub mod bpffs;
pub mod netns;
pub mod sandbox;
pub mod sockopt;
