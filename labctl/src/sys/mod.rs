//! Kernel access shared by every stage that touches a running lab: entering
//! and creating network namespaces ([`netns`]), socket options socket2 has no
//! method for ([`sockopt`]), the BPF filesystem ([`bpffs`]), and
//! turns on the machine between labs that run at once ([`machine_turn`]), an
//! rtnetlink connection for one job in the thread's namespace ([`rtnl`]), work
//! that waits on the kernel split over a few threads ([`in_parts`]). No lab
//! vocabulary here: these take names, paths and file descriptors.

pub mod bpffs;
pub mod in_parts;
pub mod machine_turn;
pub mod netns;
pub mod rtnl;
pub mod sandbox;
pub mod sockopt;
