//! Turns on the machine for labs that run at the same time (`labctl test
//! -j`, two `labctl test`s, a `labctl run` beside them). A lab takes a
//! *shared* turn while it sends or measures (an experiment's traffic,
//! commands and counter windows), and an *exclusive* turn while it changes
//! something every lab sees (`x:host_sysctl`'s window, or a whole lab that
//! declared `lab { exclusive = true }`). So one lab's small backlog never
//! meets another lab's measurement, yet labs share the machine everywhere
//! else: bring-up, teardown, and the experiments of labs that change nothing
//! machine-wide all overlap.
//!
//! Two flock(2) locks under /run/lock, seen from every sandbox: the turn
//! itself, and a gate that a lab waiting for an exclusive turn holds, so
//! that new shared turns queue behind it instead of starving it (flock on
//! its own has no writer preference). Turns nest: a shared turn inside an
//! exclusive one is part of it; an exclusive turn inside a shared one gives
//! the shared turn up first (two labs converting at once would otherwise
//! each wait for the other's shared turn) and takes it back after.
//!
//! Where /run/lock cannot be opened there is nobody to share with: turns
//! are then free.

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use nix::fcntl::{Flock, FlockArg};

use crate::model::layout::{MACHINE_GATE, MACHINE_TURN};

/// The state of this process's turns.
struct Turns {
    paths: [&'static str; 2],
    turn: Held,
    gate: Held,
    shared_depth: u32,
    exclusive_depth: u32,
}

/// One lock file, open, locked or not.
#[derive(Default)]
enum Held {
    /// Not opened yet (or /run/lock is not there).
    #[default]
    Closed,
    Open(File),
    Locked(Flock<File>),
}

impl Held {
    fn lock(&mut self, path: &str, how: FlockArg) {
        let file = match std::mem::take(self) {
            Held::Closed => match open(path) {
                Some(file) => file,
                None => return,
            },
            Held::Open(file) => file,
            Held::Locked(locked) => match locked.unlock() {
                Ok(file) => file,
                Err((locked, _)) => {
                    *self = Held::Locked(locked);
                    return;
                }
            },
        };
        *self = match Flock::lock(file, how) {
            Ok(locked) => Held::Locked(locked),
            Err((file, _)) => Held::Open(file),
        };
    }

    fn unlock(&mut self) {
        *self = match std::mem::take(self) {
            Held::Locked(locked) => match locked.unlock() {
                Ok(file) => Held::Open(file),
                Err((locked, _)) => Held::Locked(locked),
            },
            other => other,
        };
    }
}

fn open(path: &str) -> Option<File> {
    if let Some(dir) = Path::new(path).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    File::options().create(true).truncate(false).write(true).open(path).ok()
}

fn turns() -> &'static Mutex<Turns> {
    static TURNS: OnceLock<Mutex<Turns>> = OnceLock::new();
    TURNS.get_or_init(|| Mutex::new(Turns::at([MACHINE_TURN, MACHINE_GATE])))
}

impl Turns {
    fn at(paths: [&'static str; 2]) -> Turns {
        Turns { paths, turn: Held::Closed, gate: Held::Closed, shared_depth: 0, exclusive_depth: 0 }
    }

    /// A shared turn, behind any lab waiting for an exclusive one.
    fn take_shared(&mut self) {
        self.gate.lock(self.paths[1], FlockArg::LockExclusive);
        self.turn.lock(self.paths[0], FlockArg::LockShared);
        self.gate.unlock();
    }

    fn enter_shared(&mut self) {
        if self.shared_depth == 0 && self.exclusive_depth == 0 {
            self.take_shared();
        }
        self.shared_depth += 1;
    }

    fn leave_shared(&mut self) {
        self.shared_depth -= 1;
        if self.shared_depth == 0 && self.exclusive_depth == 0 {
            self.turn.unlock();
        }
    }

    fn enter_exclusive(&mut self) {
        if self.exclusive_depth == 0 {
            self.turn.unlock();
            self.gate.lock(self.paths[1], FlockArg::LockExclusive);
            self.turn.lock(self.paths[0], FlockArg::LockExclusive);
        }
        self.exclusive_depth += 1;
    }

    fn leave_exclusive(&mut self) {
        self.exclusive_depth -= 1;
        if self.exclusive_depth == 0 {
            self.turn.unlock();
            self.gate.unlock();
            if self.shared_depth > 0 {
                self.take_shared();
            }
        }
    }
}

fn with_turns(f: impl FnOnce(&mut Turns)) {
    let mut turns = turns().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut turns);
}

/// A turn held until dropped.
#[must_use = "the turn ends when this is dropped"]
pub struct Turn {
    exclusive: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.exclusive {
            with_turns(Turns::leave_exclusive);
        } else {
            with_turns(Turns::leave_shared);
        }
    }
}

/// Waits for a shared turn: no lab changes the machine until it is dropped.
pub fn shared() -> Turn {
    with_turns(Turns::enter_shared);
    Turn { exclusive: false }
}

/// Waits for an exclusive turn: no other lab sends or measures until it is dropped.
pub fn exclusive() -> Turn {
    with_turns(Turns::enter_exclusive);
    Turn { exclusive: true }
}

/// Runs `f` in a shared turn.
pub fn sharing<T>(f: impl FnOnce() -> T) -> T {
    let _turn = shared();
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_nest_and_count_back_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| -> &'static str { dir.path().join(name).to_string_lossy().into_owned().leak() };
        let mut turns = Turns::at([path("turn"), path("gate")]);
        turns.enter_shared();
        turns.enter_shared();
        turns.enter_exclusive();
        turns.enter_shared();
        assert_eq!((turns.shared_depth, turns.exclusive_depth), (3, 1));
        assert!(matches!(turns.turn, Held::Locked(_)) && matches!(turns.gate, Held::Locked(_)));
        let other = File::options().write(true).open(turns.paths[0]).unwrap();
        let other = Flock::lock(other, FlockArg::LockSharedNonblock).map(drop);
        assert!(other.is_err(), "an exclusive turn keeps other labs' shared turns out");
        turns.leave_shared();
        turns.leave_exclusive();
        let other = File::options().write(true).open(turns.paths[0]).unwrap();
        let other = Flock::lock(other, FlockArg::LockExclusiveNonblock).map(drop);
        assert!(other.is_err(), "back in the shared turn: no other lab may take it whole");
        turns.leave_shared();
        turns.leave_shared();
        assert_eq!((turns.shared_depth, turns.exclusive_depth), (0, 0));
        assert!(!matches!(turns.turn, Held::Locked(_)), "the turn is given back");
        assert!(!matches!(turns.gate, Held::Locked(_)), "the gate is given back");
        let other = File::options().write(true).open(turns.paths[0]).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok(), "free once every turn ended");
    }
}
