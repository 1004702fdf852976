//! [`Collector`]: loads the programs, attaches them, and turns their ring buffers into batches
//! of [`KernelEvent`]s. Dropping it detaches everything.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, RawTracePoint};
use aya::{Ebpf, EbpfLoader};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use watchpost_core::start_time::BootClock;
use watchpost_ebpf_common::{
    DNS_COUNTERS_MAP, DNS_EVENTS_MAP, DNS_MATCHING_GLOBAL, DNS_QUERIES_OTHER_MAP,
    DNS_QUERIES_TRUSTED_MAP, EXEC_OPTIONS_GLOBAL, ExecOptions, KERNEL_EVENTS_MAP,
    KERNEL_OFFSETS_GLOBAL, LOST_EVENTS_MAP, RING_WAKEUP_GLOBAL, RingWakeup, TRUSTED_NETNS_MAP,
    program_name, record_kind,
};

use crate::btf::{BtfError, KERNEL_BTF_PATH, KernelBtf};
use crate::cgroup_root::cgroup2_mount_point;
use crate::clock::read_boot_clock;
use crate::decode::decode_record;
use crate::dns_matching::{
    DnsCounterReader, DnsCounters, DnsMatchingOptions, TrustedNamespaces, own_network_namespace,
};
use crate::error::{LoadError, LoadStage, ReadError};
use crate::event::{KernelEvent, SymbolReloadCause};
use crate::offsets::kernel_layout;

/// The programs object, built from `ebpf/programs` by this crate's build script.
static PROGRAMS_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/watchpost-ebpf-programs"));

/// What to collect and how much kernel memory to give it.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// Attach `sched_process_{fork,exec,exit}`.
    pub process_events: bool,
    /// Attach the DNS answer capture to the cgroup v2 root.
    pub dns_answers: bool,
    /// Attach `module_load` when the kernel has it (see [`ModuleLoadSignal`]).
    pub module_loads: bool,
    /// Attach `cgroup_mkdir`/`cgroup_rmdir` when the kernel has them: cgroup v2 directories
    /// created and removed, with their IDs (containers are known when their cgroup appears).
    pub cgroup_events: bool,
    /// Bytes of the process/module ring buffer: a power of two, at least one page. Fork and exit
    /// records take 88 bytes, renames 48, execs 88 plus their two paths (typically 130–250;
    /// at most about 8.5 KiB), plus 8 bytes of ring header each.
    pub kernel_ring_bytes: u32,
    /// Bytes of the DNS ring buffer: a power of two, at least one page. A record takes 88 bytes
    /// plus the DNS message.
    pub dns_ring_bytes: u32,
    /// Where cgroup v2 is mounted; `None` finds it in `/proc/mounts`.
    pub cgroup_root: Option<PathBuf>,
    /// The kernel BTF to read structure offsets from.
    pub btf_path: PathBuf,
    /// When the process/module program wakes the reader (DNS answers always wake it).
    pub wakeup: WakeupPolicy,
    /// How DNS answers are matched to the queries that asked for them.
    pub dns_matching: DnsMatchingOptions,
    /// Resolve the path of the file each exec ran (the default). `false` reports only the path
    /// given to execve, as before resolution existed: for measuring what it costs.
    pub resolve_exe_paths: bool,
    /// The boot clock to convert kernel times with; `None` reads it from `/proc/stat`. A
    /// program that already built one (the daemon's `/proc` reader) passes it, so both sides
    /// use the very same clock and it is built once.
    pub boot_clock: Option<BootClock>,
}

/// When the ring-buffer reader wakes up and drains. No policy uses a periodic timer: an idle
/// reader sleeps until the kernel wakes it, and the kernel wakes it only for the first record
/// after the reader had caught up (see `wakeup_flags` in `ebpf/programs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeupPolicy {
    /// Drain as soon as woken: lowest latency, but at moderate rates nearly one cross-CPU
    /// wake-up per record, because the reader keeps catching up.
    EveryRecord,
    /// Drain at once after a quiet period; when wake-ups come in quick succession (the previous
    /// one less than `4 × window` ago: records keep arriving), wait `window` after a wake-up
    /// before draining. While the reader waits it has not caught up, so the records of the
    /// window cause no further wake-ups and travel in one batch; the process programs also
    /// force a wake-up once an eighth of the ring is waiting, which ends the wait early. A
    /// record waits at most about `window` (plus the drain) while the reader keeps up.
    Coalesced {
        /// Longest time a woken reader lets records gather under load.
        window: Duration,
    },
}

