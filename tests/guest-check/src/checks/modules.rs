//! A real module load (a `.ko` from the same kernel package, its dependencies first) and
//! unload: each is exactly one symbol reload — the kernel's `module_load` event and the
//! `/proc/modules` check both notice a load, and the daemon must reload once — and the module's
//! symbols come and go in the symbol store.
//!
//! "Exactly once" is checked without timing: after the reload, the daemon must have checked
//! `/proc/modules` a few more times (its `module_checks` counter) with no further reload.

use std::process::Command;
use std::time::Duration;

use super::Mode;
use crate::client::eventually;
use crate::daemon::Daemon;
use crate::expect::{Expectations, ModuleFile};
use crate::report::{Results, Status};
use crate::wire::{Answer, DaemonStats, Request};

const LIMIT: Duration = Duration::from_secs(120);
/// Checks of `/proc/modules` after a reload that must find nothing new.
const QUIET_CHECKS: u64 = 4;

fn loaded(name: &str) -> bool {
    std::fs::read_to_string("/proc/modules")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').next() == Some(name)))
}

fn run(program: &str, arg: &str) -> Result<(), String> {
    let out = Command::new(program)
        .arg(arg)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {arg}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A symbol of `module` whose name appears once in `/proc/kallsyms`, with its address.
fn unique_symbol_of(module: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let tag = format!("[{module}]");
    let mut counts = std::collections::HashMap::<&str, u32>::new();
    for line in text.lines() {
        if let Some(name) = line.split_whitespace().nth(2) {
            *counts.entry(name).or_default() += 1;
        }
    }
    text.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (address, kind, name, owner) = (f.next()?, f.next()?, f.next()?, f.next()?);
        // Not arm64's `$x`/`$d` mapping symbols: a name of the module's own code.
        let named = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        (owner == tag && named && counts.get(name) == Some(&1) && matches!(kind, "T" | "t"))
            .then(|| Some((name.to_owned(), u64::from_str_radix(address, 16).ok()?)))
            .flatten()
    })
}

/// Runs `change` (a load or an unload) and waits for its one reload; returns the counters
/// after the quiet checks.
fn one_change_one_reload(
    daemon: &Daemon,
    mode: &Mode,
    what: &str,
    expect_kernel_event: bool,
    change: impl FnOnce() -> Result<(), String>,
) -> Result<DaemonStats, String> {
    let before = daemon.client.daemon_stats()?;
    change()?;
    let mut now = before.clone();
    let reloaded = eventually(LIMIT, || {
        daemon.client.daemon_stats().is_ok_and(|s| {
            let reloaded = s.symbol_reloads > before.symbol_reloads;
            now = s;
            reloaded
        })
    });
    if !reloaded {
        return Err(format!(
            "{what}: no symbol reload within {} s (checks {} -> {}, kernel module loads {} -> \
             {}); daemon log:\n{}",
            LIMIT.as_secs(),
            before.module_checks,
            now.module_checks,
            before.kernel_module_loads,
            now.kernel_module_loads,
            daemon.log_lines("symbol")
        ));
    }
    let at_reload = now.clone();
    let quiet = eventually(LIMIT, || {
        daemon.client.daemon_stats().is_ok_and(|s| {
            let quiet = s.module_checks >= at_reload.module_checks + QUIET_CHECKS
                && (!expect_kernel_event || s.kernel_module_loads > before.kernel_module_loads);
            now = s;
            quiet
        })
    });
    if !quiet {
        return Err(format!(
            "{what}: after the reload the daemon made no {QUIET_CHECKS} more module checks, or \
             the kernel's module-load event never came (checks {} -> {}, kernel module loads {} \
             -> {}, mode {mode:?})",
            at_reload.module_checks,
            now.module_checks,
            before.kernel_module_loads,
            now.kernel_module_loads
        ));
    }
    let reloads = now.symbol_reloads - before.symbol_reloads;
    let events = now.kernel_module_loads - before.kernel_module_loads;
    let wanted_events = u64::from(expect_kernel_event);
    if reloads != 1 || events != wanted_events {
        return Err(format!(
            "{what}: {reloads} symbol reloads (want 1), {events} kernel module-load events \
             (want {wanted_events}); daemon log:\n{}",
            daemon.log_lines("symbol")
        ));
    }
    Ok(now)
}

fn load_unload(
    daemon: &Daemon,
    expect: &Expectations,
    mode: &Mode,
) -> Result<(Status, String), String> {
    let Some((target, deps)) = expect.modules.split_last() else {
        return Err("the host named no module to load".to_owned());
    };
    // The kernel event needs eBPF; without it the /proc/modules check alone must reload once.
    let kernel_events = *mode == Mode::Kernel;
    let load = |m: &ModuleFile| -> Result<(), String> {
        if loaded(&m.name) {
            return Err(format!("{} is already loaded", m.name));
        }
        one_change_one_reload(
            daemon,
            mode,
            &format!("insmod {}", m.name),
            kernel_events,
            || run("insmod", &m.path.to_string_lossy()),
        )
        .map(drop)
    };
    for dep in deps {
        load(dep)?;
    }
    load(target)?;
    let (symbol, address) = unique_symbol_of(&target.name).ok_or_else(|| {
        format!(
            "no unique text symbol of [{}] in /proc/kallsyms",
            target.name
        )
    })?;
    match daemon.client.ask(&Request::SymbolByName {
        name: symbol.clone(),
    }) {
        Ok(Answer::SymbolAddress(a)) if a == address => {}
        other => {
            return Err(format!(
                "after loading {}: symbol {symbol} (at {address:#x} in kallsyms) answered {other:?}",
                target.name
            ));
        }
    }
    let after = one_change_one_reload(
        daemon,
        mode,
        &format!("rmmod {}", target.name),
        false,
        || run("rmmod", &target.name),
    )?;
    match daemon.client.ask(&Request::SymbolByName {
        name: symbol.clone(),
    }) {
        Err(e) if e.starts_with("not_found") => {}
        other => {
            return Err(format!(
                "after unloading {}: symbol {symbol} still answered {other:?}",
                target.name
            ));
        }
    }
    Ok((
        Status::Pass,
        format!(
            "{} module(s) loaded, {} unloaded: one reload each ({} in all, kernel module-load \
             events {}, module checks {}); {symbol} resolvable while loaded",
            expect.modules.len(),
            target.name,
            after.symbol_reloads,
            after.kernel_module_loads,
            after.module_checks
        ),
    ))
}

/// Loads and unloads the modules the host named.
pub fn load_and_unload(daemon: &Daemon, expect: &Expectations, mode: &Mode, results: &mut Results) {
    results.outcome(
        "module load and unload: one symbol reload each",
        load_unload(daemon, expect, mode),
    );
}
