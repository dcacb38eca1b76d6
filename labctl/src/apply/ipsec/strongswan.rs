//! The strongswan backend: one charon per node, with kernel-libipsec (ESP
//! in user space over a TUN device `ipsec0`, ESP-in-UDP 4500 on the wire).
//!
//! Each charon runs inside its node's network namespace *and* a private
//! mount namespace with a tmpfs on /run (charon keeps a pid file and
//! sockets there; two daemons on one machine would collide), reading only
//! its own files in the node's state directory:
//!
//! ```text
//! /run/labctl/<lab>/ipsec/<node>/
//!   strongswan.conf  swanctl.conf  charon.vici (socket)  charon.pid  charon.log  backend
//! ```
//!
//! The state directory is bind-mounted back over the tmpfs, so the socket
//! is reachable from labctl's own mount namespace. `swanctl` (a VICI
//! client, talking to our daemon, not to the kernel) loads the config and
//! reports the SAs.

use std::ffi::CString;
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{Cipher, IpsecMode};
use crate::plan::IpsecTunnel;

pub const CHARON: &str = "/usr/lib/ipsec/charon";
pub const SWANCTL: &str = "swanctl";
/// Every tunnel's child SA has this name; the IKE SA is named after the link.
pub const CHILD: &str = "net";

#[derive(Debug, thiserror::Error)]
pub enum StrongswanError {
    #[error("{CHARON} is not installed: apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins")]
    NotInstalled,
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot start charon: {0}")]
    Spawn(std::io::Error),
    #[error("charon exited at start; its log {log}:\n{tail}")]
    Died { log: PathBuf, tail: String },
    #[error("charon did not open {0} within 10 s")]
    NoSocket(PathBuf),
    #[error("swanctl {args}: {message}")]
    Swanctl { args: String, message: String },
    #[error("tunnel {name} not up within {secs} s (child SA {CHILD} not INSTALLED on {node}); log {log}:\n{tail}")]
    Timeout { name: String, node: String, secs: u64, log: PathBuf, tail: String },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StrongswanError + 'a {
    move |source| StrongswanError::Io { what, path: path.to_path_buf(), source }
}

pub fn installed() -> bool {
    Path::new(CHARON).exists()
}

pub fn socket(dir: &Path) -> PathBuf {
    dir.join("charon.vici")
}

pub fn pidfile(dir: &Path) -> PathBuf {
    dir.join("charon.pid")
}

pub fn log(dir: &Path) -> PathBuf {
    dir.join("charon.log")
}

/// The configuration of the daemon itself (plugins, sockets, logging).
pub fn strongswan_conf(dir: &Path) -> String {
    format!(
        "# Written by labctl: charon for one lab node, ESP in user space (kernel-libipsec).
charon {{
  load = random nonce kdf aes sha1 sha2 hmac gcm openssl pem pkcs1 x509 revocation constraints pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  install_virtual_ip = no
  retransmit_tries = 3
  # No NAT-T keepalives (libipsec always encapsulates, so charon believes in
  # a NAT): nothing on the wire but what an experiment sends.
  keep_alive = 0s
  plugins {{
    vici {{
      socket = unix://{socket}
    }}
    kernel-libipsec {{
      load = yes
    }}
  }}
  filelog {{
    stderr {{
      default = 1
      ike = 1
      time_format = %b %e %T
    }}
  }}
}}
# swanctl, run by labctl against this charon: only the plugins it needs.
swanctl {{
  load = random openssl pem pkcs1 x509 revocation constraints pubkey
}}
",
        socket = socket(dir).display()
    )
}

fn proposals(cipher: Cipher) -> (&'static str, &'static str) {
    match cipher {
        Cipher::AesGcm128 => ("aes128-sha256-modp2048", "aes128gcm16"),
        Cipher::AesGcm256 => ("aes256-sha256-modp2048", "aes256gcm16"),
        Cipher::AesCbc128Sha256 => ("aes128-sha256-modp2048", "aes128-sha256"),
    }
}

/// swanctl.conf: one connection per tunnel, one key = value per line (swanctl rejects several on one line).
pub fn swanctl_conf(tunnels: &[IpsecTunnel]) -> String {
    let mut c = String::from("# Written by labctl.\nconnections {\n");
    for t in tunnels {
        let (ike, esp) = proposals(t.cipher);
        let (local_ts, remote_ts) = t.selectors();
        let mode = match t.mode {
            IpsecMode::Tunnel => "tunnel",
            IpsecMode::Transport => "transport",
        };
        let _ = write!(
            c,
            "  {name} {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = {ike}
    local {{
      auth = psk
      id = {local}
    }}
    remote {{
      auth = psk
      id = {remote}
    }}
    children {{
      {CHILD} {{
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = {esp}
        mode = {mode}
        start_action = none
      }}
    }}
  }}
",
            name = t.name,
            local = t.local,
            remote = t.remote,
        );
    }
    c.push_str("}\nsecrets {\n");
    for t in tunnels {
        let _ = write!(
            c,
            "  ike-{name} {{
    id-a = {local}
    id-b = {remote}
    secret = \"{psk}\"
  }}
",
            name = t.name,
            local = t.local,
            remote = t.remote,
            psk = t.psk.replace('\\', "\\\\").replace('"', "\\\""),
        );
    }
    c.push_str("}\n");
    c
}

/// Writes the two config files into `dir`.
pub fn write_config(dir: &Path, tunnels: &[IpsecTunnel]) -> Result<(), StrongswanError> {
    for (file, text) in [("strongswan.conf", strongswan_conf(dir)), ("swanctl.conf", swanctl_conf(tunnels))] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(io("write", &path))?;
    }
    Ok(())
}

