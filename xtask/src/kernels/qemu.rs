//! Booting one guest under full-system emulation and collecting what its console says, with a
//! deadline: a guest that hangs is killed and reported with the last lines it printed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::arch::Arch;
use super::console::GuestReport;

/// Console lines kept for a failure report.
const TAIL_LINES: usize = 40;

/// What one boot gave.
#[derive(Debug)]
pub struct BootOutcome {
    /// The guest's results.
    pub report: GuestReport,
    /// Seconds from qemu's start until `/init` ran (`None`: it never did).
    pub boot_seconds: Option<f64>,
    /// Seconds from qemu's start until it exited (or was killed).
    pub seconds: f64,
    /// Killed at the deadline.
    pub timed_out: bool,
    /// The last console lines.
    pub tail: Vec<String>,
}

/// Boots `image` with `initramfs` on `arch`, the console copied to `console_log`; kills the
/// guest after `limit`.
pub fn boot(
    arch: Arch,
    image: &Path,
    initramfs: &Path,
    console_log: &Path,
    limit: Duration,
) -> Result<BootOutcome, String> {
    let append = format!(
        "console={} panic=-1 rdinit=/init quiet loglevel=4",
        arch.console()
    );
    let mut child = Command::new(arch.qemu())
        .args(arch.qemu_machine())
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", arch.qemu()))?;
    let started = Instant::now();
    let mut log = std::fs::File::create(console_log)
        .map_err(|e| format!("{}: {e}", console_log.display()))?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().ok_or("qemu has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stderr = child.stderr.take().ok_or("qemu has no stderr")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });

    let deadline = started + limit;
    let mut report = GuestReport::default();
    let mut boot_seconds = None;
    let mut tail: Vec<String> = Vec::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let _ = log.write_all(line.as_bytes());
                let clean = line.trim_end_matches(['\r', '\n']).to_owned();
                if report.take_line(&clean)
                    && boot_seconds.is_none()
                    && report.fact("init").is_some()
                {
                    boot_seconds = Some(started.elapsed().as_secs_f64());
                }
                if tail.len() == TAIL_LINES {
                    tail.remove(0);
                }
                tail.push(clean);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for qemu: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = reader.join();
    let qemu_errors = stderr_reader.join().unwrap_or_default();
    if !timed_out && !status.success() && report.done.is_none() {
        tail.push(format!("qemu exited with {status}: {}", qemu_errors.trim()));
    }
    Ok(BootOutcome {
        report,
        boot_seconds,
        seconds,
        timed_out,
        tail,
    })
}
