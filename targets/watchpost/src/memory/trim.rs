//! Giving freed heap back to the kernel after a burst. glibc's allocator keeps freed memory in
//! its arenas (one per thread that allocated) for reuse; after a burst of large replies that is
//! megabytes of RSS that stay until `malloc_trim` returns the free pages. The query server calls
//! [`release_free_memory`] once a burst of large answers is over; other allocators need nothing.
#![allow(unsafe_code)]

/// Returns the allocator's free pages to the kernel (glibc), or does nothing. Takes a few
/// milliseconds on a large heap: call it from the blocking pool.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases free
    // pages; it takes no pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_is_harmless() {
        let v: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 * 1024]).collect();
        drop(v);
        super::release_free_memory();
    }
}