/// Under [`WakeupPolicy::Coalesced`], wake-ups closer together than this many windows mean
/// "under load": the reader lets records gather before draining.
const BUSY_WINDOWS: u32 = 4;

impl WakeupPolicy {
    /// The programs' forced wake-up threshold for a ring of `ring_bytes` (0: none).
    fn threshold_bytes(self, ring_bytes: u32) -> u32 {
        match self {
            WakeupPolicy::EveryRecord => 0,
            WakeupPolicy::Coalesced { .. } => (ring_bytes / 8).max(1),
        }
    }

    fn window(self) -> Option<Duration> {
        match self {
            WakeupPolicy::EveryRecord => None,
            WakeupPolicy::Coalesced { window } if window.is_zero() => None,
            WakeupPolicy::Coalesced { window } => Some(window),
        }
    }
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            process_events: true,
            dns_answers: true,
            module_loads: true,
            cgroup_events: true,
            kernel_ring_bytes: 4 << 20,
            dns_ring_bytes: 1 << 20,
            cgroup_root: None,
            btf_path: PathBuf::from(KERNEL_BTF_PATH),
            wakeup: WakeupPolicy::Coalesced {
                window: Duration::from_millis(5),
            },
            dns_matching: DnsMatchingOptions::default(),
            resolve_exe_paths: true,
            boot_clock: None,
        }
    }
}

/// Where "kernel symbols changed" signals come from on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleLoadSignal {
    /// The `module_load` program is attached: every module load becomes a
    /// [`SymbolReloadCause::ModuleLoaded`] event.
    Attached,
    /// The kernel has no module support (no `module_load` tracepoint): the symbol table only
    /// changes with BPF programs and the like; use [`SymbolReloadTrigger`] to ask for a reload.
    KernelWithoutModules,
    /// Not asked for in the options.
    NotRequested,
}

/// What [`Collector::load`] attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachments {
    /// `sched_process_{fork,exec,exit}` are attached.
    pub process_events: bool,
    /// `task_rename` is attached (process names follow `prctl(PR_SET_NAME)` and the like).
    pub renames: bool,
    /// The DNS capture (answers in, queries out) is attached to this cgroup v2 root.
    pub dns_cgroup_root: Option<PathBuf>,
    /// Answers must match an outstanding query (see [`DnsMatchingOptions::require_query`]).
    pub dns_queries_matched: bool,
    /// The module-load signal.
    pub module_loads: ModuleLoadSignal,
    /// `cgroup_mkdir`/`cgroup_rmdir` are attached.
    pub cgroup_events: bool,
    /// `cgroup_notify_populated` is attached too.
    pub cgroup_populated_events: bool,
}

/// Records the kernel dropped because a ring buffer was full, by kind, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostEvents {
    /// Fork records lost.
    pub fork: u64,
    /// Exec records lost.
    pub exec: u64,
    /// Exit records lost.
    pub exit: u64,
    /// Module-load records lost.
    pub module_load: u64,
    /// DNS answers lost.
    pub dns_answer: u64,
    /// Renames lost.
    pub rename: u64,
    /// cgroup creations/removals lost.
    pub cgroup: u64,
}

impl LostEvents {
    /// All lost records.
    pub fn total(&self) -> u64 {
        self.fork
            .saturating_add(self.exec)
            .saturating_add(self.exit)
            .saturating_add(self.module_load)
            .saturating_add(self.dns_answer)
            .saturating_add(self.rename)
            .saturating_add(self.cgroup)
    }
}

/// A shareable reader of the kernel's lost-record counters (cheap to clone).
#[derive(Clone)]
pub struct LostEventCounter {
    map: Arc<PerCpuArray<MapData, u64>>,
}

