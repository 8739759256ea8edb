//! Memory budgets: sizes computed with checked arithmetic and compared with what the
//! machine has before anything is allocated, so a model or dataset that cannot fit is an
//! error naming the sizes and the bytes, not an allocator abort.

use crate::{Error, Result};

/// The most memory this machine can hold: RAM plus swap (Linux: `/proc/meminfo`), or
/// `None` where it is unknown (then only arithmetic overflow is checked).
pub fn budget() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |key: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        kb.checked_mul(1024)
    };
    Some(field("MemTotal:")?.saturating_add(field("SwapTotal:").unwrap_or(0)))
}

/// Bytes as a short human figure (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = bytes as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < UNITS.len() {
        x /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.1} {}", UNITS[unit])
    }
}

/// `None` (overflow) or the product of `factors`.
pub fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |n, &f| n.checked_mul(f))
}

/// Checks that `bytes` (`None`: the computation overflowed) fit in [`budget`]; the error
/// says `what` needs them and how to fix it.
pub fn check(what: &str, bytes: Option<u64>, fix: &str) -> Result<()> {
    check_against(what, bytes, budget(), fix)
}

/// [`check`] against an explicit budget (tests).
pub fn check_against(what: &str, bytes: Option<u64>, budget: Option<u64>, fix: &str) -> Result<()> {
    match (bytes, budget) {
        (None, _) => Err(Error::input(format!("{what} needs more bytes than a 64-bit count can hold; {fix}"))),
        (Some(b), Some(limit)) if b > limit => Err(Error::input(format!(
            "{what} needs {} ({b} bytes), more than this machine's {} of memory (RAM and swap); {fix}",
            human(b),
            human(limit)
        ))),
        _ => Ok(()),
    }
}

/// Reads a whole file, refusing one larger than `cap` bytes with an error naming the
/// file, its `kind` and the limit: a device such as `/dev/zero` or a runaway pipe is
/// read only as far as the cap.
pub fn read_capped(path: &std::path::Path, cap: u64, kind: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let fail = |e: &dyn std::fmt::Display| Error::input(format!("{}: cannot read: {e}", path.display()));
    let too_big = || {
        Error::input(format!(
            "{}: larger than {}, the limit for {kind}; is it the right file?",
            path.display(),
            human(cap)
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if meta.is_dir() {
        return Err(Error::input(format!("{}: is a directory, not {kind}", path.display())));
    }
    if meta.is_file() && meta.len() > cap {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() { meta.len() as usize } else { 0 });
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| fail(&e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Reads a whole file of `kind` whose size only memory bounds (checkpoints, datasets): a
/// regular file up to [`budget`], a device or pipe up to 1 GiB.
pub fn read_file(path: &std::path::Path, kind: &str) -> Result<Vec<u8>> {
    let regular = path.metadata().is_ok_and(|m| m.is_file());
    let cap = if regular { budget().unwrap_or(u64::MAX) } else { 1 << 30 };
    read_capped(path, cap, kind)
}

/// Keeps freed tensor buffers in the heap for reuse instead of returning each to the
/// operating system (glibc only; elsewhere a no-op). By default glibc serves blocks over
/// 128 KiB to 32 MiB with fresh mappings and unmaps them on free, so every activation and
/// gradient of a training step costs page faults and, with several threads, TLB
/// shootdowns: measured on this project's CNN, that was over half of the backward pass.
/// Raising the mapping threshold to glibc's maximum and never trimming the heap's top
/// makes the steady state allocate from memory already mapped. The `ember` CLI calls it
/// first thing; a program training through the library may call it once at start.
pub fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: mallopt only sets allocator parameters; glibc documents both options.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_beyond_the_budget_or_overflowing_are_errors_naming_the_bytes() {
        assert!(check_against("x", Some(10), Some(10), "fix").is_ok());
        let e = check_against("model.sizes = [8, 9]", Some(3 << 30), Some(1 << 30), "use fewer").unwrap_err();
        assert_eq!(
            e.to_string(),
            "model.sizes = [8, 9] needs 3.0 GiB (3221225472 bytes), more than this machine's 1.0 GiB of memory (RAM and swap); use fewer"
        );
        assert!(check_against("x", None, None, "f").unwrap_err().to_string().contains("64-bit"));
        assert_eq!(product(&[u64::MAX, 2]), None);
        assert_eq!(product(&[3, 4]), Some(12));
    }

    #[test]
    fn a_device_file_is_read_only_up_to_the_cap() {
        let e = read_capped(std::path::Path::new("/dev/zero"), 1 << 20, "a parity file").unwrap_err().to_string();
        assert_eq!(e, "/dev/zero: larger than 1.0 MiB, the limit for a parity file; is it the right file?");
        let e = read_capped(std::path::Path::new("/"), 10, "a parity file").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }
}
