//! Test harness for labctl's integration tests: a throwaway network + mount
//! namespace per test (DESIGN.md principle 6, "Tests are hermetic").
//!
//! A [`Sandbox`] is a long-lived anchor process (`cat` on a pipe) that was
//! started in its own network and mount namespace, with:
//! - `/` made recursively private (nothing propagates back to the machine),
//! - a private tmpfs on `/run` (so `/run/netns` and `/run/labctl` start empty
//!   and vanish with the sandbox),
//! - a fresh sysfs on `/sys` bound to the sandbox's netns (so
//!   `/sys/class/net` shows the sandbox's devices, never the machine's), with
//!   the machine's cgroup/tracing/debug mounts bound back in and a fresh
//!   bpffs if the machine has one,
//! - `lo` up.
//!
//! [`Sandbox::cmd`] builds a `Command` that joins both namespaces before
//! exec, so `ip`, `ping`, `labctl` ... run "on the sandbox's host". Dropping
//! the sandbox kills every process in it; its namespaces, mounts and every
//! netns bound under its `/run/netns` go away with it.
//!
//! Tests need root. Without it they panic (they never silently pass).

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, OsStr};
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{stat, Mode};
use nix::unistd::{Gid, Pid, Uid};

/// How long [`Sandbox::assert_clean`] waits for the kernel's asynchronous
/// namespace cleanup to settle.
pub const SETTLE: Duration = Duration::from_secs(5);

/// uid/gid of `nobody`, for the unprivileged-user tests.
pub const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------
// paths

/// The workspace root (the directory holding `labs/`, `lua/`, `fixtures/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate dir has a parent").to_path_buf()
}

/// `labs/<name>` in the repository, e.g. `lab_path("part1.lua")`.
pub fn lab_path(name: &str) -> PathBuf {
    repo_root().join("labs").join(name)
}

/// The labctl binary built for this test run.
pub fn labctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_labctl"))
}

/// A fresh, empty temporary directory for one test (under cargo's
/// `CARGO_TARGET_TMPDIR`, named after the test), e.g. for generated lab
/// scripts. Keep the [`tempfile::TempDir`] alive while the test needs the
/// folder: dropping it (also while a failing test unwinds) removes it.
pub fn temp_dir(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("labctl-it-{test}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a temporary dir")
}

/// Panics with a clear message unless we run as root: the integration tests
/// create namespaces and must not pass vacuously.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "labctl integration tests need root (CAP_SYS_ADMIN + CAP_NET_ADMIN) to create \
             network/mount namespaces; run them as root, e.g. \
             `sudo -E env \"PATH=$PATH\" cargo test --workspace`"
        );
    }
}

// ---------------------------------------------------------------------------
// output helpers

/// A readable description of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        status_str(out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_str(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s:?}"),
    }
}

