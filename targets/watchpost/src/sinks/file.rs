//! The file sink: detections as JSON lines appended to a file that is rotated by size, so the
//! disk it uses is bounded by `max_bytes × (keep + 1)` (plus one record).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// An open detection file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
    /// Files rotated away since start.
    pub rotations: u64,
    /// Lines that could not be written.
    pub errors: u64,
}

impl FileSink {
    /// A sink appending to `path`, rotating past `max_bytes`, keeping `keep` old files.
    pub fn new(path: &Path, max_bytes: u64, keep: u32) -> FileSink {
        FileSink {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            keep,
            file: None,
            size: 0,
            rotations: 0,
            errors: 0,
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("file not open"))
    }

    /// `path` → `path.1` → … → `path.<keep>` (the oldest deleted).
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }

    /// Appends `lines` (each gets a newline), rotating first when the file would pass its bound.
    pub fn write_lines(&mut self, lines: &[String]) {
        for line in lines {
            if let Err(e) = self.write_line(line) {
                self.errors += 1;
                // One line per failure burst would be nicer; the counter is the record.
                tracing::warn!(path = %self.path.display(), error = %e, "detection file not writable");
                self.file = None;
            }
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let len = line.len() as u64 + 1;
        self.open()?;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let file = self.open()?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        file.write_all(&buf)?;
        self.size += len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = std::env::temp_dir().join(format!("wp-filesink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.jsonl");
        let mut sink = FileSink::new(&path, 100, 2);
        let line = "x".repeat(39); // 40 bytes with the newline
        for _ in 0..10 {
            sink.write_lines(std::slice::from_ref(&line));
        }
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(len(&path) <= 100);
        assert!(len(&dir.join("d.jsonl.1")) <= 100);
        assert!(dir.join("d.jsonl.2").exists());
        assert!(!dir.join("d.jsonl.3").exists());
        assert_eq!(sink.rotations, 4);
        let total: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| len(&e.unwrap().path()))
            .sum();
        assert_eq!(total, 40 * 6, "10 lines written, the oldest 4 rotated away");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