impl std::fmt::Debug for LostEventCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LostEventCounter").finish_non_exhaustive()
    }
}

impl LostEventCounter {
    /// Reads the counters now (one syscall per kind).
    pub fn read(&self) -> Result<LostEvents, ReadError> {
        let sum = |kind: u32| -> Result<u64, ReadError> {
            let values = self.map.get(&kind, 0).map_err(|source| ReadError::Map {
                map: LOST_EVENTS_MAP,
                source,
            })?;
            Ok(values.iter().fold(0u64, |acc, v| acc.saturating_add(*v)))
        };
        Ok(LostEvents {
            fork: sum(record_kind::FORK)?,
            exec: sum(record_kind::EXEC)?,
            exit: sum(record_kind::EXIT)?,
            module_load: sum(record_kind::MODULE_LOAD)?,
            dns_answer: sum(record_kind::DNS_ANSWER)?,
            rename: sum(record_kind::RENAME)?,
            cgroup: sum(record_kind::CGROUP)?,
        })
    }
}

/// Asks the collector to emit a [`SymbolReloadCause::Requested`] event (cheap to clone; usable
/// from any thread). Several requests before the next batch make one event.
#[derive(Debug, Clone, Default)]
pub struct SymbolReloadTrigger {
    requested: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl SymbolReloadTrigger {
    /// Requests a kernel-symbol reload; wakes a waiting [`Collector::next_batch`].
    pub fn trigger(&self) {
        self.requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn take(&self) -> bool {
        self.requested.swap(false, Ordering::AcqRel)
    }
}

/// Counters of the userspace side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Ring-buffer records read.
    pub records_read: u64,
    /// Records that did not decode (a bug: each is also logged).
    pub decode_errors: u64,
}

/// A ring buffer, registered with the tokio reactor on first async use.
enum RingState {
    Plain(RingBuf<MapData>),
    Registered(AsyncFd<RingBuf<MapData>>),
    /// Only while switching between the two above.
    Moving,
}

struct Ring {
    name: &'static str,
    state: RingState,
}

impl Ring {
    fn ring(&mut self) -> Option<&mut RingBuf<MapData>> {
        match &mut self.state {
            RingState::Plain(ring) => Some(ring),
            RingState::Registered(fd) => Some(fd.get_mut()),
            RingState::Moving => None,
        }
    }

    fn register(&mut self) -> Result<(), ReadError> {
        if !matches!(self.state, RingState::Plain(_)) {
            return Ok(());
        }
        let RingState::Plain(ring) = std::mem::replace(&mut self.state, RingState::Moving) else {
            return Ok(());
        };
        if tokio::runtime::Handle::try_current().is_err() {
            self.state = RingState::Plain(ring);
            return Err(ReadError::Poll {
                map: self.name,
                source: std::io::Error::other("not called from within a tokio runtime"),
            });
        }
        // SAFETY: the ring owns its map's file descriptor (`MapData` holds an `OwnedFd`), which
        // stays open and is returned by every `as_raw_fd` call until the ring is dropped, and the
        // ring inside the `AsyncFd` is never swapped for another (only `next()` is called on it).
        let registered = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
        match registered {
            Ok(fd) => {
                self.state = RingState::Registered(fd);
                Ok(())
            }
            Err(error) => {
                let (ring, source) = error.into_parts();
                self.state = RingState::Plain(ring);
                Err(ReadError::Poll {
                    map: self.name,
                    source,
                })
            }
        }
    }