/// Asserts the exit code (not killed by a signal) and returns stdout.
#[track_caller]
pub fn assert_code(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: expected exit {code}\n{}", describe(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A minimal line diff (lines only in `a` with `-`, only in `b` with `+`),
/// in order, good enough to read a host-state mismatch.
pub fn line_diff(a: &str, b: &str) -> String {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    // LCS table; the states are a few hundred lines.
    let (n, m) = (al.len(), bl.len());
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if al[i] == bl[j] { t[i + 1][j + 1] + 1 } else { t[i + 1][j].max(t[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut s) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && al[i] == bl[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || t[i][j + 1] >= t[i + 1][j]) {
            let _ = writeln!(s, "+ {}", bl[j]);
            j += 1;
        } else {
            let _ = writeln!(s, "- {}", al[i]);
            i += 1;
        }
    }
    s
}

/// Asserts two [`Sandbox::host_state`] fingerprints are identical, showing a
/// diff if not.
#[track_caller]
pub fn assert_same_state(before: &str, after: &str, what: &str) {
    if before != after {
        panic!("{what}: the sandbox's host state changed (- before, + after):\n{}", line_diff(before, after));
    }
}

// ---------------------------------------------------------------------------
// the sandbox

/// Identity of a namespace (or any file): device + inode.
type Ident = (u64, u64);

fn ident(path: &Path) -> Option<Ident> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One throwaway network + mount namespace. See the module docs.
pub struct Sandbox {
    anchor: Child,
    pid: u32,
    net: Arc<OwnedFd>,
    mnt: Arc<OwnedFd>,
    net_id: Ident,
    mnt_id: Ident,
}

impl Sandbox {
    /// Creates a sandbox and brings its `lo` up. Panics if not root or if
    /// the namespaces cannot be set up.
    pub fn new() -> Sandbox {
        require_root();
        let host_sys_has_bpffs = is_mount_point(Path::new("/sys/fs/bpf"));
        // The anchor is `cat` reading a pipe whose only writer is this
        // process (CLOEXEC): when the test process dies, however it dies,
        // `cat` sees EOF and exits, and the sandbox goes with it. (Not
        // PR_SET_PDEATHSIG: that fires when the *thread* that spawned the
        // child exits, and sandboxes may be made on short-lived threads.)
        let mut anchor = Command::new("cat");
        anchor.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: only async-signal-safe syscalls (unshare, mount, umount2,
        // mkdir, unlinkat, stat) on static C strings; no allocation.
        unsafe {
            anchor.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)?;
                mount(None::<&CStr>, c"/", None::<&CStr>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&CStr>)?;
                mount(
                    Some(c"tmpfs"),
                    c"/run",
                    Some(c"tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(c"mode=0755"),
                )?;
                remount_sys(host_sys_has_bpffs)?;
                Ok(())
            });
        }
        // std reports a pre_exec or exec failure as a spawn error, so once
        // spawn returns the anchor runs `cat` inside its namespaces.
        let anchor = anchor.spawn().unwrap_or_else(|e| panic!("sandbox setup failed: {e}"));
        let pid = anchor.id();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let net: OwnedFd = File::open(proc_dir.join("ns/net")).expect("open sandbox ns/net").into();
        let mnt: OwnedFd = File::open(proc_dir.join("ns/mnt")).expect("open sandbox ns/mnt").into();
        let net_id = ident(&proc_dir.join("ns/net")).unwrap();
        let mnt_id = ident(&proc_dir.join("ns/mnt")).unwrap();
        let sb = Sandbox { anchor, pid, net: Arc::new(net), mnt: Arc::new(mnt), net_id, mnt_id };
        sb.run_ok("ip", ["link", "set", "lo", "up"]);
        sb
    }

    /// Pid of the anchor process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// (dev, inode) of the sandbox's host network namespace.
    pub fn netns_ident(&self) -> (u64, u64) {
        self.net_id
    }

    /// (dev, inode) of the sandbox's mount namespace.
    pub fn mntns_ident(&self) -> (u64, u64) {
        self.mnt_id
    }

    /// A path inside the sandbox's filesystem view, readable and writable
    /// from the test process (`/proc/<anchor>/root/<path>`), e.g.
    /// `sb.path("/run/netns")`.
    pub fn path(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(rel)
    }

    /// A command that runs inside the sandbox (both namespaces), as root,
    /// with the test process's current directory. Do not call
    /// `current_dir`/`uid`/`gid` on it: use [`Sandbox::cmd_in`] /
    /// [`Sandbox::cmd_as`] instead (joining the mount namespace resets the
    /// working directory, and a non-root user could not join).
    ///
    /// The process gets PR_SET_PDEATHSIG=SIGKILL: it is killed when the
    /// *thread* that spawned it exits, so nothing outlives a test.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let cwd = std::env::current_dir().expect("current dir");
        self.build(program.as_ref(), &cwd, None)
    }

    /// Like [`Sandbox::cmd`], with working directory `dir` (resolved inside
    /// the sandbox; anything outside `/run` and `/sys` is the machine's).
    pub fn cmd_in(&self, dir: impl AsRef<Path>, program: impl AsRef<OsStr>) -> Command {
        self.build(program.as_ref(), dir.as_ref(), None)
    }

    /// Like [`Sandbox::cmd`], but drops to `uid`/`gid` (no supplementary
    /// groups) after joining the namespaces. The working directory is `/`.
    pub fn cmd_as(&self, uid: u32, gid: u32, program: impl AsRef<OsStr>) -> Command {
        self.build(program.as_ref(), Path::new("/"), Some((uid, gid)))
    }

    fn build(&self, program: &OsStr, cwd: &Path, user: Option<(u32, u32)>) -> Command {
        let net = Arc::clone(&self.net);
        let mnt = Arc::clone(&self.mnt);
        let cwd = CString::new(cwd.as_os_str().as_bytes()).expect("cwd without NUL");
        let mut c = Command::new(program);
        // SAFETY: only async-signal-safe syscalls (prctl, setns, chdir,
        // setgroups, setgid, setuid) on data prepared before fork.
        unsafe {
            c.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                setns(mnt.as_fd(), CloneFlags::CLONE_NEWNS)?;
                setns(net.as_fd(), CloneFlags::CLONE_NEWNET)?;
                nix::unistd::chdir(cwd.as_c_str())?;
                if let Some((uid, gid)) = user {
                    nix::unistd::setgroups(&[])?;
                    nix::unistd::setgid(Gid::from_raw(gid))?;
                    nix::unistd::setuid(Uid::from_raw(uid))?;
                }
                Ok(())
            });
        }
        c
    }

    /// Runs `program args...` inside, capturing output (stdin is null).
    pub fn run<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd(program);
        c.args(args);
        output(&mut c)
    }

    /// Runs `program args...` inside, panics (with its output) unless it
    /// exits 0; returns stdout.
    #[track_caller]
    pub fn run_ok<I, S>(&self, program: &str, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.run(program, &args);
        assert!(
            out.status.success(),
            "`{program} {}` failed in the sandbox\n{}",
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            describe(&out)
        );
        stdout(&out)
    }

    /// Runs a `sh -c` script inside.
    pub fn sh(&self, script: &str) -> Output {
        self.run("sh", ["-c", script])
    }

    /// Runs a `sh -ec` script inside, panics unless it exits 0; returns
    /// stdout.
    #[track_caller]
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.run("sh", ["-ec", script]);
        assert!(out.status.success(), "sh script failed in the sandbox:\n{script}\n{}", describe(&out));
        stdout(&out)
    }

    /// A `labctl` command inside the sandbox, as root, with the
    /// `LABCTL_FAULT_*` variables removed from its environment.
    pub fn labctl_cmd(&self) -> Command {
        let mut c = self.cmd(labctl_bin());
        c.env_remove("LABCTL_FAULT_ABORT_AFTER").env_remove("LABCTL_FAULT_FAIL_AT");
        c
    }

    /// Runs `labctl args...` inside and returns its output.
    pub fn labctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.labctl_cmd();
        c.args(args);
        output(&mut c)
    }

    /// Runs `labctl args...` inside, panics unless it exits 0; returns
    /// stdout.
    #[track_caller]
    pub fn labctl_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.labctl(&args);
        assert!(
            out.status.success(),
            "`labctl {}` failed\n{}",
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            describe(&out)
        );
        stdout(&out)
    }

    /// Runs `f` on a helper thread that joined the sandbox's network
    /// namespace (not its mount namespace: use [`Sandbox::path`] for files).
    /// Handy for reading `/proc/sys/net` or `/proc/net/*` without a process.
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.net.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into sandbox");
                f()
            })
            .join()
            .expect("in_netns thread panicked")
        })
    }

    /// Names bound under the sandbox's `/run/netns`, sorted.
    pub fn netns_list(&self) -> Vec<String> {
        list_dir(&self.path("/run/netns"))
    }

    /// Every path under the sandbox's `/run/labctl` (relative, sorted, dirs
    /// with a trailing `/`); empty if absent.
    pub fn labctl_state(&self) -> Vec<String> {
        let mut v = Vec::new();
        walk(&self.path("/run/labctl"), "", &mut v);
        v
    }

    /// Link names per network namespace bound under `/run/netns` (the
    /// sandbox's own host namespace is listed as `""`).
    pub fn netns_inventory(&self) -> Vec<(String, Vec<String>)> {
        let mut v = vec![(String::new(), self.links_in(None))];
        for ns in self.netns_list() {
            let links = self.links_in(Some(&ns));
            v.push((ns, links));
        }
        v
    }

    /// Number of links over the sandbox's host namespace and every bound
    /// netns (1 = just the host's `lo`).
    pub fn link_count_in_all_netns(&self) -> usize {
        self.netns_inventory().iter().map(|(_, l)| l.len()).sum()
    }

    fn links_in(&self, ns: Option<&str>) -> Vec<String> {
        let mut args = vec!["-o"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        args.extend(["link", "show"]);
        let out = self.run("ip", &args);
        if !out.status.success() {
            return vec![format!("<ip failed: {}>", stderr(&out).trim())];
        }
        stdout(&out)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// Processes that belong to the sandbox other than the anchor: those in
    /// its mount namespace, in its host netns, or in any netns bound under
    /// its `/run/netns`. After a test, this should be empty.
    pub fn processes(&self) -> Vec<(u32, String)> {
        let mut nets: BTreeSet<Ident> = BTreeSet::new();
        nets.insert(self.net_id);
        for ns in self.netns_list() {
            if let Some(id) = ident(&self.path("/run/netns").join(ns)) {
                nets.insert(id);
            }
        }
        let me = std::process::id();
        let mut v = Vec::new();
        for (pid, mnt, net) in all_processes() {
            if pid == self.pid || pid == me {
                continue;
            }
            if mnt == Some(self.mnt_id) || net.is_some_and(|n| nets.contains(&n)) {
                let comm =
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
                v.push((pid, comm.trim().to_string()));
            }
        }
        v
    }

    /// A text fingerprint of the sandbox's host namespace and run state:
    /// links (`ip -d link`: name, flags, mtu, mac, kind ...), addresses,
    /// v4/v6 routes of all tables, rules, netns ids, the nftables ruleset (if
    /// `nft` is installed), every readable sysctl under `/proc/sys/net`, and
    /// the entries of `/run/netns` and `/run/labctl` (an absent directory
    /// reads as empty). Compare with [`assert_same_state`].
    pub fn host_state(&self) -> String {
        let mut s = String::new();
        let sections: &[(&str, &[&str])] = &[
            ("links", &["-d", "link", "show"]),
            ("addresses", &["addr", "show"]),
            ("routes v4", &["-4", "route", "show", "table", "all"]),
            ("routes v6", &["-6", "route", "show", "table", "all"]),
            ("rules v4", &["-4", "rule", "show"]),
            ("rules v6", &["-6", "rule", "show"]),
            ("netns ids", &["netns", "list-id"]),
        ];
        for (name, args) in sections {
            let _ = writeln!(s, "## {name}");
            let out = self.run("ip", *args);
            if out.status.success() {
                s.push_str(&stdout(&out));
            } else {
                let _ = writeln!(s, "<ip {} failed: {}>", args.join(" "), stderr(&out).trim());
            }
        }
        let mut nft = self.cmd("nft");
        nft.args(["list", "ruleset"]);
        if let Ok(out) = nft.stdin(Stdio::null()).output() {
            let _ = writeln!(s, "## nftables");
            s.push_str(&stdout(&out));
        }
        let _ = writeln!(s, "## sysctl");
        let sysctls = self.in_netns(|| {
            let mut v = Vec::new();
            read_sysctls(Path::new("/proc/sys/net"), &mut v);
            v.sort();
            v
        });
        for (k, val) in sysctls {
            let _ = writeln!(s, "{k} = {val}");
        }
        let _ = writeln!(s, "## /run/netns");
        for n in self.netns_list() {
            let _ = writeln!(s, "{n}");
        }
        let _ = writeln!(s, "## /run/labctl");
        for n in self.labctl_state() {
            let _ = writeln!(s, "{n}");
        }
        s
    }

    /// Asserts that nothing of any lab is left: no netns bound, nothing
    /// under `/run/labctl`, no stray process, and the host state equal to
    /// `baseline` (from [`Sandbox::host_state`] before the lab existed).
    ///
    /// The kernel destroys network namespaces asynchronously (a veth whose
    /// peer was in a deleted netns, or the host's nsid for it, lingers for a
    /// moment), so this polls for up to [`SETTLE`] before failing; a real
    /// leak stays and fails.
    #[track_caller]
    pub fn assert_clean(&self, baseline: &str, what: &str) {
        let t0 = Instant::now();
        loop {
            let ns = self.netns_list();
            let st = self.labctl_state();
            let procs = self.processes();
            let now = self.host_state();
            let ok = ns.is_empty() && st.is_empty() && procs.is_empty() && now == baseline;
            if ok {
                return;
            }
            if t0.elapsed() > SETTLE {
                assert!(ns.is_empty(), "{what}: netns left in /run/netns: {ns:?}");
                assert!(st.is_empty(), "{what}: state left in /run/labctl: {st:?}");
                assert!(procs.is_empty(), "{what}: processes left in the sandbox: {procs:?}");
                assert_same_state(baseline, &now, what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills every process of the sandbox except the anchor (see
    /// [`Sandbox::processes`]).
    pub fn kill_strays(&self) {
        for _ in 0..100 {
            let procs = self.processes();
            if procs.is_empty() {
                return;
            }
            for (pid, _) in procs {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Everything in the sandbox goes: strays first (they could keep the
        // mount namespace, and with it the bound netns, alive), then the
        // anchor. Our ns fds close when the fields drop after this.
        self.kill_strays();
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// A prepared command (e.g. from [`Sandbox::cmd`], its `pre_exec` joining
/// the sandbox) for assert_cmd: `asserting(c).assert().success().stdout(...)`.
pub fn asserting(c: Command) -> assert_cmd::Command {
    assert_cmd::Command::from_std(c)
}

/// Runs a command with null stdin and captured stdout/stderr.
pub fn output(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", c.get_program()))
}

// ---------------------------------------------------------------------------
// helpers

// Why not `labctl::sys::sandbox::isolate` (public, and doing the same
// unshare + private `/` + fresh sysfs + bpffs): it is made for one labctl
// run on a user's machine, and what it does differently is what a test must
// not do.
// - It keeps the machine's `/run` and puts tmpfs only on `/run/netns` and
//   `/run/labctl`, on purpose: `/run/lock` stays shared so labs that must
//   run alone wait for other labctl runs (sys/machine_turn.rs). A test
//   sandbox replaces all of `/run`, so a test never waits for, or blocks, a
//   labctl run of someone else on the machine.
// - It creates `/run/netns` and `/run/labctl` on the machine when they are
//   missing (its mount points); tests never touch the machine's `/run/netns`.
// - The harness checks labctl, the library's sandbox included (`labctl
//   test -j`, exercise verify): built on the code under test, a bug there
//   would hide from the tests that should catch it.
// The sysfs part is the same recipe; the harness also carries over the
// security/config/pstore/fuse mounts and mounts a bpffs only where the
// machine has one, as before.

/// In the anchor, before exec: mount a sysfs for the new netns on /sys,
/// keeping the machine's cgroup, tracing, debug ... mounts, and a fresh
/// (private) bpffs if the machine has one.
fn remount_sys(fresh_bpffs: bool) -> std::io::Result<()> {
    const OLD: &CStr = c"/run/.sandbox-oldsys";
    // (path in old sysfs, path in new sysfs) of mounts to carry over
    const KEEP: &[(&CStr, &CStr)] = &[
        (c"/run/.sandbox-oldsys/fs/cgroup", c"/sys/fs/cgroup"),
        (c"/run/.sandbox-oldsys/kernel/tracing", c"/sys/kernel/tracing"),
        (c"/run/.sandbox-oldsys/kernel/debug", c"/sys/kernel/debug"),
        (c"/run/.sandbox-oldsys/kernel/security", c"/sys/kernel/security"),
        (c"/run/.sandbox-oldsys/kernel/config", c"/sys/kernel/config"),
        (c"/run/.sandbox-oldsys/fs/pstore", c"/sys/fs/pstore"),
        (c"/run/.sandbox-oldsys/fs/fuse/connections", c"/sys/fs/fuse/connections"),
    ];
    nix::unistd::mkdir(OLD, Mode::from_bits_truncate(0o700))?;
    mount(Some(c"/sys"), OLD, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>)?;
    mount(
        Some(c"sysfs"),
        c"/sys",
        Some(c"sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&CStr>,
    )?;
    let old_dev = stat(OLD)?.st_dev;
    for (from, to) in KEEP {
        if let Ok(st) = stat(*from) {
            if st.st_dev != old_dev {
                let _ = mount(Some(*from), *to, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>);
            }
        }
    }
    if fresh_bpffs {
        let _ = mount(Some(c"bpf"), c"/sys/fs/bpf", Some(c"bpf"), MsFlags::empty(), Some(c"mode=0700"));
    }
    umount2(OLD, MntFlags::MNT_DETACH)?;
    nix::unistd::unlinkat(nix::fcntl::AT_FDCWD, OLD, nix::unistd::UnlinkatFlags::RemoveDir)?;
    Ok(())
}

fn is_mount_point(p: &Path) -> bool {
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for name in list_dir(dir) {
        let p = dir.join(&name);
        let rel = format!("{prefix}{name}");
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            out.push(format!("{rel}/"));
            walk(&p, &format!("{rel}/"), out);
        } else {
            out.push(rel);
        }
    }
}

fn read_sysctls(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            read_sysctls(&p, out);
        } else if let Ok(v) = std::fs::read_to_string(&p) {
            let key = p.strip_prefix("/proc/sys/").unwrap_or(&p).to_string_lossy().replace('/', ".");
            out.push((key, v.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
    }
}

/// (pid, mount ns, net ns) of every process on the machine.
fn all_processes() -> Vec<(u32, Option<Ident>, Option<Ident>)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let d = e.path();
        v.push((pid, ident(&d.join("ns/mnt")), ident(&d.join("ns/net"))));
    }
    v
}

/// Whether any process on the machine is in the namespace `id`
/// (`kind` = "net", "mnt", ...).
pub fn namespace_in_use(kind: &str, id: (u64, u64)) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|s| s.parse::<u32>().is_ok()))
        .any(|e| ident(&e.path().join("ns").join(kind)) == Some(id))
}