/// The directories from just below /run down to `dir`, to recreate on the daemon's tmpfs.
fn dirs_below_run(dir: &Path) -> Vec<CString> {
    let mut out: Vec<CString> = dir
        .ancestors()
        .take_while(|a| *a != Path::new("/run") && *a != Path::new("/"))
        .map(|a| CString::new(a.as_os_str().as_bytes()).expect("no NUL in paths"))
        .collect();
    out.reverse();
    out
}

/// Starts charon for a node whose namespace is `netns`, with its files in
/// `dir`. The child writes its own pid to `dir`/charon.pid before exec, so
/// teardown can find it from the moment it exists. Returns its pid once
/// its VICI socket is open.
pub fn start(netns: &File, dir: &Path) -> Result<u32, StrongswanError> {
    if !installed() {
        return Err(StrongswanError::NotInstalled);
    }
    let log_path = log(dir);
    let log_file = File::create(&log_path).map_err(io("create", &log_path))?;
    let pid_path = pidfile(dir);
    let pid_file = File::create(&pid_path).map_err(io("create", &pid_path))?;
    let sock = socket(dir);
    let _ = std::fs::remove_file(&sock);

    // Everything the child needs, prepared before fork: pre_exec may only
    // make async-signal-safe calls (no allocation, no locks).
    let netns_fd = netns.as_raw_fd();
    let pid_fd = pid_file.as_raw_fd();
    let dir_c = CString::new(dir.as_os_str().as_bytes()).expect("no NUL in paths");
    let mkdirs = dirs_below_run(dir);
    let mut command = Command::new(CHARON);
    command
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(io("open", &log_path))?)
        .stderr(log_file);
    // SAFETY: between fork and exec only raw syscalls run (getpid, write,
    // setsid, setns, unshare, mount, open_tree, mkdir, move_mount, close) on
    // data built above; nothing allocates or takes a lock.
    unsafe {
        command.pre_exec(move || {
            use libc::{c_char, c_int, c_uint};
            let check = |r: c_int| if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) };
            // The pid first: from here on, `down` can find this process.
            let mut digits = [0u8; 12];
            let mut n = libc::getpid() as u32;
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            if libc::write(pid_fd, digits[at..].as_ptr().cast(), digits.len() - at) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Its own session: a Ctrl-C meant for labctl does not reach it.
            libc::setsid();
            check(libc::setns(netns_fd, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // Keep a detached copy of the state directory to put back on the tmpfs.
            let tree = libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                dir_c.as_ptr(),
                (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as c_uint,
            ) as c_int;
            check(tree)?;
            check(libc::mount(
                c"tmpfs".as_ptr(),
                c"/run".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755".as_ptr().cast(),
            ))?;
            for d in &mkdirs {
                if libc::mkdir(d.as_ptr(), 0o700) < 0 && *libc::__errno_location() != libc::EEXIST {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let empty: *const c_char = c"".as_ptr();
            check(libc::syscall(
                libc::SYS_move_mount,
                tree,
                empty,
                libc::AT_FDCWD,
                dir_c.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            ) as c_int)?;
            libc::close(tree);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(StrongswanError::Spawn)?;
    drop(pid_file);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(StrongswanError::Died { log: log(dir), tail: log_tail(dir) });
        }
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(StrongswanError::NoSocket(sock));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last lines of a node's charon log, for error messages.
pub fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(log(dir)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Runs `swanctl ARGS --uri unix://<dir>/charon.vici`; its stdout.
pub fn swanctl(dir: &Path, args: &[&str]) -> Result<String, StrongswanError> {
    let uri = format!("unix://{}", socket(dir).display());
    let out = Command::new(SWANCTL)
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .args(args)
        .args(["--uri", &uri])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| StrongswanError::Swanctl { args: args.join(" "), message: format!("cannot run it: {e}") })?;
    if !out.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(StrongswanError::Swanctl { args: args.join(" "), message: text.trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Loads the node's connections and secrets into its charon.
pub fn load(dir: &Path) -> Result<(), StrongswanError> {
    let file = dir.join("swanctl.conf");
    swanctl(dir, &["--load-all", "--noprompt", "--file", &file.to_string_lossy()]).map(|_| ())
}

/// Starts the IKE and child SA of tunnel `name` from this side; returns once
/// it is established (or swanctl gives up after `timeout`).
pub fn initiate(dir: &Path, name: &str, timeout: Duration) -> Result<(), StrongswanError> {
    let secs = timeout.as_secs().max(1).to_string();
    swanctl(dir, &["--initiate", "--ike", name, "--child", CHILD, "--timeout", &secs]).map(|_| ())
}

/// Waits until every tunnel's child SA is INSTALLED in this node's charon.
pub fn wait_installed(
    node: &str,
    dir: &Path,
    tunnels: &[IpsecTunnel],
    deadline: Instant,
) -> Result<(), StrongswanError> {
    loop {
        let sas =
            swanctl(dir, &["--list-sas", "--raw"]).map(|raw| super::vici::parse_list_sas(&raw)).unwrap_or_default();
        let missing = tunnels.iter().find(|t| {
            !sas.iter()
                .any(|ike| ike.name == t.name && ike.children.iter().any(|c| c.name == CHILD && c.state == "INSTALLED"))
        });
        let Some(missing) = missing else { return Ok(()) };
        if Instant::now() > deadline {
            return Err(StrongswanError::Timeout {
                name: missing.name.clone(),
                node: node.to_string(),
                secs: 15,
                log: log(dir),
                tail: log_tail(dir),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