    /// Waits until the kernel signals new records, then clears the readiness (the caller
    /// drains next). Pending forever for a ring not registered.
    async fn wait_readable(&self) -> Result<(), ReadError> {
        let RingState::Registered(fd) = &self.state else {
            return std::future::pending().await;
        };
        let mut guard = fd.readable().await.map_err(|source| ReadError::Poll {
            map: self.name,
            source,
        })?;
        guard.clear_ready();
        Ok(())
    }
}

async fn wait_readable(ring: &Option<Ring>) -> Result<(), ReadError> {
    match ring {
        Some(ring) => ring.wait_readable().await,
        None => std::future::pending().await,
    }
}

/// Records taken from one ring before looking at the other, so a flood on one does not starve
/// the other within a batch.
const FAIRNESS_CHUNK: usize = 256;

/// The loaded, attached eBPF collector.
///
/// Field order matters: the rings and counters are dropped before `ebpf`, whose drop detaches
/// and unloads the programs.
pub struct Collector {
    kernel_ring: Option<Ring>,
    dns_ring: Option<Ring>,
    lost: LostEventCounter,
    dns_counters: DnsCounterReader,
    trusted: TrustedNamespaces,
    reload: SymbolReloadTrigger,
    /// With coalesced wake-ups, how long a woken reader lets records gather under load.
    coalesce_window: Option<Duration>,
    /// When the reader was last woken (to tell a quiet period from load).
    last_wakeup: Option<Instant>,
    clock: BootClock,
    attachments: Attachments,
    stats: CollectorStats,
    ebpf: Ebpf,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("attachments", &self.attachments)
            .field("clock", &self.clock)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn check_ring_size(name: &str, bytes: u32) -> Result<(), LoadError> {
    let page = crate::sysconf::page_size().unwrap_or(4096);
    if !bytes.is_power_of_two() || u64::from(bytes) < page {
        return Err(LoadError::InvalidOptions(format!(
            "{name} is {bytes} bytes; expected a power of two of at least one page ({page} bytes)"
        )));
    }
    Ok(())
}

fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    program: &'static str,
    tracepoint: &str,
) -> Result<(), LoadError> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| LoadError::Other {
            stage: LoadStage::LoadProgram(program),
            source: format!("the object has no program `{program}`").into(),
        })?
        .try_into()
        .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
    prog.load()
        .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
    prog.attach(tracepoint)
        .map_err(|e| LoadError::classify(LoadStage::AttachProgram(program), e))?;
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, LoadError> {
    ebpf.take_map(name).ok_or_else(|| LoadError::Other {
        stage: LoadStage::OpenMap(name),
        source: format!("the object has no map `{name}`").into(),
    })
}

fn attach_cgroup_skb(
    ebpf: &mut Ebpf,
    program: &'static str,
    cgroup: &File,
    attach_type: CgroupSkbAttachType,
) -> Result<(), LoadError> {
    let prog: &mut CgroupSkb = ebpf
        .program_mut(program)
        .ok_or_else(|| LoadError::Other {
            stage: LoadStage::LoadProgram(program),
            source: format!("the object has no program `{program}`").into(),
        })?
        .try_into()
        .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
    prog.load()
        .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
    // Single: see the ingress attachment.
    prog.attach(cgroup, attach_type, CgroupAttachMode::Single)
        .map_err(|e| LoadError::classify(LoadStage::AttachProgram(program), e))?;
    Ok(())
}

fn take_ring(ebpf: &mut Ebpf, name: &'static str) -> Result<Ring, LoadError> {
    let map = take_map(ebpf, name)?;
    let ring =
        RingBuf::try_from(map).map_err(|e| LoadError::classify(LoadStage::OpenMap(name), e))?;
    Ok(Ring {
        name,
        state: RingState::Plain(ring),
    })
}

