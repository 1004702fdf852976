//! Prints kernel events as the collector decodes them, for a look by hand:
//! `cargo run -p watchpost-ebpf --example print_events -- [seconds]` (as root).

use std::time::Duration;

use watchpost_ebpf::{Collector, CollectorOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let started = std::time::Instant::now();
    let mut collector = Collector::load(CollectorOptions::default())?;
    println!(
        "loaded in {:?}: {:?}",
        started.elapsed(),
        collector.attachments()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while let Ok(batch) = tokio::time::timeout_at(deadline, collector.next_batch(256)).await {
        for event in batch? {
            println!("{event:?}");
        }
    }
    println!(
        "lost: {:?}; stats: {:?}",
        collector.lost_events()?,
        collector.stats()
    );
    Ok(())
}
