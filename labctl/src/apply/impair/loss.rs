//! The seeded loss program (loss.bpf.c beside this file) at an interface's
//! ingress: compiled on first use and cached, loaded with aya, attached as
//! a tcx link from a thread inside the node's namespace, and pinned with
//! its state map in the step's folder
//! (`/sys/fs/bpf/labctl/<lab>/loss/<node>-<ifname>/{link,prog,maps/loss}`),
//! so it outlives labctl and `x:impair` can rewrite its state. Teardown
//! detaches the link and removes the folder.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use aya::maps::{Array, MapData};
use aya::programs::links::FdLink;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::Pod;

use super::ImpairError;
use crate::bpf;
use crate::sys::netns;

const SOURCE: &str = include_str!("loss.bpf.c");
const PROGRAM: &str = "loss_ingress";
const MAP: &str = "loss";

/// `struct loss_state` of loss.bpf.c.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossState {
    pub seed: u64,
    pub ppm: u32,
    pub pad: u32,
    pub seen: u64,
    pub dropped: u64,
}
// SAFETY: repr(C), plain integers, no padding (8 + 4 + 4 + 8 + 8).
unsafe impl Pod for LossState {}

fn bpf_error(device: &str) -> impl FnOnce(bpf::BpfError) -> ImpairError + '_ {
    move |source| ImpairError::Bpf { device: device.to_string(), source }
}

fn pin_error(path: &Path) -> impl FnOnce(String) -> ImpairError + '_ {
    move |message| ImpairError::Pin { path: path.to_path_buf(), message }
}

/// splitmix64's finaliser, as loss.bpf.c's `mix`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d049bb133111eb);
    x ^= x >> 31;
    x
}

/// Does the program drop the `n`-th IP packet (from 0) it counts? The same
/// decision as loss.bpf.c, for tests and for telling a user in advance.
pub fn drops(seed: u64, ppm: u32, n: u64) -> bool {
    mix(seed ^ mix(n + 1)) % 1_000_000 < u64::from(ppm)
}

/// How many of the first `count` packets the program drops.
pub fn dropped_of(seed: u64, ppm: u32, count: u64) -> u64 {
    (0..count).filter(|&n| drops(seed, ppm, n)).count() as u64
}

/// Compiles the program (cached): `up` calls it before anything exists.
pub fn compile() -> Result<PathBuf, bpf::BpfError> {
    bpf::compile_embedded("loss.c", SOURCE)
}

fn map_path(pins: &Path) -> PathBuf {
    pins.join("maps").join(MAP)
}

/// Loads, pins and attaches the program at `ifname`'s ingress inside `netns`.
pub fn attach(device: &str, ifname: &str, netns: &File, pins: &Path, ppm: u32, seed: u64) -> Result<(), ImpairError> {
    crate::sys::bpffs::ensure_mounted().map_err(|e| ImpairError::Bpffs(e.to_string()))?;
    let object = compile().map_err(bpf_error(device))?;
    let btf = bpf::kernel_btf().map_err(bpf_error(device))?;
    let maps = pins.join("maps");
    fs::create_dir_all(&maps).map_err(|e| pin_error(&maps)(e.to_string()))?;
    netns::run_in(netns, || {
        let mut ebpf = bpf::load(&object, &btf, |_| {}).map_err(bpf_error(device))?;
        let map_pin = map_path(pins);
        let map = ebpf.map(MAP).ok_or_else(|| pin_error(&map_pin)("no loss map in the program".into()))?;
        map.pin(&map_pin).map_err(|e| pin_error(&map_pin)(e.to_string()))?;
        let mut state: Array<&mut MapData, LossState> =
            Array::try_from(ebpf.map_mut(MAP).expect("found above")).map_err(|e| pin_error(&map_pin)(e.to_string()))?;
        state
            .set(0, LossState { seed, ppm, ..LossState::default() }, 0)
            .map_err(|e| pin_error(&map_pin)(e.to_string()))?;
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| pin_error(pins)(format!("no {PROGRAM} in loss.bpf.c")))?;
        program.load().map_err(|e| bpf_error(device)(bpf::program_error(PROGRAM, e)))?;
        let prog_pin = pins.join("prog");
        program.pin(&prog_pin).map_err(|e| pin_error(&prog_pin)(e.to_string()))?;
        let link_id = program
            .attach(ifname, TcAttachType::Ingress)
            .map_err(|e| ImpairError::Attach { device: device.into(), message: crate::diag::error_chain(&e) })?;
        let link = program.take_link(link_id).map_err(|e| pin_error(pins)(e.to_string()))?;
        let link_pin = pins.join("link");
        // Dropping an unpinned link detaches it: on an error here nothing stays attached.
        let link: FdLink = link.try_into().map_err(|e: aya::programs::links::LinkError| {
            pin_error(&link_pin)(format!(
                "the kernel attached the loss program through netlink, not tcx ({e}); labctl needs Linux 6.6 or later"
            ))
        })?;
        link.pin(&link_pin).map_err(|e| pin_error(&link_pin)(e.to_string()))?;
        Ok(())
    })?
}

fn open(pins: &Path) -> Result<Array<MapData, LossState>, ImpairError> {
    let path = map_path(pins);
    let data = MapData::from_pin(&path).map_err(|e| pin_error(&path)(e.to_string()))?;
    Array::try_from(aya::maps::Map::Array(data)).map_err(|e| pin_error(&path)(e.to_string()))
}

/// Rewrites the state: a new loss and seed, and the packet count from 0,
/// so the run that follows drops the same packets as any other.
pub fn set(pins: &Path, ppm: u32, seed: u64) -> Result<(), ImpairError> {
    let mut state = open(pins)?;
    state.set(0, LossState { seed, ppm, ..LossState::default() }, 0).map_err(|e| pin_error(pins)(e.to_string()))
}

/// The state now: packets seen and dropped since it was last written.
pub fn read(pins: &Path) -> Result<LossState, ImpairError> {
    open(pins)?.get(&0, 0).map_err(|e| pin_error(pins)(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_a_function_of_seed_and_count() {
        // simpleperf's loss experiment: 1000 packets, 10%, seed 7.
        assert_eq!(dropped_of(7, 100_000, 1000), 112);
        assert_eq!(dropped_of(7, 100_000, 1000), dropped_of(7, 100_000, 1000));
        assert_ne!(
            (0..1000).map(|n| drops(7, 100_000, n)).collect::<Vec<_>>(),
            (0..1000).map(|n| drops(8, 100_000, n)).collect::<Vec<_>>()
        );
        assert_eq!(dropped_of(7, 0, 1000), 0);
        assert_eq!(dropped_of(7, 1_000_000, 1000), 1000);
        // Near the asked rate over many packets.
        let many = dropped_of(3, 100_000, 100_000);
        assert!((9_500..10_500).contains(&many), "{many}");
    }
}