impl Collector {
    /// Reads the kernel's layout, loads the programs and attaches what `options` asks for.
    ///
    /// Needs root (or `CAP_BPF` + `CAP_PERFMON`, and `CAP_NET_ADMIN` for DNS). Does not need a
    /// tokio runtime; [`Collector::next_batch`] does. On error nothing stays attached.
    pub fn load(options: CollectorOptions) -> Result<Collector, LoadError> {
        let started = Instant::now();
        check_ring_size("kernel_ring_bytes", options.kernel_ring_bytes)?;
        check_ring_size("dns_ring_bytes", options.dns_ring_bytes)?;
        let page = u32::try_from(crate::sysconf::page_size().unwrap_or(4096)).unwrap_or(4096);

        let clock = match options.boot_clock {
            Some(clock) => clock,
            None => read_boot_clock().map_err(|e| LoadError::Other {
                stage: LoadStage::BootClock,
                source: Box::new(e),
            })?,
        };
        let btf = KernelBtf::from_file(&options.btf_path).map_err(|e| match e {
            BtfError::Read { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                LoadError::Unsupported {
                    stage: LoadStage::KernelBtf,
                    reason: format!(
                        "{} does not exist (kernel built without CONFIG_DEBUG_INFO_BTF)",
                        options.btf_path.display()
                    ),
                    source: Some(Box::new(e)),
                }
            }
            BtfError::Read { .. } => LoadError::classify(LoadStage::KernelBtf, e),
            other => LoadError::KernelLayout(other),
        })?;
        let layout = kernel_layout(&btf).map_err(LoadError::KernelLayout)?;
        drop(btf);
        let btf_done = started.elapsed();

        let want_modules = options.module_loads && layout.has_module_load_tracepoint;
        let want_cgroups = options.cgroup_events && layout.has_cgroup_tracepoints;
        let want_kernel_ring = options.process_events || want_modules || want_cgroups;
        // Unused rings get one page: the object declares them, so they exist anyway.
        let kernel_ring_bytes = if want_kernel_ring {
            options.kernel_ring_bytes
        } else {
            page
        };
        let dns_ring_bytes = if options.dns_answers {
            options.dns_ring_bytes
        } else {
            page
        };

        let wakeup = RingWakeup {
            kernel_events_bytes: options.wakeup.threshold_bytes(kernel_ring_bytes),
            // DNS answers are rare and latency-sensitive (detectors match connections against
            // them right after the lookup): always woken per record.
            dns_events_bytes: 0,
        };
        let mut ebpf = EbpfLoader::new()
            // No CO-RE relocations in these programs: offsets come from KERNEL_OFFSETS.
            .btf(None)
            .override_global(KERNEL_OFFSETS_GLOBAL, &layout.offsets, true)
            .override_global(RING_WAKEUP_GLOBAL, &wakeup, true)
            .override_global(DNS_MATCHING_GLOBAL, &options.dns_matching.global(), true)
            .override_global(
                EXEC_OPTIONS_GLOBAL,
                &ExecOptions {
                    resolve_path: u32::from(options.resolve_exe_paths),
                    reserved: 0,
                },
                true,
            )
            .map_max_entries(
                DNS_QUERIES_TRUSTED_MAP,
                options.dns_matching.pending_queries.max(1),
            )
            .map_max_entries(
                DNS_QUERIES_OTHER_MAP,
                options.dns_matching.pending_queries.max(1),
            )
            .map_max_entries(KERNEL_EVENTS_MAP, kernel_ring_bytes)
            .map_max_entries(DNS_EVENTS_MAP, dns_ring_bytes)
            .load(PROGRAMS_OBJECT)
            .map_err(|e| LoadError::classify(LoadStage::CreateMaps, e))?;

        if options.process_events {
            attach_raw_tracepoint(&mut ebpf, program_name::FORK, "sched_process_fork")?;
            attach_raw_tracepoint(&mut ebpf, program_name::EXEC, "sched_process_exec")?;
            attach_raw_tracepoint(&mut ebpf, program_name::EXIT, "sched_process_exit")?;
            if layout.has_task_rename_tracepoint {
                attach_raw_tracepoint(&mut ebpf, program_name::RENAME, "task_rename")?;
            }
        }
        let module_loads = if !options.module_loads {
            ModuleLoadSignal::NotRequested
        } else if want_modules {
            attach_raw_tracepoint(&mut ebpf, program_name::MODULE_LOAD, "module_load")?;
            ModuleLoadSignal::Attached
        } else {
            ModuleLoadSignal::KernelWithoutModules
        };

        if want_cgroups {
            attach_raw_tracepoint(&mut ebpf, program_name::CGROUP_MKDIR, "cgroup_mkdir")?;
            attach_raw_tracepoint(&mut ebpf, program_name::CGROUP_RMDIR, "cgroup_rmdir")?;
            if layout.has_populated_tracepoint {
                attach_raw_tracepoint(
                    &mut ebpf,
                    program_name::CGROUP_POPULATED,
                    "cgroup_notify_populated",
                )?;
            }
        }

        let dns_cgroup_root = if options.dns_answers {
            let root = match options.cgroup_root.clone() {
                Some(root) => root,
                None => {
                    let mounts = std::fs::read_to_string("/proc/mounts")
                        .map_err(|e| LoadError::classify(LoadStage::CgroupRoot, e))?;
                    cgroup2_mount_point(&mounts).ok_or_else(|| LoadError::Unsupported {
                        stage: LoadStage::CgroupRoot,
                        reason: "no cgroup2 file system in /proc/mounts".to_owned(),
                        source: None,
                    })?
                }
            };
            let cgroup = File::open(&root).map_err(|e| {
                LoadError::classify(
                    LoadStage::CgroupRoot,
                    std::io::Error::new(e.kind(), format!("{}: {e}", root.display())),
                )
            })?;
            let program = program_name::DNS_INGRESS;
            let prog: &mut CgroupSkb = ebpf
                .program_mut(program)
                .ok_or_else(|| LoadError::Other {
                    stage: LoadStage::LoadProgram(program),
                    source: format!("the object has no program `{program}`").into(),
                })?
                .try_into()
                .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
            prog.load()
                .map_err(|e| LoadError::classify(LoadStage::LoadProgram(program), e))?;
            // Single: AllowMultiple through links gives EINVAL on some kernels; Single still
            // coexists with other programs attached through links.
            prog.attach(
                &cgroup,
                CgroupSkbAttachType::Ingress,
                CgroupAttachMode::Single,
            )
            .map_err(|e| LoadError::classify(LoadStage::AttachProgram(program), e))?;
            if options.dns_matching.require_query {
                attach_cgroup_skb(
                    &mut ebpf,
                    program_name::DNS_EGRESS,
                    &cgroup,
                    CgroupSkbAttachType::Egress,
                )?;
            }
            Some(root)
        } else {
            None
        };

        let kernel_ring = if want_kernel_ring {
            Some(take_ring(&mut ebpf, KERNEL_EVENTS_MAP)?)
        } else {
            None
        };
        let dns_ring = if options.dns_answers {
            Some(take_ring(&mut ebpf, DNS_EVENTS_MAP)?)
        } else {
            None
        };
        let lost_map = ebpf
            .take_map(LOST_EVENTS_MAP)
            .ok_or_else(|| LoadError::Other {
                stage: LoadStage::OpenMap(LOST_EVENTS_MAP),
                source: format!("the object has no map `{LOST_EVENTS_MAP}`").into(),
            })?;
        let lost = PerCpuArray::try_from(lost_map)
            .map_err(|e| LoadError::classify(LoadStage::OpenMap(LOST_EVENTS_MAP), e))?;
        let dns_counters = DnsCounterReader::new(
            PerCpuArray::try_from(take_map(&mut ebpf, DNS_COUNTERS_MAP)?)
                .map_err(|e| LoadError::classify(LoadStage::OpenMap(DNS_COUNTERS_MAP), e))?,
        );
        let host_netns =
            own_network_namespace().map_err(|e| LoadError::classify(LoadStage::CgroupRoot, e))?;
        let trusted = TrustedNamespaces::new(
            HashMap::try_from(take_map(&mut ebpf, TRUSTED_NETNS_MAP)?)
                .map_err(|e| LoadError::classify(LoadStage::OpenMap(TRUSTED_NETNS_MAP), e))?,
            host_netns,
        )
        .map_err(|e| LoadError::Other {
            stage: LoadStage::OpenMap(TRUSTED_NETNS_MAP),
            source: Box::new(e),
        })?;

        let attachments = Attachments {
            process_events: options.process_events,
            renames: options.process_events && layout.has_task_rename_tracepoint,
            dns_queries_matched: dns_cgroup_root.is_some() && options.dns_matching.require_query,
            dns_cgroup_root,
            module_loads,
            cgroup_events: want_cgroups,
            cgroup_populated_events: want_cgroups && layout.has_populated_tracepoint,
        };
        tracing::info!(
            ?attachments,
            btf_ms = btf_done.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "eBPF collector loaded"
        );
        Ok(Collector {
            kernel_ring,
            dns_ring,
            lost: LostEventCounter {
                map: Arc::new(lost),
            },
            dns_counters,
            trusted,
            reload: SymbolReloadTrigger::default(),
            coalesce_window: options.wakeup.window(),
            last_wakeup: None,
            clock,
            attachments,
            stats: CollectorStats::default(),
            ebpf,
        })
    }

