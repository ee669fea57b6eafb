//! The Linux facade: `sock_diag` dumps and destroy events ([`super::sockdiag`]), socket owners
//! from `/proc/*/fd` (the `procfs` crate), processes from `/proc/*/stat`, interface totals from
//! `/proc/net/dev`, and for `ntm exec` the tracer ([`super::trap`]).
//!
//! Mapping sockets to owners is the costly part (one `readlink` per file descriptor on the
//! machine), so it runs only when a socket inode appears that no earlier scan placed.

use std::collections::{HashMap, HashSet};

use procfs::process::FDTarget;

use super::sockdiag::{DestroyListener, Dumper};
use super::trap::{self, Tracer};
use super::{Facade, InterfaceCounters, MonitorError, Observation, ProcessInfo, Scope, Traced};

pub struct LinuxFacade {
    scope: Scope,
    dumper: Dumper,
    destroy: DestroyListener,
    tracer: Option<Tracer>,
    /// inode -> pid, from the scans so far.
    owners: HashMap<u64, u32>,
    /// Inodes a scan looked for and did not find (another scope, or an owner we may not read).
    unplaced: HashSet<u64>,
    /// Every process of the traced tree seen so far (they may be reparented when a parent
    /// exits).
    tree: HashSet<u32>,
    complete: bool,
}

pub fn system() -> Result<Box<dyn Facade>, MonitorError> {
    Ok(Box::new(LinuxFacade::new(Scope::All)?))
}

impl LinuxFacade {
    fn new(scope: Scope) -> Result<LinuxFacade, MonitorError> {
        // Subscribe first: a socket that closes while the first dump runs is still caught.
        let destroy = DestroyListener::start()?;
        Ok(LinuxFacade {
            scope,
            dumper: Dumper::new()?,
            destroy,
            tracer: None,
            owners: HashMap::new(),
            unplaced: HashSet::new(),
            tree: HashSet::new(),
            complete: true,
        })
    }

    /// Maps socket inodes to pids for the processes in scope; returns the mappings not known
    /// before.
    fn scan(&mut self, processes: &[ProcessInfo]) -> HashMap<u64, u32> {
        let mut fresh = HashMap::new();
        let mut complete = true;
        for p in processes {
            if let Scope::Tree(_) = self.scope {
                if !self.tree.contains(&p.pid) {
                    continue;
                }
            }
            let Ok(process) = procfs::process::Process::new(p.pid as i32) else {
                continue;
            };
            let fds = match process.fd() {
                Ok(fds) => fds,
                Err(procfs::ProcError::PermissionDenied(_)) => {
                    complete = false;
                    continue;
                }
                Err(_) => continue, // exited meanwhile
            };
            for fd in fds.flatten() {
                if let FDTarget::Socket(inode) = fd.target {
                    if self.owners.insert(inode, p.pid).is_none() {
                        fresh.insert(inode, p.pid);
                    }
                }
            }
        }
        self.complete = complete;
        fresh
    }
}

impl Facade for LinuxFacade {
    fn observe(&mut self) -> Result<Observation, MonitorError> {
        let (closed, lost_closed) = self.destroy.drain();
        let mut sockets = Vec::new();
        self.dumper.dump(&mut sockets)?;
        // The core keeps each socket's owner once known: it needs only the new mappings.
        let unknown: Vec<u64> = sockets
            .iter()
            .map(|s| s.inode)
            .filter(|i| *i != 0 && !self.owners.contains_key(i) && !self.unplaced.contains(i))
            .collect();
        // Every process is read when owners must be searched or a tree followed; otherwise
        // only the owners already known (their names, and whether they still run).
        let mut processes = if !unknown.is_empty() || matches!(self.scope, Scope::Tree(_)) {
            read_processes()
        } else {
            let pids: HashSet<u32> = self.owners.values().copied().collect();
            read_these(pids)
        };
        let mut cookie_owners = Vec::new();
        if let Some(tracer) = &self.tracer {
            for (cookie, process) in tracer.drain() {
                cookie_owners.push((cookie, process.pid));
                self.tree.insert(process.pid);
                if !processes.iter().any(|p| p.pid == process.pid) {
                    processes.push(process);
                }
            }
        }
        if let Scope::Tree(root) = self.scope {
            // Root 0: the baseline, taken before the command exists.
            if root != 0 {
                grow_tree(&mut self.tree, root, &processes);
            }
        }
        let mut fresh = HashMap::new();
        if !unknown.is_empty() {
            fresh = self.scan(&processes);
            self.unplaced
                .extend(unknown.into_iter().filter(|i| !self.owners.contains_key(i)));
            // Forget sockets that are gone, now and then rather than every poll.
            let present: HashSet<u64> = sockets.iter().map(|s| s.inode).collect();
            self.owners.retain(|i, _| present.contains(i));
            self.unplaced.retain(|i| present.contains(i));
        }
        Ok(Observation {
            sockets,
            closed,
            inode_owners: fresh,
            cookie_owners,
            processes,
            interfaces: read_interfaces(),
            owners_complete: self.complete,
            lost_closed,
        })
    }
}

/// Adds to `tree` every process descending from `root` or from a process already in it.
fn grow_tree(tree: &mut HashSet<u32>, root: u32, processes: &[ProcessInfo]) {
    tree.insert(root);
    loop {
        let before = tree.len();
        for p in processes {
            if tree.contains(&p.ppid) {
                tree.insert(p.pid);
            }
        }
        if tree.len() == before {
            return;
        }
    }
}

fn read_processes() -> Vec<ProcessInfo> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten().filter_map(|p| info(&p)).collect()
}

fn read_these(pids: HashSet<u32>) -> Vec<ProcessInfo> {
    pids.into_iter()
        .filter_map(|pid| procfs::process::Process::new(pid as i32).ok())
        .filter_map(|p| info(&p))
        .collect()
}

fn info(p: &procfs::process::Process) -> Option<ProcessInfo> {
    let s = p.stat().ok()?;
    Some(ProcessInfo {
        pid: s.pid as u32,
        ppid: s.ppid as u32,
        name: s.comm,
    })
}

fn read_interfaces() -> Vec<InterfaceCounters> {
    let Ok(devices) = procfs::net::dev_status() else {
        return Vec::new();
    };
    let mut out: Vec<InterfaceCounters> = devices
        .into_values()
        .map(|d| InterfaceCounters {
            name: d.name,
            rx_bytes: d.recv_bytes,
            tx_bytes: d.sent_bytes,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn spawn_traced(mut command: tokio::process::Command) -> Result<Traced, MonitorError> {
    let mut facade = LinuxFacade::new(Scope::Tree(0))?;
    let baseline = facade.observe()?;
    let pending = trap::prepare(&mut command);
    let program = format!("{:?}", command.as_std().get_program());
    let child = command.spawn().map_err(|error| MonitorError::Spawn {
        command: program.trim_matches('"').to_string(),
        error,
    })?;
    let pid = child.id().unwrap_or(0);
    facade.scope = Scope::Tree(pid);
    facade.tree.insert(pid);
    let (tracer, untraced_reason) = match pending.and_then(|p| p.start()) {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let traced = tracer.is_some();
    facade.tracer = tracer;
    Ok(Traced {
        child,
        facade: Box::new(facade),
        traced,
        untraced_reason,
        baseline,
    })
}