    /// What is attached.
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }

    /// The boot clock used to convert kernel times.
    pub fn boot_clock(&self) -> BootClock {
        self.clock
    }

    /// Userspace counters.
    pub fn stats(&self) -> CollectorStats {
        self.stats
    }

    /// Records the kernel dropped because a ring buffer was full.
    pub fn lost_events(&self) -> Result<LostEvents, ReadError> {
        self.lost.read()
    }

    /// A handle to read the lost-record counters from elsewhere.
    pub fn lost_event_counter(&self) -> LostEventCounter {
        self.lost.clone()
    }

    /// A handle that makes the collector emit a symbol-reload event.
    pub fn symbol_reload_trigger(&self) -> SymbolReloadTrigger {
        self.reload.clone()
    }

    /// What the kernel did with DNS queries and answers (refusals by reason).
    pub fn dns_counters(&self) -> Result<DnsCounters, ReadError> {
        self.dns_counters.read()
    }

    /// A handle to read the DNS counters from elsewhere.
    pub fn dns_counter_reader(&self) -> DnsCounterReader {
        self.dns_counters.clone()
    }

    /// The trusted network namespaces (the host's from the start; add containers' here).
    pub fn trusted_namespaces(&self) -> TrustedNamespaces {
        self.trusted.clone()
    }

    /// Moves whatever records are ready into `out` (at most `max`), without waiting. Returns
    /// how many events were added.
    pub fn drain_into(&mut self, out: &mut Vec<KernelEvent>, max: usize) -> usize {
        let start = out.len();
        if max > 0 && self.reload.take() {
            out.push(KernelEvent::SymbolReload(SymbolReloadCause::Requested));
        }
        let Collector {
            kernel_ring,
            dns_ring,
            clock,
            stats,
            ..
        } = self;
        loop {
            let mut progressed = false;
            for ring in [kernel_ring.as_mut(), dns_ring.as_mut()]
                .into_iter()
                .flatten()
            {
                let Some(ring) = ring.ring() else { continue };
                let mut taken = 0;
                while taken < FAIRNESS_CHUNK && out.len() - start < max {
                    let Some(item) = ring.next() else { break };
                    taken += 1;
                    stats.records_read += 1;
                    match decode_record(&item, clock) {
                        Ok(event) => out.push(event),
                        Err(error) => {
                            stats.decode_errors += 1;
                            tracing::error!(%error, "undecodable eBPF record (a bug)");
                        }
                    }
                }
                progressed |= taken > 0;
            }
            if !progressed || out.len() - start >= max {
                return out.len() - start;
            }
        }
    }

    /// Waits until events are available and returns up to `max` of them (at least one).
    /// Must run inside a tokio runtime with I/O and time enabled; the ring buffers are watched
    /// with `AsyncFd`, so waiting blocks no thread, and an idle reader arms no timer: it sleeps
    /// until the kernel (or a [`SymbolReloadTrigger`]) wakes it.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<KernelEvent>, ReadError> {
        let max = max.max(1);
        for ring in [self.kernel_ring.as_mut(), self.dns_ring.as_mut()]
            .into_iter()
            .flatten()
        {
            ring.register()?;
        }
        loop {
            let mut batch = Vec::new();
            if self.drain_into(&mut batch, max) > 0 {
                return Ok(batch);
            }
            // Caught up: the next record wakes us (the kernel's default wake-up).
            let wake = Arc::clone(&self.reload.wake);
            tokio::select! {
                ready = wait_readable(&self.kernel_ring) => ready?,
                ready = wait_readable(&self.dns_ring) => ready?,
                () = wake.notified() => {}
            }
            self.coalesce().await?;
        }
    }

    /// After a wake-up under load, lets records gather for the coalescing window (ended early
    /// by a forced wake-up, a record on a ring that had caught up, or a reload request).
    async fn coalesce(&mut self) -> Result<(), ReadError> {
        let Some(window) = self.coalesce_window else {
            return Ok(());
        };
        let now = Instant::now();
        let busy = self
            .last_wakeup
            .is_some_and(|last| now.duration_since(last) < window * BUSY_WINDOWS);
        self.last_wakeup = Some(now);
        if !busy {
            return Ok(());
        }
        let wake = Arc::clone(&self.reload.wake);
        tokio::select! {
            () = tokio::time::sleep(window) => {}
            ready = wait_readable(&self.kernel_ring) => ready?,
            ready = wait_readable(&self.dns_ring) => ready?,
            () = wake.notified() => {}
        }
        Ok(())
    }

    /// Runs the collector as a tokio task that sends batches of at most `max_batch` events into
    /// a channel of `queue_batches` batches. When the channel is full the task waits, the
    /// kernel's ring buffers fill, and the kernel counts what it drops ([`LostEvents`]): memory
    /// stays bounded and no loss is silent. The task (and the programs) end when the returned
    /// [`CollectorTask`] is dropped.
    pub fn spawn(self, queue_batches: usize, max_batch: usize) -> CollectorTask {
        let (sender, receiver) = mpsc::channel(queue_batches.max(1));
        let lost = self.lost_event_counter();
        let reload = self.symbol_reload_trigger();
        let dns_counters = self.dns_counter_reader();
        let trusted = self.trusted_namespaces();
        let attachments = self.attachments.clone();
        let mut collector = self;
        let handle = tokio::spawn(async move {
            loop {
                let batch = collector.next_batch(max_batch).await?;
                if sender.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        });
        CollectorTask {
            receiver,
            lost,
            dns_counters,
            trusted,
            reload,
            attachments,
            handle,
        }
    }

    /// The underlying aya object, for diagnostics (program and map info).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }
}

/// A [`Collector`] running as a tokio task (see [`Collector::spawn`]). Dropping it stops the
/// task, which detaches the programs.
pub struct CollectorTask {
    receiver: mpsc::Receiver<Vec<KernelEvent>>,
    lost: LostEventCounter,
    dns_counters: DnsCounterReader,
    trusted: TrustedNamespaces,
    reload: SymbolReloadTrigger,
    attachments: Attachments,
    handle: JoinHandle<Result<(), ReadError>>,
}

impl std::fmt::Debug for CollectorTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorTask").finish_non_exhaustive()
    }
}

impl CollectorTask {
    /// The next batch; `None` once the task has ended (see [`CollectorTask::stop`] for why).
    pub async fn recv(&mut self) -> Option<Vec<KernelEvent>> {
        self.receiver.recv().await
    }

    /// Records the kernel dropped.
    pub fn lost_events(&self) -> Result<LostEvents, ReadError> {
        self.lost.read()
    }

    /// A handle to request a kernel-symbol reload event.
    pub fn symbol_reload_trigger(&self) -> SymbolReloadTrigger {
        self.reload.clone()
    }

    /// What the kernel did with DNS queries and answers.
    pub fn dns_counters(&self) -> Result<DnsCounters, ReadError> {
        self.dns_counters.read()
    }

    /// The trusted network namespaces.
    pub fn trusted_namespaces(&self) -> TrustedNamespaces {
        self.trusted.clone()
    }

    /// What the collector attached.
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }

    /// Stops the task and waits until the programs are detached; returns the task's error if
    /// it had failed.
    pub async fn stop(mut self) -> Result<(), ReadError> {
        self.receiver.close();
        self.handle.abort();
        match (&mut self.handle).await {
            Ok(result) => result,
            Err(_cancelled) => Ok(()),
        }
    }
}

impl Drop for CollectorTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
